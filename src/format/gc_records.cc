// SPDX-License-Identifier: Apache-2.0
#include "format/gc_records.h"

#include <algorithm>
#include <limits>

#include "util/coding.h"
#include "util/crc32c.h"

namespace hyperfile::format {

namespace {

std::string Hex16(uint64_t v) {
  static const char* digits = "0123456789abcdef";
  std::string s(16, '0');
  for (int i = 15; i >= 0; i--, v >>= 4) s[i] = digits[v & 15];
  return s;
}

std::optional<uint64_t> ParseHex16Key(std::string_view key, std::string_view prefix) {
  if (!key.starts_with(prefix) || key.size() != prefix.size() + 16) return std::nullopt;
  uint64_t v = 0;
  for (char c : key.substr(prefix.size())) {
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else {
      return std::nullopt;
    }
    v = v << 4 | static_cast<uint64_t>(d);
  }
  return v;
}

void SealCrc(std::string* out) { PutFixed32(out, crc32c::Value(out->data(), out->size())); }

// Checks magic, minimum size and the trailing CRC.
Status CheckSealed(std::string_view bytes, std::string_view magic, size_t min_size, size_t max_size,
                   std::string_view where, std::string_view what) {
  if (bytes.size() < min_size || bytes.size() > max_size || !bytes.starts_with(magic)) {
    return Status::Corrupt(std::string(where) + ": not a " + std::string(what) + " (" +
                           std::to_string(bytes.size()) + " bytes)");
  }
  uint32_t want = DecodeFixed32(bytes.data() + bytes.size() - 4);
  if (crc32c::Value(bytes.data(), bytes.size() - 4) != want) {
    return Status::Corrupt(std::string(where) + ": " + std::string(what) + " checksum mismatch");
  }
  return Status::OK();
}

}  // namespace

SealedRecordReader::SealedRecordReader(std::string_view bytes, std::string_view where,
                                       std::string_view what)
    : bytes_(bytes), where_(where), what_(what) {}

Status SealedRecordReader::Open(std::string_view magic, size_t min_size, size_t max_size) {
  fields_ = Decoder(std::string_view());
  HF_RETURN_IF_ERROR(
      CheckSealed(bytes_, magic, std::max(min_size, magic.size() + 4), max_size, where_, what_));
  fields_ = Decoder(bytes_.substr(magic.size(), bytes_.size() - magic.size() - 4));
  return Status::OK();
}

Result<std::string> SealedRecordReader::LastString16(size_t max_len, std::string_view name) {
  const uint16_t len = fields_.U16();
  if (!fields_.ok() || len > max_len || fields_.remaining() != len) {
    return Corrupt("has a bad " + std::string(name) + " length");
  }
  return std::string(fields_.Bytes(len));
}

Status SealedRecordReader::Corrupt(std::string_view says) const {
  return Status::Corrupt(std::string(where_) + ": " + std::string(what_) + " " + std::string(says));
}

bool KeptState::Expired(uint64_t id) const {
  if (id > horizon || id < first) return false;
  auto it = std::lower_bound(kept.begin(), kept.end(), id,
                             [](const KeptEntry& e, uint64_t v) { return e.id < v; });
  return it == kept.end() || it->id != id;
}

const KeptEntry* KeptState::ForTime(int64_t time_ms) const {
  // Entries are ascending by id and so by time; the answer is the last entry
  // whose time is <= time_ms, if the checkpoint after it is younger.
  auto it = std::upper_bound(kept.begin(), kept.end(), time_ms,
                             [](int64_t t, const KeptEntry& e) { return t < e.time_ms; });
  if (it == kept.begin()) return nullptr;
  --it;
  return time_ms < it->next_time_ms ? &*it : nullptr;
}

std::string EncodeKeptState(const KeptState& s) {
  std::string out(kKeptMagic);
  PutFixed32(&out, kKeptVersion);
  PutFixed64(&out, s.horizon);
  PutFixed64(&out, s.first);
  PutFixed64(&out, static_cast<uint64_t>(s.collected_ms));
  PutFixed32(&out, static_cast<uint32_t>(s.kept.size()));
  for (const KeptEntry& e : s.kept) {
    PutFixed64(&out, e.id);
    PutFixed64(&out, static_cast<uint64_t>(e.time_ms));
    PutFixed64(&out, static_cast<uint64_t>(e.next_time_ms));
  }
  SealCrc(&out);
  return out;
}

Result<KeptState> DecodeKeptState(std::string_view bytes, std::string_view where) {
  constexpr size_t kFixed = 8 + 4 + 8 + 8 + 8 + 4;
  HF_RETURN_IF_ERROR(
      CheckSealed(bytes, kKeptMagic, kFixed + 4, kMaxKeptBytes, where, "collector state"));
  const char* p = bytes.data();
  uint32_t version = DecodeFixed32(p + 8);
  if (version != kKeptVersion) {
    return Status::NotSupported(std::string(where) + ": unsupported collector state version " +
                                std::to_string(version) + " (this build reads " +
                                std::to_string(kKeptVersion) + ")");
  }
  KeptState s;
  s.horizon = DecodeFixed64(p + 12);
  s.first = DecodeFixed64(p + 20);
  s.collected_ms = static_cast<int64_t>(DecodeFixed64(p + 28));
  uint32_t n = DecodeFixed32(p + 36);
  if (n > kMaxKeptEntries || bytes.size() != kFixed + uint64_t{n} * 24 + 4) {
    return Status::Corrupt(std::string(where) + ": collector state of " +
                           std::to_string(bytes.size()) + " bytes cannot hold " +
                           std::to_string(n) + " entries");
  }
  s.kept.resize(n);
  for (uint32_t i = 0; i < n; i++) {
    const char* e = p + kFixed + size_t{i} * 24;
    s.kept[i].id = DecodeFixed64(e);
    s.kept[i].time_ms = static_cast<int64_t>(DecodeFixed64(e + 8));
    s.kept[i].next_time_ms = static_cast<int64_t>(DecodeFixed64(e + 16));
    bool ascending = i == 0 || s.kept[i].id > s.kept[i - 1].id;
    if (s.kept[i].id < s.first || s.kept[i].id > s.horizon || !ascending ||
        s.kept[i].next_time_ms < s.kept[i].time_ms ||
        (i > 0 && s.kept[i].time_ms < s.kept[i - 1].next_time_ms)) {
      return Status::Corrupt(std::string(where) + ": collector state entry " + std::to_string(i) +
                             " is out of order");
    }
  }
  if (s.first == 0) return Status::Corrupt(std::string(where) + ": collector state starts at id 0");
  if (s.horizon != 0 && (s.kept.empty() || s.kept.back().id != s.horizon)) {
    return Status::Corrupt(std::string(where) + ": collector state does not keep its horizon");
  }
  return s;
}

std::string EncodeLease(const LeaseRecord& l) {
  std::string out(kLeaseMagic);
  PutFixed64(&out, l.checkpoint);
  PutFixed64(&out, l.ttl_ms);
  std::string holder = l.holder.substr(0, 255);
  PutString16(&out, holder);
  SealCrc(&out);
  return out;
}

Result<LeaseRecord> DecodeLease(std::string_view bytes, std::string_view where) {
  SealedRecordReader in(bytes, where, "reader lease");
  HF_RETURN_IF_ERROR(in.Open(kLeaseMagic, 8 + 8 + 8 + 2 + 4, kMaxLeaseBytes));
  LeaseRecord l;
  l.checkpoint = in.U64();
  l.ttl_ms = in.U64();
  HF_ASSIGN_OR_RETURN(l.holder, in.LastString16(255, "holder"));
  return l;
}

std::string LeaseKey(uint64_t lease_id) { return std::string(kLeasePrefix) + Hex16(lease_id); }
std::optional<uint64_t> ParseLeaseKey(std::string_view key) {
  return ParseHex16Key(key, kLeasePrefix);
}

std::string EncodeWriterLease(const WriterLeaseRecord& l) {
  std::string out(kWriterLeaseMagic);
  out.push_back(static_cast<char>(l.kind));
  PutFixed64(&out, l.ttl_ms);
  std::string holder = l.holder.substr(0, 255);
  PutString16(&out, holder);
  SealCrc(&out);
  return out;
}

Result<WriterLeaseRecord> DecodeWriterLease(std::string_view bytes, std::string_view where) {
  SealedRecordReader in(bytes, where, "writer lease");
  HF_RETURN_IF_ERROR(in.Open(kWriterLeaseMagic, 8 + 1 + 8 + 2 + 4, kMaxWriterLeaseBytes));
  WriterLeaseRecord l;
  const uint8_t kind = in.U8();
  if (kind != static_cast<uint8_t>(WriterKind::kWriter) &&
      kind != static_cast<uint8_t>(WriterKind::kCompaction)) {
    return in.Corrupt("has unknown kind " + std::to_string(kind));
  }
  l.kind = static_cast<WriterKind>(kind);
  l.ttl_ms = in.U64();
  HF_ASSIGN_OR_RETURN(l.holder, in.LastString16(255, "holder"));
  return l;
}

std::string WriterLeaseKey(uint64_t lease_id) {
  return std::string(kWriterLeasePrefix) + Hex16(lease_id);
}
std::optional<uint64_t> ParseWriterLeaseKey(std::string_view key) {
  return ParseHex16Key(key, kWriterLeasePrefix);
}

std::string EncodePin(const PinRecord& pin) {
  std::string out(kPinMagic);
  PutFixed64(&out, pin.checkpoint);
  PutFixed64(&out, pin.clone_file_id);
  PutString16(&out, std::string_view(pin.clone_uri).substr(0, 4096));
  SealCrc(&out);
  return out;
}

Result<PinRecord> DecodePin(std::string_view bytes, std::string_view where) {
  SealedRecordReader in(bytes, where, "clone pin");
  HF_RETURN_IF_ERROR(in.Open(kPinMagic, 8 + 8 + 8 + 2 + 4, kMaxPinBytes));
  PinRecord pin;
  pin.checkpoint = in.U64();
  pin.clone_file_id = in.U64();
  HF_ASSIGN_OR_RETURN(pin.clone_uri, in.LastString16(4096, "URI"));
  return pin;
}

std::string PinKey(uint64_t clone_file_id) {
  return std::string(kPinPrefix) + Hex16(clone_file_id);
}
std::optional<uint64_t> ParsePinKey(std::string_view key) { return ParseHex16Key(key, kPinPrefix); }

}  // namespace hyperfile::format

