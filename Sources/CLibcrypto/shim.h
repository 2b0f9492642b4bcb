#ifndef REGISTRYD_CLIBCRYPTO_SHIM_H
#define REGISTRYD_CLIBCRYPTO_SHIM_H
// The parts of OpenSSL registryd uses: SHA-256/512 (with the CPU's SHA extensions) and
// constant-time comparison. HMAC is built on SHA-256 (OCI's HMACSHA256) and random bytes
// come from getrandom(2), so that the daemon links only this small, self-contained part
// of libcrypto statically (Package.swift; docs/PERFORMANCE.md, "Memory").
// SHA-256/512 through the SHA*_Init/Update/Final functions, which OpenSSL 3 marks
// deprecated in favour of EVP: the EVP route loads the provider machinery and touches
// 2 MiB of the library for good (see ContentHasher). They are still part of OpenSSL 3.
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/crypto.h>
#include <openssl/sha.h>
#endif
