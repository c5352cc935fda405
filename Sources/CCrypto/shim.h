// OpenSSL (Debian: libssl-dev). libcrypto for KlifeSecurity's SASL/SCRAM (EVP digests,
// HMAC, PKCS5_PBKDF2_HMAC, RAND_bytes); libssl for KlifeIO's TLS channels. No crypto is
// hand-written. The inline functions below wrap OpenSSL macros Swift cannot import.
#ifndef KLIFE_CCRYPTO_SHIM_H
#define KLIFE_CCRYPTO_SHIM_H

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

static inline int klife_ssl_ctx_set_min_tls12(SSL_CTX *ctx) {
    return (int)SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
}

/// Modes every client context uses: SSL_write may be retried with the buffer at a new
/// address (our output buffers grow by reallocating).
static inline void klife_ssl_ctx_set_modes(SSL_CTX *ctx) {
    SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
}

/// Kafka brokers never renegotiate; refusing it keeps SSL_write from ever needing a read.
static inline void klife_ssl_ctx_set_options(SSL_CTX *ctx) {
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
}

static inline int klife_ssl_set_sni(SSL *ssl, const char *name) {
    return (int)SSL_set_tlsext_host_name(ssl, name);
}

#endif
