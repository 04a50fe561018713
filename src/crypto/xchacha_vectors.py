#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# How the XChaCha20-Poly1305 known answers in crypto_test.cc were computed,
# independently of libsodium: HChaCha20 in pure Python, then RFC 8439
# ChaCha20-Poly1305 from python3-cryptography. Prints ciphertext||tag.
#   python3 src/crypto/xchacha_vectors.py 484641440101010088776655443322110700000000000000\
#     8967452301efcdab0000010000000000 hyperfile
# (AD hex as one argument, then the plaintext; no arguments: the draft's A.3.1)
import struct, sys
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
def rotl(v,c): return ((v<<c)&0xffffffff)|(v>>(32-c))
def qr(s,a,b,c,d):
    s[a]=(s[a]+s[b])&0xffffffff; s[d]=rotl(s[d]^s[a],16)
    s[c]=(s[c]+s[d])&0xffffffff; s[b]=rotl(s[b]^s[c],12)
    s[a]=(s[a]+s[b])&0xffffffff; s[d]=rotl(s[d]^s[a],8)
    s[c]=(s[c]+s[d])&0xffffffff; s[b]=rotl(s[b]^s[c],7)
def hchacha20(key, n16):
    s=list(struct.unpack('<4I',b'expand 32-byte k'))+list(struct.unpack('<8I',key))+list(struct.unpack('<4I',n16))
    for _ in range(10):
        qr(s,0,4,8,12);qr(s,1,5,9,13);qr(s,2,6,10,14);qr(s,3,7,11,15)
        qr(s,0,5,10,15);qr(s,1,6,11,12);qr(s,2,7,8,13);qr(s,3,4,9,14)
    return struct.pack('<8I',*(s[0:4]+s[12:16]))
def xseal(key,nonce,ad,pt):
    sub=hchacha20(key,nonce[:16])
    return ChaCha20Poly1305(sub).encrypt(b'\0\0\0\0'+nonce[16:],pt,ad)
# draft-irtf-cfrg-xchacha-03 A.3.1 inputs
key=bytes(range(0x80,0xa0)); nonce=bytes(range(0x40,0x58)); ad=bytes.fromhex('50515253c0c1c2c3c4c5c6c7')
pt=b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it."
print('draft', xseal(key,nonce,ad,pt).hex())
# our vector: key 00..1f, nonce a0..b7, the AD and plaintext from the command line
if len(sys.argv)>1:
    print('hf', xseal(bytes(range(32)), bytes(range(0xa0,0xb8)), bytes.fromhex(sys.argv[1]), sys.argv[2].encode()).hex())
