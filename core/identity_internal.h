/*
 * identity_internal.h - helpers shared by the core/identity_*.c files.
 * Not installed; nothing outside the identity module includes it.
 */
#ifndef NUCLEUS_IDENTITY_INTERNAL_H
#define NUCLEUS_IDENTITY_INTERNAL_H

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>

#include "nucleus/identity.h"

#define NU__KID_LEN 43 /* base64url of a SHA-256 digest, no padding */

struct nu_ca {
    pthread_mutex_t lock;           /* serializes issuance */
    char trust_domain[NU_TRUST_DOMAIN_MAX + 1];
    mbedtls_x509_crt cert;
    mbedtls_pk_context key;
    mbedtls_pk_context jwt_key;
    char *cert_pem;
    char jwt_kid[NU__KID_LEN + 1];
    int64_t sequence;
    time_t not_after;
};

/* mbedTLS f_rng backed by getrandom(2): thread-safe and fork-safe.  ctx is
 * ignored (pass NULL). */
int nu__id_random(void *ctx, unsigned char *out, size_t len);

/* nu_err_set with ": <mbedTLS error text>" appended; returns code. */
int nu__id_mbed_err(nu_err_t *err, int code, int mbed_rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Generate a P-256 key into key (initialized by the caller). */
int nu__id_gen_key(mbedtls_pk_context *key, nu_err_t *err);

/* PEM text of key as PKCS#8 "PRIVATE KEY" (malloc'd), or NULL with err. */
char *nu__id_key_pem(mbedtls_pk_context *key, nu_err_t *err);

/* PEM text of one DER certificate (malloc'd), or NULL. */
char *nu__id_cert_pem(const unsigned char *der, size_t len);

/* base64url without padding.  encode writes at most 4*ceil(len/3)+1 bytes
 * and returns the text length.  decode returns the decoded length, or -1
 * for padding, characters outside the alphabet, non-zero trailing bits or
 * output longer than cap. */
size_t nu__b64url_encode(const uint8_t *data, size_t len, char *out);
ssize_t nu__b64url_decode(const char *text, size_t len, uint8_t *out,
                          size_t cap);

/* Raw x || y (32 bytes each) of a P-256 public key.  Returns 0 or -1 when
 * pk is not a P-256 key. */
int nu__id_ec_point(const mbedtls_pk_context *pk, uint8_t x[32],
                    uint8_t y[32]);

/* Make an EC key cheap and safe to sign or verify with from many threads.
 * mbedTLS 2.28 copies the curve group of an ECKEY key on every signature or
 * verification, which throws away the precomputed table of multiples of
 * the generator.  So the key gets the ECDSA type, and the table is built
 * now, after which operations only read it.  Other key types are left
 * alone. */
int nu__id_prepare_key(mbedtls_pk_context *pk);

/* RFC 7638 JWK thumbprint of a P-256 key (base64url, NU__KID_LEN chars). */
int nu__id_jwk_thumbprint(const mbedtls_pk_context *pk,
                          char kid[NU__KID_LEN + 1]);

/* Count the URI entries of crt's subjectAltName extension, parsing the
 * extension bytes (mbedTLS 2.28 does not expose URI SANs).  The first one
 * is returned in *uri / *uri_len.  Returns the count, or NU_EPARSE for a
 * malformed extension. */
int nu__id_uri_sans(const mbedtls_x509_crt *crt, const unsigned char **uri,
                    size_t *uri_len);

/* Seconds since the epoch of an X.509 time (UTC). */
time_t nu__id_x509_epoch(const mbedtls_x509_time *t);

/* "YYYYMMDDhhmmss" (UTC) of t into out. */
void nu__id_x509_string(time_t t, char out[16]);

/* Read a whole file (at most 1 MiB) into a malloc'd NUL-terminated buffer.
 * dirfd may be AT_FDCWD.  Returns NU_OK, NU_ENOENT or NU_EIO. */
int nu__id_read_file(int dirfd, const char *path, char **out, size_t *len,
                     nu_err_t *err);

/* Write data to dirfd/name through a synced temporary file and rename(2).
 * dir_name is only used in messages. */
int nu__id_write_file(int dirfd, const char *dir_name, const char *name,
                      const char *data, mode_t mode, nu_err_t *err);

#endif

/* What nu__id_write_cert puts into a certificate. */
typedef struct nu__cert_spec {
    const char *subject;            /* mbedTLS name string, "CN=..,O=.." */
    const char *issuer;             /* the same for the issuer */
    const char *uri;                /* the one URI SAN */
    mbedtls_pk_context *subject_key;
    mbedtls_pk_context *issuer_key;
    time_t not_before;
    time_t not_after;
    int is_ca;                      /* 1: root CA profile, 0: SVID leaf */
} nu__cert_spec_t;

/* Build and sign a certificate.  Returns NU_OK with a malloc'd DER copy in
 * *der and its length in *der_len, or NU_ECRYPTO. */
int nu__id_write_cert(const nu__cert_spec_t *spec, unsigned char **der,
                      size_t *der_len, nu_err_t *err);

/* Describe the most important mbedTLS certificate verification flag. */
const char *nu__id_flag_reason(uint32_t flags);

/* The subject name of the CA of trust domain td. */
void nu__id_ca_subject(const char *td, char *out, size_t size);
