#ifndef REGISTRYD_CLIBCRYPTO_SHIM_H
#define REGISTRYD_CLIBCRYPTO_SHIM_H
// The parts of OpenSSL registryd uses: SHA-256/512 (with the CPU's SHA extensions),
// HMAC for signing tokens, the system CSPRNG, and constant-time comparison.
// SHA-256/512 through the SHA*_Init/Update/Final functions, which OpenSSL 3 marks
// deprecated in favour of EVP: the EVP route loads the provider machinery and touches
// 2 MiB of the library for good (see ContentHasher). They are still part of OpenSSL 3.
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#endif
