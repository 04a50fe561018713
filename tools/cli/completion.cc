// SPDX-License-Identifier: Apache-2.0
#include "cli/completion.h"

#include <set>
#include <string>
#include <vector>

namespace hyperfile::cli {
namespace {

// The option names of `app` (its own, not its subcommands'), and those of
// them that take a value.
void Names(const CLI::App& app, std::string* all, std::set<std::string>* valued) {
  for (const CLI::Option* opt : app.get_options()) {
    if (opt->get_group().empty()) continue;  // hidden
    std::vector<std::string> names;
    for (const std::string& s : opt->get_snames()) names.push_back("-" + s);
    for (const std::string& l : opt->get_lnames()) names.push_back("--" + l);
    for (const std::string& n : names) {
      *all += (all->empty() ? "" : " ") + n;
      if (opt->get_expected_min() > 0) valued->insert(n);
    }
  }
}

std::string Subcommands(const CLI::App& app) {
  std::string names;
  for (const CLI::App* sub : app.get_subcommands({})) {
    names += (names.empty() ? "" : " ") + sub->get_name();
  }
  return names;
}

}  // namespace

std::string BashCompletion(CLI::App& app) {
  std::string global;
  std::set<std::string> valued;
  Names(app, &global, &valued);
  std::string cases;
  for (CLI::App* sub : app.get_subcommands({})) {
    std::string opts;
    Names(*sub, &opts, &valued);
    cases += "    " + sub->get_name() + ") opts=\"" + opts + "\"; subs=\"" + Subcommands(*sub) +
             "\" ;;\n";
    for (CLI::App* child : sub->get_subcommands({})) {
      std::string child_opts;
      Names(*child, &child_opts, &valued);
      cases += "    \"" + sub->get_name() + " " + child->get_name() + "\") opts=\"" + child_opts +
               "\"; subs=\"\" ;;\n";
    }
  }
  std::string valued_list;
  for (const std::string& v : valued) valued_list += " " + v + " ";
  return "# bash completion for hyperfile (made by `hyperfile --print-bash-completion`)\n"
         "_hyperfile() {\n"
         "  local cur=${COMP_WORDS[COMP_CWORD]} prev=\"\" cmd=\"\" i w\n"
         "  [ \"$COMP_CWORD\" -gt 0 ] && prev=${COMP_WORDS[COMP_CWORD-1]}\n"
         "  local global=\"" +
         global +
         "\"\n"
         "  local valued=\"" +
         valued_list +
         "\"\n"
         "  local opts=\"\" subs=\"" +
         Subcommands(app) +
         "\"\n"
         "  for ((i = 1; i < COMP_CWORD; i++)); do\n"
         "    w=${COMP_WORDS[i]}\n"
         "    case \"$w\" in\n"
         "      -*) [[ $valued == *\" $w \"* ]] && ((i++)) ;;\n"
         "      *) if [[ \" $subs \" == *\" $w \"* ]]; then\n"
         "           cmd=${cmd:+$cmd }$w\n"
         "           case \"$cmd\" in\n" +
         cases +
         "           esac\n"
         "         fi ;;\n"
         "    esac\n"
         "  done\n"
         "  if [[ $valued == *\" $prev \"* ]]; then\n"
         "    case \"$prev\" in\n"
         "      -o|--output|--ca-bundle) COMPREPLY=($(compgen -f -- \"$cur\")) ;;\n"
         "      *) COMPREPLY=() ;;\n"
         "    esac\n"
         "    return\n"
         "  fi\n"
         "  if [[ $cur == -* ]]; then\n"
         "    COMPREPLY=($(compgen -W \"$opts $global --help\" -- \"$cur\"))\n"
         "  elif [ -n \"$subs\" ]; then\n"
         "    COMPREPLY=($(compgen -W \"$subs\" -- \"$cur\"))\n"
         "  else\n"
         "    COMPREPLY=($(compgen -f -- \"$cur\"))\n"
         "  fi\n"
         "}\n"
         "complete -o filenames -F _hyperfile hyperfile\n";
}

}  // namespace hyperfile::cli
