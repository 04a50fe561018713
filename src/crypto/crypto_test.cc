// SPDX-License-Identifier: Apache-2.0
// The crypto layer without a store: secrets, the AEAD use (known answers,
// tampering, associated data), Argon2id (known answers, bounds), key text.
#include <gtest/gtest.h>
#include <sodium.h>

#include <random>
#include <set>
#include <string>
#include <vector>

#include "crypto/aead.h"
#include "crypto/kdf.h"
#include "crypto/secret.h"

namespace hyperfile::crypto {
namespace {

std::string Hex(std::string_view s) {
  static const char* d = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out.push_back(d[c >> 4]);
    out.push_back(d[c & 15]);
  }
  return out;
}

std::string Unhex(std::string_view h) {
  std::string out;
  for (size_t i = 0; i + 1 < h.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(std::string(h.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

std::string Range(int first, int n) {
  std::string s;
  for (int i = 0; i < n; i++) s.push_back(static_cast<char>(first + i));
  return s;
}

SecretKey KeyOf(const std::string& raw) {
  auto k = SecretKey::FromBytes(raw, "test key");
  EXPECT_TRUE(k.ok()) << k.status().ToString();
  return std::move(*k);
}

// A nonce source that hands out one fixed nonce (known-answer tests only).
class FixedNonce final : public NonceSource {
 public:
  explicit FixedNonce(std::string nonce) : nonce_(std::move(nonce)) {}
  void Next(unsigned char out[kNonceBytes]) override {
    std::copy(nonce_.begin(), nonce_.end(), out);
  }

 private:
  std::string nonce_;
};

FramePlace SomePlace() {
  FramePlace p;
  p.kind = FrameKind::kDataFrame;
  p.file_id = 0x1122334455667788;
  p.checkpoint = 7;
  p.writer_epoch = 0xabcdef0123456789;
  p.in_data_object = true;
  p.offset = 65536;
  return p;
}

// ---- secrets ---------------------------------------------------------------

TEST(Secret, KeysAreMoveOnlyAndWipedOnMove) {
  static_assert(!std::is_copy_constructible_v<SecretKey>);
  static_assert(!std::is_copy_assignable_v<SecretKey>);
  static_assert(!std::is_copy_constructible_v<SecureBuffer>);
  auto a = SecretKey::Random();
  ASSERT_TRUE(a.ok());
  EXPECT_FALSE(a->empty());
  SecretKey b = std::move(*a);
  EXPECT_TRUE(a->empty());  // NOLINT(bugprone-use-after-move): the contract
  EXPECT_FALSE(b.empty());
  EXPECT_EQ(a->Describe(), "no key");
}

TEST(Secret, RandomKeysDifferAndDescribeShowsOnlyAFingerprint) {
  std::set<std::string> seen;
  for (int i = 0; i < 64; i++) {
    auto k = SecretKey::Random();
    ASSERT_TRUE(k.ok());
    std::string raw(reinterpret_cast<const char*>(k->data()), SecretKey::kSize);
    EXPECT_TRUE(seen.insert(raw).second);
    std::string d = k->Describe();
    ASSERT_EQ(d.size(), 4u + 16u) << d;
    EXPECT_TRUE(d.starts_with("key "));
    // The fingerprint is not any part of the key's hex.
    EXPECT_EQ(Hex(raw).find(d.substr(4, 8)), std::string::npos);
  }
  // The same key has the same fingerprint; a different one another.
  SecretKey a = KeyOf(Range(0, 32)), b = KeyOf(Range(0, 32)), c = KeyOf(Range(1, 32));
  EXPECT_EQ(a.Describe(), b.Describe());
  EXPECT_NE(a.Describe(), c.Describe());
}

TEST(Secret, KeyTextHexAndBase64WithWhitespace) {
  const std::string raw = Range(0, 32);
  const std::string hex = Hex(raw);
  const std::string b64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
  for (const std::string& text :
       {hex, hex + "\n", "  " + hex + "\r\n", b64, b64 + "\n", b64.substr(0, 43)}) {
    auto k = SecretKey::FromText(text, "HYPERFILE_KEY");
    ASSERT_TRUE(k.ok()) << "'" << text << "': " << k.status().ToString();
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(k->data()), 32), raw);
  }
  // Upper-case hex is hex too.
  std::string upper = hex;
  for (char& c : upper) c = static_cast<char>(std::toupper(c));
  EXPECT_TRUE(SecretKey::FromText(upper, "k").ok());
}

TEST(Secret, BadKeyTextIsRefusedWithoutEchoingIt) {
  const std::string hex = Hex(Range(0, 32));
  const std::string secretish = "s3cr3t-passphrase-not-a-key";
  for (const std::string& text :
       {std::string(), hex.substr(0, 62), hex + "00", "zz" + hex.substr(2),
        hex.substr(0, 32) + " " + hex.substr(32), std::string(44, '!'), secretish,
        std::string("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8A")}) {
    auto k = SecretKey::FromText(text, "HYPERFILE_KEY");
    ASSERT_FALSE(k.ok()) << "'" << text << "'";
    EXPECT_TRUE(k.status().IsInvalidArgument());
    EXPECT_NE(k.status().message().find("HYPERFILE_KEY: not a key"), std::string::npos);
    if (text.size() >= 8) {
      EXPECT_EQ(k.status().message().find(text), std::string::npos) << k.status().ToString();
    }
  }
}

TEST(Secret, KeyFileIsRawWhenExactly32BytesElseText) {
  const std::string raw = Range(100, 32);
  auto k = SecretKey::FromKeyFileContents(raw, "key file");
  ASSERT_TRUE(k.ok());
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(k->data()), 32), raw);
  auto t = SecretKey::FromKeyFileContents(Hex(raw) + "\n", "key file");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(t->data()), 32), raw);
  EXPECT_TRUE(SecretKey::FromKeyFileContents(raw + "\n", "f").status().IsInvalidArgument());
  EXPECT_TRUE(SecretKey::FromKeyFileContents(raw.substr(1), "f").status().IsInvalidArgument());
  EXPECT_TRUE(
      SecretKey::FromKeyFileContents(std::string(5000, 'a'), "f").status().IsInvalidArgument());
  EXPECT_TRUE(SecretKey::FromBytes(raw.substr(0, 31), "f").status().IsInvalidArgument());
}

