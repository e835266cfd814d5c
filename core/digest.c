/*
 * digest.c - SHA-256 through mbedTLS, hex encoding.
 */
#include <string.h>

#include <mbedtls/sha256.h>

#include "nucleus/digest.h"

void nu_sha256(const void *data, size_t len, uint8_t out[NU_SHA256_LEN])
{
    /* mbedtls_sha256_ret only fails on hardware-accelerator errors, which
     * Debian's software build does not have. */
    (void)mbedtls_sha256_ret(data, len, out, 0);
}

void nu_hex_encode(const uint8_t *bytes, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 0x0f];
    }
    out[2 * len] = '\0';
}

static int nu__hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int nu_hex_decode(const char *text, uint8_t *out, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        int hi = nu__hex_value(text[2 * i]);
        int lo = hi < 0 ? -1 : nu__hex_value(text[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return text[2 * len] == '\0' ? 0 : -1;
}

void nu_sha256_hex(const void *data, size_t len, char out[NU_SHA256_HEX_LEN + 1])
{
    uint8_t digest[NU_SHA256_LEN];

    nu_sha256(data, len, digest);
    nu_hex_encode(digest, sizeof digest, out);
}
