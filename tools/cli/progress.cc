// SPDX-License-Identifier: Apache-2.0
#include "cli/progress.h"

#include <cstdio>

namespace hyperfile::cli {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kRedrawInterval = std::chrono::milliseconds(100);
constexpr int kBarWidth = 24;

std::string Duration(double seconds) {
  if (seconds < 0 || seconds > 99 * 3600) return "--:--";
  auto s = static_cast<long long>(seconds + 0.5);
  char buf[32];
  if (s >= 3600) {
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%lld:%02lld", s / 60, s % 60);
  }
  return buf;
}

}  // namespace

std::string HumanBytes(double bytes) {
  static const char* const kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  int unit = 0;
  while (bytes >= 1024 && unit < 5) {
    bytes /= 1024;
    unit++;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, unit == 0 ? "%.0f %s" : "%.1f %s", bytes, kUnits[unit]);
  return buf;
}

ProgressBar::ProgressBar(bool enabled, uint64_t total, Unit unit)
    : enabled_(enabled), total_(total), unit_(unit), start_(Clock::now()) {}

double ProgressBar::Elapsed() const {
  return std::chrono::duration<double>(Clock::now() - start_).count();
}

void ProgressBar::Update(uint64_t done) {
  if (!enabled_) return;
  Clock::time_point now = Clock::now();
  if (drawn_ && now - last_draw_ < kRedrawInterval) return;
  last_draw_ = now;
  auto amount = [this](double v) {
    if (unit_ == Unit::kBytes) return HumanBytes(v);
    return std::to_string(static_cast<uint64_t>(v));
  };
  if (total_ == kUnknownTotal) {
    double secs = Elapsed();
    char text[120];
    std::snprintf(text, sizeof text, "%s  %s/s  %s", amount(static_cast<double>(done)).c_str(),
                  amount(secs > 0 ? static_cast<double>(done) / secs : 0).c_str(),
                  Duration(secs).c_str());
    Draw(text);
    return;
  }
  if (done > total_) done = total_;
  double fraction = total_ == 0 ? 1.0 : static_cast<double>(done) / static_cast<double>(total_);
  int filled = static_cast<int>(fraction * kBarWidth);
  double seconds = Elapsed();
  double rate = seconds > 0 ? static_cast<double>(done) / seconds : 0;
  double eta = rate > 0 ? static_cast<double>(total_ - done) / rate : -1;
  char line[200];
  std::snprintf(line, sizeof line, "[%s%s] %s / %s %3d%%  %s/s  ETA %s",
                std::string(filled, '#').c_str(), std::string(kBarWidth - filled, '.').c_str(),
                amount(static_cast<double>(done)).c_str(),
                amount(static_cast<double>(total_)).c_str(), static_cast<int>(fraction * 100),
                amount(rate).c_str(), Duration(eta).c_str());
  Draw(line);
}

void ProgressBar::Note(const std::string& text) {
  if (enabled_) Draw(text);
}

void ProgressBar::Clear() {
  if (!enabled_ || !drawn_) return;
  std::fputs("\r\033[K", stderr);
  std::fflush(stderr);
  drawn_ = false;
}

void ProgressBar::Draw(const std::string& line) {
  std::fprintf(stderr, "\r\033[K%s", line.c_str());
  std::fflush(stderr);
  drawn_ = true;
}

}  // namespace hyperfile::cli