TEST(Secret, KeyIdsDependOnLabelContextAndKey) {
  SecretKey a = KeyOf(Range(0, 32)), b = KeyOf(Range(1, 32));
  auto ida = DeriveKeyId(a, "label", "ctx");
  ASSERT_TRUE(ida.ok());
  EXPECT_EQ(*ida, *DeriveKeyId(a, "label", "ctx"));
  EXPECT_NE(*ida, *DeriveKeyId(b, "label", "ctx"));
  EXPECT_NE(*ida, *DeriveKeyId(a, "other", "ctx"));
  EXPECT_NE(*ida, *DeriveKeyId(a, "label", "ctY"));
  EXPECT_EQ(KeyIdHex(*ida).size(), 32u);
  EXPECT_TRUE(DeriveKeyId(SecretKey(), "l", "").status().IsInvalidArgument());
}

// ---- AEAD: known answers ---------------------------------------------------

// draft-irtf-cfrg-xchacha-03, appendix A.3.1 (AEAD_XChaCha20_Poly1305),
// recomputed independently (src/crypto/xchacha_vectors.py: a pure-Python
// HChaCha20, then python3-cryptography's RFC 8439 ChaCha20-Poly1305): the
// same bytes.
TEST(AeadKnownAnswer, DraftXChaChaVector) {
  const std::string plaintext =
      "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the "
      "future, sunscreen would be it.";
  const std::string ad = Unhex("50515253c0c1c2c3c4c5c6c7");
  const std::string nonce = Range(0x40, 24);
  FixedNonce fixed(nonce);
  SecretKey key = KeyOf(Range(0x80, 32));
  auto sealed = Seal(key, ad, plaintext, fixed);
  ASSERT_TRUE(sealed.ok());
  const std::string want_ct =
      "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb731c7f1b0b4aa6440bf3a82f4e"
      "da7e39ae64c6708c54c216cb96b72e1213b4522f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2"
      "383565d3fff921f9664c97637da9768812f615c68b13b52e";
  const std::string want_tag = "c0875924c1c7987947deafd8780acf49";
  EXPECT_EQ(Hex(*sealed), Hex(nonce) + want_ct + want_tag);
  auto opened = Open(key, ad, *sealed, "vector");
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  EXPECT_EQ(*opened, plaintext);
}

