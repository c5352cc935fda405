// OpenSSL libcrypto (Debian: libssl-dev), used by KlifeSecurity for SASL/SCRAM:
// EVP digests, HMAC, PKCS5_PBKDF2_HMAC and RAND_bytes. No crypto is hand-written.
#ifndef KLIFE_CCRYPTO_SHIM_H
#define KLIFE_CCRYPTO_SHIM_H

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/crypto.h>

#endif