namespace hyperfile::format {

std::string EncodeLedger(const Ledger& l) {
  std::string out(kLedgerMagic);
  PutFixed32(&out, kLedgerVersion);
  PutFixed64(&out, l.file_id);
  PutFixed64(&out, l.processed);
  PutFixed32(&out, l.processed_crc);
  PutFixed64(&out, static_cast<uint64_t>(l.swept_ms));
  PutFixed32(&out, static_cast<uint32_t>(l.objects.size()));
  PutFixed32(&out, static_cast<uint32_t>(l.pending.size()));
  for (const LedgerObject& o : l.objects) {
    out.push_back(static_cast<char>(o.key.size()));
    out += o.key;
    PutFixed64(&out, o.born);
    PutFixed64(&out, o.size);
    PutFixed64(&out, o.refs);
    PutFixed64(&out, static_cast<uint64_t>(o.unkept_since_ms));
    out.push_back(static_cast<char>(o.spans.size()));
    for (const auto& [from, to] : o.spans) {
      PutFixed64(&out, from);
      PutFixed64(&out, to);
    }
  }
  for (const std::string& k : l.pending) {
    out.push_back(static_cast<char>(k.size()));
    out += k;
  }
  SealCrc(&out);
  return out;
}

Result<Ledger> DecodeLedger(std::string_view bytes, std::string_view where) {
  constexpr size_t kFixed = 8 + 4 + 8 + 8 + 4 + 8 + 4 + 4;
  HF_RETURN_IF_ERROR(
      CheckSealed(bytes, kLedgerMagic, kFixed + 4, kMaxLedgerBytes, where, "collector ledger"));
  const char* p = bytes.data();
  const size_t end = bytes.size() - 4;
  uint32_t version = DecodeFixed32(p + 8);
  if (version != kLedgerVersion) {
    return Status::NotSupported(std::string(where) + ": unsupported collector ledger version " +
                                std::to_string(version));
  }
  Ledger l;
  l.file_id = DecodeFixed64(p + 12);
  l.processed = DecodeFixed64(p + 20);
  l.processed_crc = DecodeFixed32(p + 28);
  l.swept_ms = static_cast<int64_t>(DecodeFixed64(p + 32));
  uint32_t n = DecodeFixed32(p + 40);
  uint32_t m = DecodeFixed32(p + 44);
  auto bad = [&](const std::string& why) {
    return Status::Corrupt(std::string(where) + ": " + why);
  };
  if (n > kMaxLedgerObjects || m > kMaxLedgerObjects) return bad("too many entries");
  size_t pos = kFixed;
  auto key = [&](std::string* out) -> bool {
    if (pos >= end) return false;
    size_t len = static_cast<uint8_t>(p[pos++]);
    if (len == 0 || len > kMaxLedgerKeyBytes || end - pos < len) return false;
    out->assign(p + pos, len);
    pos += len;
    return true;
  };
  l.objects.reserve(n);
  for (uint32_t i = 0; i < n; i++) {
    LedgerObject o;
    if (!key(&o.key) || end - pos < 33) return bad("entry " + std::to_string(i) + " truncated");
    o.born = DecodeFixed64(p + pos);
    o.size = DecodeFixed64(p + pos + 8);
    o.refs = DecodeFixed64(p + pos + 16);
    o.unkept_since_ms = static_cast<int64_t>(DecodeFixed64(p + pos + 24));
    size_t spans = static_cast<uint8_t>(p[pos + 32]);
    pos += 33;
    if (spans > kMaxLedgerSpans || end - pos < spans * 16) {
      return bad("entry " + o.key + ": bad span count");
    }
    uint64_t last = 0;
    for (size_t s = 0; s < spans; s++) {
      uint64_t from = DecodeFixed64(p + pos), to = DecodeFixed64(p + pos + 8);
      pos += 16;
      if (from < last || to <= from || (to == kOpenSpan && s + 1 != spans)) {
        return bad("entry " + o.key + ": spans not ascending");
      }
      last = to;
      o.spans.emplace_back(from, to);
    }
    bool open = !o.spans.empty() && o.spans.back().second == kOpenSpan;
    if (open != (o.refs > 0)) return bad("entry " + o.key + ": references and spans disagree");
    if (!l.objects.empty() && l.objects.back().key >= o.key) return bad("keys not ascending");
    l.objects.push_back(std::move(o));
  }
  for (uint32_t i = 0; i < m; i++) {
    std::string k;
    if (!key(&k)) return bad("pending key " + std::to_string(i) + " truncated");
    l.pending.push_back(std::move(k));
  }
  if (pos != end) return bad("trailing bytes");
  return l;
}

}  // namespace hyperfile::format
