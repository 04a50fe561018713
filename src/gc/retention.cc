// SPDX-License-Identifier: Apache-2.0
// Retention policies: parsing, printing, and which checkpoints they keep;
// the stored policy (gc/policy).
#include <algorithm>
#include <cctype>
#include <set>

#include "format/gc_records.h"
#include "hyperfile/gc.h"

namespace hyperfile {

namespace {

constexpr uint32_t kMaxCount = 1000000;
constexpr int64_t kMaxDurationMs = 100ll * 366 * 24 * 3600 * 1000;

struct Rule {
  const char* name;
  uint32_t RetentionPolicy::*count;  // null for keep-within
};
constexpr Rule kRules[] = {
    {"keep-last", &RetentionPolicy::keep_last},
    {"keep-within", nullptr},
    {"keep-hourly", &RetentionPolicy::keep_hourly},
    {"keep-daily", &RetentionPolicy::keep_daily},
    {"keep-weekly", &RetentionPolicy::keep_weekly},
    {"keep-monthly", &RetentionPolicy::keep_monthly},
};

std::string FormatDuration(int64_t ms) {
  struct Unit {
    int64_t ms;
    char c;
  };
  constexpr Unit kUnits[] = {
      {7ll * 86400000, 'w'}, {86400000, 'd'}, {3600000, 'h'}, {60000, 'm'}, {1000, 's'}};
  std::string out;
  for (const Unit& u : kUnits) {
    if (ms >= u.ms) {
      out += std::to_string(ms / u.ms) + u.c;
      ms %= u.ms;
    }
  }
  if (ms > 0 || out.empty()) out += std::to_string(ms) + "ms";
  return out;
}

// UTC calendar buckets of a time (ms since the epoch).
int64_t DayOf(int64_t ms) { return ms >= 0 ? ms / 86400000 : (ms - 86399999) / 86400000; }
int64_t HourOf(int64_t ms) { return ms >= 0 ? ms / 3600000 : (ms - 3599999) / 3600000; }
// ISO weeks start on Monday; 1970-01-01 was a Thursday (day 0): Monday is day 4.
int64_t WeekOf(int64_t ms) {
  int64_t d = DayOf(ms) + 3;
  return d >= 0 ? d / 7 : (d - 6) / 7;
}
int64_t MonthOf(int64_t ms) {
  // Civil-from-days (Howard Hinnant's algorithm).
  int64_t z = DayOf(ms) + 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  int64_t doe = z - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t y = yoe + era * 400;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  int64_t m = mp < 10 ? mp + 3 : mp - 9;
  if (m <= 2) y++;
  return y * 12 + (m - 1);
}

}  // namespace

Result<int64_t> RetentionPolicy::ParseDuration(std::string_view text) {
  auto bad = [&] {
    return Status::InvalidArgument(
        "bad duration '" + std::string(text) +
        "': use a number and a unit (s, m, h, d, w), e.g. 7d, 36h, 1d12h");
  };
  if (text.empty()) return bad();
  int64_t total = 0;
  size_t i = 0;
  while (i < text.size()) {
    size_t start = i;
    int64_t v = 0;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
      if (i - start >= 12) return bad();
      v = v * 10 + (text[i] - '0');
      i++;
    }
    if (i == start || i == text.size()) return bad();
    int64_t unit = 0;
    switch (text[i]) {
      case 's':
        unit = 1000;
        break;
      case 'm':
        unit = 60000;
        break;
      case 'h':
        unit = 3600000;
        break;
      case 'd':
        unit = 86400000;
        break;
      case 'w':
        unit = 7 * 86400000ll;
        break;
      default:
        return bad();
    }
    i++;
    if (v > kMaxDurationMs / unit) return bad();
    total += v * unit;
    if (total > kMaxDurationMs) return bad();
  }
  if (total == 0) return bad();
  return total;
}