// Our associated-data layout with a fixed place: the AD bytes themselves
// (the documented layout) and the sealed bytes, computed independently by
// the same Python script (src/crypto/xchacha_vectors.py).
TEST(AeadKnownAnswer, FrameAssociatedDataLayoutAndSealedBytes) {
  const std::string ad = FrameAssociatedData(SomePlace());
  ASSERT_EQ(ad.size(), kFrameAdBytes);
  EXPECT_EQ(Hex(ad),
            "48464144"            // "HFAD"
            "01010100"            // version, kind data, in data object, reserved
            "8877665544332211"    // file id
            "0700000000000000"    // checkpoint
            "8967452301efcdab"    // writer epoch
            "0000010000000000");  // offset 65536
  FixedNonce fixed(Range(0xa0, 24));
  SecretKey key = KeyOf(Range(0, 32));
  auto sealed = Seal(key, ad, "hyperfile", fixed);
  ASSERT_TRUE(sealed.ok());
  EXPECT_EQ(Hex(*sealed),
            Hex(Range(0xa0, 24)) + "2d957a78c53bcdc0040714d8b0fa83072fe3175753737e812c");
}

// ---- AEAD: behaviour -------------------------------------------------------

TEST(Aead, RoundTripsEverySizeWithFreshNonces) {
  auto key = SecretKey::Random();
  ASSERT_TRUE(key.ok());
  const std::string ad = FrameAssociatedData(SomePlace());
  std::set<std::string> nonces;
  for (size_t n : {0, 1, 15, 16, 17, 4095, 4096, 65536, 1 << 20}) {
    std::string plain(n, '\0');
    for (size_t i = 0; i < n; i++) plain[i] = static_cast<char>(i * 131 + n);
    auto sealed = Seal(*key, ad, plain);
    ASSERT_TRUE(sealed.ok());
    ASSERT_EQ(sealed->size(), n + kSealOverhead);
    EXPECT_TRUE(nonces.insert(sealed->substr(0, kNonceBytes)).second);
    if (n >= 64) {
      EXPECT_EQ(sealed->find(plain.substr(0, 64)), std::string::npos);
    }
    auto opened = Open(*key, ad, *sealed, "frame");
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    EXPECT_EQ(*opened, plain);
  }
  // The same plaintext at the same place seals differently every time.
  EXPECT_NE(*Seal(*key, ad, "same"), *Seal(*key, ad, "same"));
}

// Seal and Open compose HChaCha20 with OpenSSL's ChaCha20-Poly1305; the
// result must be libsodium's XChaCha20-Poly1305 byte for byte, both ways, at
// every size around the ciphers' block and vector widths, with and without
// associated data.
TEST(Aead, OpenSslPathMatchesLibsodiumAtEverySize) {
  std::mt19937_64 rng(12);
  auto bytes = [&](size_t n) {
    std::string s(n, '\0');
    for (auto& c : s) c = static_cast<char>(rng());
    return s;
  };
  SecretKey key = KeyOf(bytes(32));
  std::vector<size_t> sizes = {0,    1,    15,   16,    17,    63,         64,
                               65,   255,  256,  257,   511,   512,        513,
                               1023, 4096, 4097, 65535, 65536, 65536 + 40, 1 << 20};
  for (int i = 0; i < 40; i++) sizes.push_back(rng() % 20000);
  for (size_t n : sizes) {
    for (const std::string& ad : {std::string(), FrameAssociatedData(SomePlace()), bytes(777)}) {
      SCOPED_TRACE("size " + std::to_string(n) + ", ad " + std::to_string(ad.size()));
      const std::string plain = bytes(n);
      const std::string nonce = bytes(kNonceBytes);
      FixedNonce fixed(nonce);
      auto sealed = Seal(key, ad, plain, fixed);
      ASSERT_TRUE(sealed.ok());
      std::string want(kNonceBytes + n + kTagBytes, '\0');
      std::copy(nonce.begin(), nonce.end(), want.begin());
      unsigned long long written = 0;
      auto* w = reinterpret_cast<unsigned char*>(want.data());
      ASSERT_EQ(
          crypto_aead_xchacha20poly1305_ietf_encrypt(
              w + kNonceBytes, &written, reinterpret_cast<const unsigned char*>(plain.data()), n,
              reinterpret_cast<const unsigned char*>(ad.data()), ad.size(), nullptr, w, key.data()),
          0);
      ASSERT_EQ(Hex(*sealed), Hex(want));
      auto opened = Open(key, ad, want, "libsodium's");
      ASSERT_TRUE(opened.ok()) << opened.status().ToString();
      ASSERT_EQ(*opened, plain);
      // A changed tag (the last byte) is refused and releases nothing.
      want.back() = static_cast<char>(want.back() ^ 1);
      std::string out = "stale";
      EXPECT_TRUE(OpenTo(key, ad, want, &out, "f").IsCorrupt());
      EXPECT_TRUE(out.empty());
    }
  }
}

