// SPDX-License-Identifier: Apache-2.0
// The strict sealed-record reader the lease, writer lease and pin decoders
// share (format/gc_records.h): its bounds (size, magic, CRC, the last
// string's length ending exactly at the CRC) and its errors naming the
// object; then each decoder's use of it (its maximum string length).
// Round trips of the records are in tests/gc.
#include "format/gc_records.h"

#include <gtest/gtest.h>

#include <string>

#include "util/coding.h"
#include "util/crc32c.h"

namespace hyperfile::format {
namespace {

constexpr std::string_view kMagic = "HFTEST01";

// magic + body + the CRC of both.
std::string Sealed(std::string_view magic, const std::string& body) {
  std::string out(magic);
  out += body;
  PutFixed32(&out, crc32c::Value(out.data(), out.size()));
  return out;
}

// A test record: u8, u64, then a string16 of `s` (length field `len`,
// defaulting to s.size()), then `trailing`.
std::string Record(std::string_view s, int len = -1, const std::string& trailing = "") {
  std::string body;
  PutFixed8(&body, 7);
  PutFixed64(&body, 0x0102030405060708ull);
  PutFixed16(&body, static_cast<uint16_t>(len < 0 ? s.size() : static_cast<size_t>(len)));
  body += s;
  body += trailing;
  return Sealed(kMagic, body);
}

constexpr size_t kMin = 8 + 1 + 8 + 2 + 4;
constexpr size_t kMax = kMin + 10;

Result<std::string> Read(const std::string& bytes, size_t max_len = 10) {
  SealedRecordReader in(bytes, "store/obj", "test record");
  HF_RETURN_IF_ERROR(in.Open(kMagic, kMin, kMax));
  EXPECT_EQ(in.U8(), 7);
  EXPECT_EQ(in.U64(), 0x0102030405060708ull);
  return in.LastString16(max_len, "name");
}

TEST(SealedRecordReader, ReadsFieldsInOrderUpToAStringEndingAtTheCrc) {
  auto r = Read(Record("hello"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, "hello");
  auto empty = Read(Record(""));
  ASSERT_TRUE(empty.ok()) << empty.status().ToString();
  EXPECT_EQ(*empty, "");
  auto longest = Read(Record(std::string(10, 'x')));  // max_len and kMax exactly
  ASSERT_TRUE(longest.ok()) << longest.status().ToString();
  EXPECT_EQ(*longest, std::string(10, 'x'));
}

TEST(SealedRecordReader, SizeMagicAndChecksumAreCheckedFirst) {
  const std::string good = Record("abc");
  struct Case {
    std::string bytes;
    std::string message;
  };
  std::string bad_magic = good;
  bad_magic[0] = 'X';
  std::string flipped = good;
  flipped[10] ^= 1;
  for (const Case& c : {
           Case{good.substr(0, kMin - 1), "store/obj: not a test record (22 bytes)"},
           Case{"", "store/obj: not a test record (0 bytes)"},
           Case{Record(std::string(11, 'x')), "store/obj: not a test record (34 bytes)"},
           Case{bad_magic, "store/obj: not a test record (26 bytes)"},
           Case{flipped, "store/obj: test record checksum mismatch"},
       }) {
    SealedRecordReader in(c.bytes, "store/obj", "test record");
    Status st = in.Open(kMagic, kMin, kMax);
    EXPECT_TRUE(st.IsCorrupt()) << st.ToString();
    EXPECT_EQ(st.message(), c.message);
  }
}

TEST(SealedRecordReader, TheLastStringMustFitItsMaximumAndEndAtTheCrc) {
  const std::string bad = "store/obj: test record has a bad name length";
  for (const std::string& bytes : {
           Record("abc", 4),             // says more than there is (reads into the CRC)
           Record("abc", 2),             // says less: a byte left over
           Record("abc", 3, "z"),        // trailing byte after the string
           Record("abc", 0xffff),        // far past the end
           Record(std::string(6, 'x')),  // over this call's max_len (5)
       }) {
    auto r = Read(bytes, 5);
    EXPECT_TRUE(r.status().IsCorrupt()) << r.status().ToString();
    EXPECT_EQ(r.status().message(), bad);
  }
  EXPECT_TRUE(Read(Record(std::string(5, 'x')), 5).ok());
}

TEST(SealedRecordReader, ReadsPastTheFieldsAreBoundedAndFailTheRecord) {
  // Only magic and CRC (a caller whose minimum allows it): every field is
  // missing, reads give 0, the string fails.
  const std::string bare = Sealed(kMagic, "");
  SealedRecordReader in(bare, "store/obj", "test record");
  ASSERT_TRUE(in.Open(kMagic, 0, kMax).ok());
  EXPECT_EQ(in.U64(), 0u);
  EXPECT_EQ(in.U8(), 0u);
  EXPECT_EQ(in.LastString16(10, "name").status().message(),
            "store/obj: test record has a bad name length");
  // Before Open, or after a failed one, there are no fields either.
  const std::string good = Record("abc");
  SealedRecordReader unopened(good, "store/obj", "test record");
  EXPECT_EQ(unopened.U8(), 0u);
  EXPECT_TRUE(unopened.LastString16(10, "name").status().IsCorrupt());
  SealedRecordReader failed(good, "store/obj", "test record");
  EXPECT_FALSE(failed.Open("HFOTHER1", kMin, kMax).ok());
  EXPECT_EQ(failed.U8(), 0u);
}

TEST(SealedRecordReader, CorruptNamesTheObjectAndTheRecord) {
  SealedRecordReader in("", "s3://b/f/pin/00", "clone pin");
  Status st = in.Corrupt("has unknown kind 9");
  EXPECT_TRUE(st.IsCorrupt());
  EXPECT_EQ(st.message(), "s3://b/f/pin/00: clone pin has unknown kind 9");
}

// Each decoder's string maximum, one past it with a valid CRC, and the
// byte layout of docs/format.md.
TEST(SealedRecordReader, EachDecoderBoundsItsStringAndNamesTheObject) {
  auto body = [](std::initializer_list<uint64_t> fixed, size_t len, bool kind = false) {
    std::string b;
    if (kind) PutFixed8(&b, 1);
    for (uint64_t v : fixed) PutFixed64(&b, v);
    PutFixed16(&b, static_cast<uint16_t>(len));
    b += std::string(len, 'h');
    return b;
  };
  auto lease = DecodeLease(Sealed(kLeaseMagic, body({5, 60000}, 255)), "w/lease/1");
  ASSERT_TRUE(lease.ok()) << lease.status().ToString();
  EXPECT_EQ(lease->checkpoint, 5u);
  EXPECT_EQ(lease->ttl_ms, 60000u);
  EXPECT_EQ(lease->holder, std::string(255, 'h'));
  EXPECT_EQ(DecodeLease(Sealed(kLeaseMagic, body({5, 60000}, 256)), "w/lease/1").status().message(),
            "w/lease/1: not a reader lease (" + std::to_string(kMaxLeaseBytes + 1) + " bytes)");
  EXPECT_EQ(
      DecodeLease(Sealed(kLeaseMagic, body({5, 60000}, 0) + "x"), "w/lease/1").status().message(),
      "w/lease/1: reader lease has a bad holder length");

  auto writer =
      DecodeWriterLease(Sealed(kWriterLeaseMagic, body({30000}, 255, true)), "w/writer/1");
  ASSERT_TRUE(writer.ok()) << writer.status().ToString();
  EXPECT_EQ(writer->kind, WriterKind::kWriter);
  EXPECT_EQ(writer->ttl_ms, 30000u);
  EXPECT_EQ(writer->holder.size(), 255u);
  EXPECT_EQ(DecodeWriterLease(Sealed(kWriterLeaseMagic, body({30000}, 3, true) + "x"), "w/writer/1")
                .status()
                .message(),
            "w/writer/1: writer lease has a bad holder length");

  auto pin = DecodePin(Sealed(kPinMagic, body({5, 77}, 4096)), "w/pin/1");
  ASSERT_TRUE(pin.ok()) << pin.status().ToString();
  EXPECT_EQ(pin->checkpoint, 5u);
  EXPECT_EQ(pin->clone_file_id, 77u);
  EXPECT_EQ(pin->clone_uri.size(), 4096u);
  // A length field over 4096 in a record short enough to be a pin.
  std::string over = body({5, 77}, 0);
  over[over.size() - 2] = static_cast<char>(4097 & 0xff);
  over[over.size() - 1] = static_cast<char>(4097 >> 8);
  EXPECT_EQ(
      DecodePin(Sealed(kPinMagic, over + std::string(100, 'u')), "w/pin/1").status().message(),
      "w/pin/1: clone pin has a bad URI length");
}

}  // namespace
}  // namespace hyperfile::format