Result<RetentionPolicy> RetentionPolicy::Parse(std::string_view text) {
  RetentionPolicy p;
  std::set<std::string> seen;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && (text[i] == ' ' || text[i] == ',' || text[i] == '\n' ||
                               text[i] == '\t' || text[i] == '\r')) {
      i++;
    }
    if (i == text.size()) break;
    size_t start = i;
    while (i < text.size() && text[i] != ' ' && text[i] != ',' && text[i] != '\n' &&
           text[i] != '\t' && text[i] != '\r') {
      i++;
    }
    std::string token(text.substr(start, i - start));
    size_t eq = token.find('=');
    if (eq == std::string::npos) {
      return Status::InvalidArgument("bad retention rule '" + token +
                                     "': use keep-last=N, keep-within=7d, keep-hourly=N, "
                                     "keep-daily=N, keep-weekly=N or keep-monthly=N");
    }
    std::string name = token.substr(0, eq), value = token.substr(eq + 1);
    const Rule* rule = nullptr;
    for (const Rule& r : kRules) {
      if (name == r.name) rule = &r;
    }
    if (!rule) return Status::InvalidArgument("unknown retention rule '" + name + "'");
    if (!seen.insert(name).second) {
      return Status::InvalidArgument("retention rule '" + name + "' given twice");
    }
    if (!rule->count) {
      HF_ASSIGN_OR_RETURN(p.keep_within_ms, ParseDuration(value));
      continue;
    }
    if (value.empty() || value.size() > 7 ||
        !std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return Status::InvalidArgument("retention rule " + name + ": '" + value +
                                     "' is not a count (0.." + std::to_string(kMaxCount) + ")");
    }
    uint64_t v = std::stoull(value);
    if (v > kMaxCount) {
      return Status::InvalidArgument("retention rule " + name + ": at most " +
                                     std::to_string(kMaxCount));
    }
    p.*(rule->count) = static_cast<uint32_t>(v);
  }
  return p;
}

std::string RetentionPolicy::ToString() const {
  std::string out;
  auto add = [&](const std::string& s) { out += (out.empty() ? "" : " ") + s; };
  for (const Rule& r : kRules) {
    if (!r.count) {
      if (keep_within_ms > 0) add(std::string(r.name) + "=" + FormatDuration(keep_within_ms));
    } else if (this->*(r.count) > 0) {
      add(std::string(r.name) + "=" + std::to_string(this->*(r.count)));
    }
  }
  return out;
}

std::vector<uint64_t> SelectByPolicy(const RetentionPolicy& p,
                                     const std::vector<CheckpointInfo>& history) {
  std::vector<const CheckpointInfo*> newest_first;
  for (const CheckpointInfo& c : history) newest_first.push_back(&c);
  std::sort(newest_first.begin(), newest_first.end(),
            [](const CheckpointInfo* a, const CheckpointInfo* b) { return a->id > b->id; });
  std::set<uint64_t> keep;
  for (size_t i = 0; i < newest_first.size() && i < p.keep_last; i++)
    keep.insert(newest_first[i]->id);
  if (p.keep_within_ms > 0 && !newest_first.empty()) {
    int64_t newest = newest_first.front()->time_ms;
    for (const CheckpointInfo* c : newest_first) {
      if (c->time_ms >= newest - p.keep_within_ms) keep.insert(c->id);
    }
  }
  // The newest checkpoint of each of the N newest buckets.
  auto buckets = [&](uint32_t n, int64_t (*bucket)(int64_t)) {
    if (n == 0) return;
    uint32_t taken = 0;
    bool have_last = false;
    int64_t last = 0;
    for (const CheckpointInfo* c : newest_first) {
      int64_t b = bucket(c->time_ms);
      if (have_last && b == last) continue;
      have_last = true;
      last = b;
      keep.insert(c->id);
      if (++taken == n) break;
    }
  };
  buckets(p.keep_hourly, HourOf);
  buckets(p.keep_daily, DayOf);
  buckets(p.keep_weekly, WeekOf);
  buckets(p.keep_monthly, MonthOf);
  return {keep.begin(), keep.end()};
}

Status SetRetentionPolicy(std::shared_ptr<ObjectStore> store, const RetentionPolicy& policy) {
  if (!store) return Status::InvalidArgument("policy: no store");
  HF_RETURN_IF_ERROR(ListCheckpoints(store, 1).status());  // a hyperfile is here (NotFound)
  std::string text = policy.ToString() + "\n";
  return store->Put(format::kPolicyKey, {text}, PutOptions{})
      .WithContext("store the retention policy of " + store->Name());
}

Result<std::optional<RetentionPolicy>> GetRetentionPolicy(std::shared_ptr<ObjectStore> store) {
  if (!store) return Status::InvalidArgument("policy: no store");
  std::string body;
  Status st = store->Get(format::kPolicyKey, 0, format::kMaxPolicyBytes + 1, &body, nullptr);
  if (st.IsNotFound()) return std::optional<RetentionPolicy>();
  HF_RETURN_IF_ERROR(st);
  const std::string where = store->Name() + "/" + std::string(format::kPolicyKey);
  if (body.size() > format::kMaxPolicyBytes) {
    return Status::Corrupt(where + ": longer than " + std::to_string(format::kMaxPolicyBytes) +
                           " bytes, not a retention policy");
  }
  auto p = RetentionPolicy::Parse(body);
  if (!p.ok()) return Status::Corrupt(where + ": " + p.status().message());
  return std::optional<RetentionPolicy>(*p);
}

}  // namespace hyperfile