TEST(Aead, SealToAppendsAndOpenToReplaces) {
  auto key = SecretKey::Random();
  std::string out = "prefix";
  ASSERT_TRUE(SealTo(*key, "ad", "body", &out).ok());
  ASSERT_EQ(out.size(), 6 + 4 + kSealOverhead);
  EXPECT_EQ(out.substr(0, 6), "prefix");
  std::string plain = "stale";
  ASSERT_TRUE(OpenTo(*key, "ad", std::string_view(out).substr(6), &plain, "f").ok());
  EXPECT_EQ(plain, "body");
}

TEST(AeadTampering, EveryFlippedBitFailsAuthentication) {
  auto key = SecretKey::Random();
  const std::string ad = FrameAssociatedData(SomePlace());
  auto sealed = Seal(*key, ad, std::string(100, 'x'));
  ASSERT_TRUE(sealed.ok());
  // Every bit of the nonce, the ciphertext and the tag.
  for (size_t bit = 0; bit < sealed->size() * 8; bit++) {
    std::string bad = *sealed;
    bad[bit / 8] = static_cast<char>(bad[bit / 8] ^ (1 << (bit % 8)));
    std::string out = "untouched";
    Status st = OpenTo(*key, ad, bad, &out, "seg/x at 4096");
    ASSERT_TRUE(st.IsCorrupt()) << "bit " << bit << ": " << st.ToString();
    EXPECT_TRUE(out.empty()) << "bit " << bit << ": plaintext released";
    EXPECT_EQ(st.message(),
              "seg/x at 4096: authentication failed (the bytes were changed, or belong to "
              "another place, checkpoint or file, or to another key)");
  }
}

TEST(AeadTampering, AFrameFromAnotherPlaceFails) {
  auto key = SecretKey::Random();
  const FramePlace here = SomePlace();
  auto sealed = Seal(*key, FrameAssociatedData(here), "data at 65536");
  ASSERT_TRUE(sealed.ok());
  std::vector<std::pair<std::string, FramePlace>> elsewhere;
  FramePlace p = here;
  p.offset += 4096;
  elsewhere.emplace_back("another offset", p);
  p = here;
  p.checkpoint += 1;
  elsewhere.emplace_back("another checkpoint", p);
  p = here;
  p.file_id ^= 1;
  elsewhere.emplace_back("another file id", p);
  p = here;
  p.writer_epoch += 1;
  elsewhere.emplace_back("another writer epoch", p);
  p = here;
  p.in_data_object = false;
  elsewhere.emplace_back("the segment instead of the data object", p);
  p = here;
  p.kind = FrameKind::kIndexNode;
  elsewhere.emplace_back("an index node", p);
  for (const auto& [what, place] : elsewhere) {
    auto r = Open(*key, FrameAssociatedData(place), *sealed, what);
    ASSERT_FALSE(r.ok()) << what;
    EXPECT_TRUE(r.status().IsCorrupt()) << what;
    EXPECT_NE(r.status().message().find("authentication failed"), std::string::npos);
  }
  EXPECT_TRUE(Open(*key, FrameAssociatedData(here), *sealed, "here").ok());
}

TEST(AeadTampering, TruncatedExtendedAndSwappedFramesFail) {
  auto key = SecretKey::Random();
  const std::string ad = FrameAssociatedData(SomePlace());
  auto a = Seal(*key, ad, std::string(64, 'a'));
  auto b = Seal(*key, ad, std::string(64, 'b'));
  for (size_t keep : {size_t{0}, size_t{1}, kNonceBytes, kSealOverhead - 1}) {
    auto r = Open(*key, ad, a->substr(0, keep), "short");
    ASSERT_TRUE(r.status().IsCorrupt());
    EXPECT_NE(r.status().message().find("shorter than its 40-byte overhead"), std::string::npos);
  }
  for (size_t keep : {kSealOverhead, a->size() - 1}) {
    EXPECT_TRUE(Open(*key, ad, a->substr(0, keep), "cut").status().IsCorrupt()) << keep;
  }
  EXPECT_TRUE(Open(*key, ad, *a + "x", "longer").status().IsCorrupt());
  // a's nonce with b's body and tag, and the reverse.
  EXPECT_TRUE(Open(*key, ad, a->substr(0, 24) + b->substr(24), "mix").status().IsCorrupt());
  EXPECT_TRUE(Open(*key, ad, b->substr(0, 24) + a->substr(24), "mix").status().IsCorrupt());
}

TEST(AeadTampering, WrongKeyAndMissingKey) {
  auto key = SecretKey::Random();
  auto other = SecretKey::Random();
  auto sealed = Seal(*key, "ad", "secret data");
  auto r = Open(*other, "ad", *sealed, "frame");
  EXPECT_TRUE(r.status().IsCorrupt());
  EXPECT_NE(r.status().message().find("another key"), std::string::npos);
  SecretKey none;
  EXPECT_TRUE(Open(none, "ad", *sealed, "frame").status().IsInvalidArgument());
  EXPECT_TRUE(Seal(none, "ad", "x").status().IsInvalidArgument());
}

