#ifndef REGISTRYD_CLIBCRYPTO_SHIM_H
#define REGISTRYD_CLIBCRYPTO_SHIM_H
// Only the hashing half of OpenSSL: SHA-256/512 use the CPU's SHA extensions here.
#include <openssl/evp.h>
#include <openssl/sha.h>
#endif
