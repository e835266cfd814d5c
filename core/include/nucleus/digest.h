/*
 * digest.h - SHA-256 and hex helpers (mbedTLS).
 */
#ifndef NUCLEUS_DIGEST_H
#define NUCLEUS_DIGEST_H

#include <stddef.h>
#include <stdint.h>

#define NU_SHA256_LEN 32
#define NU_SHA256_HEX_LEN 64

void nu_sha256(const void *data, size_t len, uint8_t out[NU_SHA256_LEN]);

/* Hex-encode len bytes into out (2 * len + 1 bytes, lowercase, NUL-ended). */
void nu_hex_encode(const uint8_t *bytes, size_t len, char *out);

/* Decode text, which must be exactly 2 * len hex digits followed by NUL, into
 * out.  Returns 0, or -1 when text has another length or a non-hex digit. */
int nu_hex_decode(const char *text, uint8_t *out, size_t len);

/* SHA-256 of data as 64 lowercase hex digits plus NUL. */
void nu_sha256_hex(const void *data, size_t len, char out[NU_SHA256_HEX_LEN + 1]);

#endif