// ---- Argon2id ----------------------------------------------------------------

// Known answers computed with the reference implementation of Argon2 (the
// Debian `argon2` command, not libsodium):
//   echo -n "correct horse battery staple" |
//     argon2 hyperfile-salt16 -id -t T -k KiB -p 1 -l 32 -r
TEST(KdfKnownAnswer, Argon2idMatchesTheReferenceImplementation) {
  struct Vector {
    uint64_t ops, kib;
    const char* want;
  };
  for (const Vector& v :
       {Vector{2, 64, "188bb870721da6140f69e0ba1619df04baf0995413b38626a071eb36a5cc5cc1"},
        Vector{1, 8, "cd000ff1cf4f690b525b97dbbb870f86f27ddda66f6a25445b234a58ce129652"}}) {
    KdfParams p;
    p.id = KdfId::kArgon2id;
    p.ops = v.ops;
    p.mem_bytes = v.kib * 1024;
    const std::string salt = "hyperfile-salt16";
    std::copy(salt.begin(), salt.end(), p.salt.begin());
    auto kek = DeriveKek("correct horse battery staple", p);
    ASSERT_TRUE(kek.ok()) << kek.status().ToString();
    EXPECT_EQ(Hex(std::string_view(reinterpret_cast<const char*>(kek->data()), 32)), v.want);
  }
}

TEST(Kdf, SaltAndCostChangeTheKeyAndNewParamsAreRandom) {
  auto p1 = NewArgon2idParams(1, 8192);
  auto p2 = NewArgon2idParams(1, 8192);
  ASSERT_TRUE(p1.ok() && p2.ok());
  EXPECT_NE(p1->salt, p2->salt);
  auto a = DeriveKek("pass", *p1), b = DeriveKek("pass", *p2), c = DeriveKek("pass", *p1);
  auto d = DeriveKek("pasS", *p1);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok() && d.ok());
  EXPECT_NE(a->Describe(), b->Describe());
  EXPECT_EQ(a->Describe(), c->Describe());
  EXPECT_NE(a->Describe(), d->Describe());
  KdfParams more = *p1;
  more.ops = 2;
  EXPECT_NE(a->Describe(), DeriveKek("pass", more)->Describe());
}

TEST(Kdf, BoundsAreEnforcedBeforeAnyWork) {
  KdfParams p;
  p.id = KdfId::kArgon2id;
  p.ops = 1;
  p.mem_bytes = 8192;
  EXPECT_TRUE(ValidateKdfParams(p, "r").ok());
  struct Bad {
    uint64_t ops, mem;
  };
  for (Bad b : {Bad{0, 8192}, Bad{17, 8192}, Bad{~0ull, 8192}, Bad{1, 4096}, Bad{1, 8193},
                Bad{1, (1ull << 30) + 1024}, Bad{1, ~0ull - 1023}}) {
    p.ops = b.ops;
    p.mem_bytes = b.mem;
    Status st = ValidateKdfParams(p, "key/0000000000000001");
    EXPECT_TRUE(st.IsCorrupt()) << b.ops << " " << b.mem;
    EXPECT_NE(st.message().find("key/0000000000000001"), std::string::npos);
    EXPECT_TRUE(DeriveKek("pass", p).status().IsInvalidArgument());
    EXPECT_TRUE(NewArgon2idParams(b.ops, b.mem).status().IsInvalidArgument());
  }
  KdfParams none;
  EXPECT_TRUE(ValidateKdfParams(none, "r").ok());
  none.salt[3] = 1;
  EXPECT_TRUE(ValidateKdfParams(none, "r").IsCorrupt());
  none = KdfParams{};
  none.ops = 1;
  EXPECT_TRUE(ValidateKdfParams(none, "r").IsCorrupt());
  KdfParams unknown;
  unknown.id = static_cast<KdfId>(7);
  EXPECT_TRUE(ValidateKdfParams(unknown, "r").IsCorrupt());
  auto ok = NewArgon2idParams(1, 8192);
  EXPECT_TRUE(DeriveKek("", *ok).status().IsInvalidArgument());
  EXPECT_TRUE(DeriveKek(std::string(4097, 'p'), *ok).status().IsInvalidArgument());
  EXPECT_TRUE(DeriveKek("p", KdfParams{}).status().IsInvalidArgument());
}

}  // namespace
}  // namespace hyperfile::crypto
