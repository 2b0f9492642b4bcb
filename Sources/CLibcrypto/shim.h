#ifndef REGISTRYD_CLIBCRYPTO_SHIM_H
#define REGISTRYD_CLIBCRYPTO_SHIM_H
// The parts of OpenSSL registryd uses: SHA-256/512 (with the CPU's SHA extensions),
// HMAC for signing tokens, the system CSPRNG, and constant-time comparison.
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#endif
