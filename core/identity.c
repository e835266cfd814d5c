/*
 * identity.c - helpers shared by the identity module: randomness, key and
 * PEM encoding, strict PEM input, base64url, subjectAltName URIs, times and
 * file I/O.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/asn1.h>
#include <mbedtls/asn1write.h>
#include <mbedtls/base64.h>
#include <mbedtls/ecdsa.h>
#include <mbedtls/ecp.h>
#include <mbedtls/error.h>
#include <mbedtls/oid.h>
#include <mbedtls/pem.h>

#include "identity_internal.h"
#include "nucleus/digest.h"

#define NU__FILE_MAX (1024 * 1024)

int nu__id_random(void *ctx, unsigned char *out, size_t len)
{
    (void)ctx;
    while (len > 0) {
        ssize_t n = getrandom(out, len, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return MBEDTLS_ERR_ERROR_GENERIC_ERROR;
        }
        out += n;
        len -= (size_t)n;
    }
    return 0;
}

int nu__id_mbed_err(nu_err_t *err, int code, int mbed_rc, const char *fmt, ...)
{
    char msg[NU_ERR_MAX], detail[160];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    mbedtls_strerror(mbed_rc, detail, sizeof detail);
    return nu_err_set(err, code, "%s: %s (mbedTLS -0x%04x)", msg, detail,
                      (unsigned)-mbed_rc);
}

int nu__id_gen_key(mbedtls_pk_context *key, nu_err_t *err)
{
    int rc = mbedtls_pk_setup(key, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY));

    if (rc == 0)
        rc = mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(*key),
                                 nu__id_random, NULL);
    if (rc != 0)
        return nu__id_mbed_err(err, NU_ECRYPTO, rc, "identity: cannot "
                               "generate a P-256 key");
    return NU_OK;
}

/* Encode a DER blob as PEM with the given label (malloc'd). */
static char *nu__pem(const char *label, const unsigned char *der, size_t len)
{
    char header[64], footer[64];
    size_t size = len * 4 / 3 + len / 48 + 160, olen = 0;
    unsigned char *out = malloc(size);

    if (out == NULL)
        return NULL;
    snprintf(header, sizeof header, "-----BEGIN %s-----\n", label);
    snprintf(footer, sizeof footer, "-----END %s-----\n", label);
    if (mbedtls_pem_write_buffer(header, footer, der, len, out, size,
                                 &olen) != 0) {
        free(out);
        return NULL;
    }
    return (char *)out;
}

char *nu__id_cert_pem(const unsigned char *der, size_t len)
{
    return nu__pem("CERTIFICATE", der, len);
}

/* PKCS#8 (RFC 5208) around mbedTLS's SEC1 ECPrivateKey:
 *   SEQUENCE { INTEGER 0,
 *              SEQUENCE { OID id-ecPublicKey, OID prime256v1 },
 *              OCTET STRING { ECPrivateKey } }
 * mbedTLS 2.28 writes only SEC1; PKCS#8 is what go-spiffe and most SPIFFE
 * tooling expect in svid.key. */
char *nu__id_key_pem(mbedtls_pk_context *key, nu_err_t *err)
{
    unsigned char buf[512], *p;
    size_t len, alg_len = 0;
    char *pem = NULL;
    int rc;

    rc = mbedtls_pk_write_key_der(key, buf, sizeof buf);
    if (rc < 0) {
        nu__id_mbed_err(err, NU_ECRYPTO, rc, "identity: cannot encode key");
        goto out;
    }
    len = (size_t)rc;
    p = buf + sizeof buf - len;

#define NU__W(expr) do { rc = (expr); if (rc < 0) goto fail; } while (0)
    NU__W(mbedtls_asn1_write_len(&p, buf, len));
    len += (size_t)rc;
    NU__W(mbedtls_asn1_write_tag(&p, buf, MBEDTLS_ASN1_OCTET_STRING));
    len += (size_t)rc;

    NU__W(mbedtls_asn1_write_oid(&p, buf, MBEDTLS_OID_EC_GRP_SECP256R1,
                                 MBEDTLS_OID_SIZE(MBEDTLS_OID_EC_GRP_SECP256R1)));
    alg_len += (size_t)rc;
    NU__W(mbedtls_asn1_write_oid(&p, buf, MBEDTLS_OID_EC_ALG_UNRESTRICTED,
                                 MBEDTLS_OID_SIZE(MBEDTLS_OID_EC_ALG_UNRESTRICTED)));
    alg_len += (size_t)rc;
    NU__W(mbedtls_asn1_write_len(&p, buf, alg_len));
    alg_len += (size_t)rc;
    NU__W(mbedtls_asn1_write_tag(&p, buf, MBEDTLS_ASN1_CONSTRUCTED |
                                 MBEDTLS_ASN1_SEQUENCE));
    alg_len += (size_t)rc;
    len += alg_len;

    NU__W(mbedtls_asn1_write_int(&p, buf, 0));
    len += (size_t)rc;
    NU__W(mbedtls_asn1_write_len(&p, buf, len));
    len += (size_t)rc;
    NU__W(mbedtls_asn1_write_tag(&p, buf, MBEDTLS_ASN1_CONSTRUCTED |
                                 MBEDTLS_ASN1_SEQUENCE));
    len += (size_t)rc;
#undef NU__W

    pem = nu__pem("PRIVATE KEY", p, len);
    if (pem == NULL)
        nu_err_set(err, NU_ENOMEM, "identity: cannot encode key: out of memory");
    goto out;

fail:
    nu__id_mbed_err(err, NU_ECRYPTO, rc, "identity: cannot encode key");
out:
    mbedtls_platform_zeroize(buf, sizeof buf);
    return pem;
}

/* ---- strict PEM input ---------------------------------------------------- */

typedef struct nu__pem_block {
    char label[32];
    const char *body;       /* base64 text between the BEGIN and END lines */
    size_t body_len;
} nu__pem_block_t;

/* Find the next "-----BEGIN L-----" ... "-----END L-----" block at or after
 * *pos.  Returns 1 with *block filled, 0 when there is none, -1 when a
 * block is not closed. */
static int nu__pem_next(const char *text, size_t len, size_t *pos,
                        nu__pem_block_t *block)
{
    static const char begin[] = "-----BEGIN ";
    const char *p = text + *pos, *end = text + len, *label, *label_end, *stop;
    char footer[64];
    size_t label_len;

    p = memmem(p, (size_t)(end - p), begin, sizeof begin - 1);
    if (p == NULL)
        return 0;
    label = p + sizeof begin - 1;
    label_end = memmem(label, (size_t)(end - label), "-----", 5);
    if (label_end == NULL || memchr(label, '\n', (size_t)(label_end - label)))
        return -1;
    label_len = (size_t)(label_end - label);
    if (label_len >= sizeof block->label)
        return -1;
    memcpy(block->label, label, label_len);
    block->label[label_len] = '\0';

    snprintf(footer, sizeof footer, "-----END %s-----", block->label);
    block->body = label_end + 5;
    stop = memmem(block->body, (size_t)(end - block->body), footer,
                  strlen(footer));
    if (stop == NULL)
        return -1;
    block->body_len = (size_t)(stop - block->body);
    *pos = (size_t)(stop + strlen(footer) - text);
    return 1;
}

/* Decode a block's base64 body (white space ignored; PEM headers such as
 * "Proc-Type:" rejected) into a malloc'd buffer. */
static unsigned char *nu__pem_decode(const nu__pem_block_t *block,
                                     size_t *out_len)
{
    char *compact = malloc(block->body_len + 1);
    unsigned char *der = NULL;
    size_t n = 0, olen = 0;

    if (compact == NULL)
        return NULL;
    for (size_t i = 0; i < block->body_len; i++) {
        char c = block->body[i];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
            continue;
        compact[n++] = c;
    }
    der = malloc(n / 4 * 3 + 3);
    if (der == NULL || n == 0 ||
        mbedtls_base64_decode(der, n / 4 * 3 + 3, &olen,
                              (const unsigned char *)compact, n) != 0) {
        free(der);
        der = NULL;
    }
    free(compact);
    *out_len = olen;
    return der;
}

static int nu__has_text(const char *text, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (text[i] != ' ' && text[i] != '\t' && text[i] != '\r' &&
            text[i] != '\n')
            return 1;
    return 0;
}

/* 1 when der is exactly one DER SEQUENCE with nothing after it. */
static int nu__der_exact(const unsigned char *der, size_t len)
{
    unsigned char *p = (unsigned char *)der;
    size_t inner;

    if (mbedtls_asn1_get_tag(&p, der + len, &inner, MBEDTLS_ASN1_CONSTRUCTED |
                             MBEDTLS_ASN1_SEQUENCE) != 0)
        return 0;
    return p + inner == der + len;
}

int nu_x509_parse_certs(const char *pem, size_t len, mbedtls_x509_crt *chain,
                        nu_err_t *err)
{
    nu__pem_block_t block;
    size_t pos = 0;
    int blocks = 0, count = 0, more;

    while ((more = nu__pem_next(pem, len, &pos, &block)) == 1) {
        unsigned char *der;
        size_t der_len;
        int rc;

        blocks++;
        if (strcmp(block.label, "CERTIFICATE") != 0)
            continue;
        der = nu__pem_decode(&block, &der_len);
        if (der == NULL)
            return nu_err_set(err, NU_EPARSE, "x509: cannot parse certificate "
                              "%d: invalid base64 in the PEM block", count + 1);
        if (!nu__der_exact(der, der_len)) {
            free(der);
            return nu_err_set(err, NU_EPARSE, "x509: cannot parse certificate "
                              "%d: malformed DER or trailing data after it",
                              count + 1);
        }
        rc = mbedtls_x509_crt_parse_der(chain, der, der_len);
        free(der);
        if (rc != 0)
            return nu__id_mbed_err(err, NU_EPARSE, rc, "x509: cannot parse "
                                   "certificate %d", count + 1);
        count++;
    }
    if (more < 0)
        return nu_err_set(err, NU_EPARSE, "x509: cannot parse PEM: a block "
                          "has no matching END line");
    if (blocks == 0 && nu__has_text(pem, len))
        return nu_err_set(err, NU_EPARSE, "x509: cannot parse certificate: "
                          "no PEM blocks found");
    return count;
}

int nu_x509_parse_key(const char *pem, size_t len, mbedtls_pk_context *key,
                      nu_err_t *err)
{
    nu__pem_block_t block;
    size_t pos = 0;
    int blocks = 0, more;

    while ((more = nu__pem_next(pem, len, &pos, &block)) == 1) {
        unsigned char *der;
        size_t der_len;
        int rc;

        blocks++;
        if (strcmp(block.label, "PRIVATE KEY") != 0 &&
            strcmp(block.label, "EC PRIVATE KEY") != 0)
            continue;
        der = nu__pem_decode(&block, &der_len);
        if (der == NULL)
            return nu_err_set(err, NU_EPARSE, "x509: cannot parse private "
                              "key: invalid base64 in the PEM block");
        rc = mbedtls_pk_parse_key(key, der, der_len, NULL, 0);
        mbedtls_platform_zeroize(der, der_len);
        free(der);
        if (rc != 0)
            return nu__id_mbed_err(err, NU_EPARSE, rc, "x509: cannot parse "
                                   "private key");
        return NU_OK;
    }
    if (more < 0)
        return nu_err_set(err, NU_EPARSE, "x509: cannot parse PEM: a block "
                          "has no matching END line");
    return nu_err_set(err, NU_EPARSE, "x509: cannot parse private key: %s",
                      blocks == 0 ? "no PEM blocks found"
                                  : "no PRIVATE KEY block found");
}

/* ---- base64url ----------------------------------------------------------- */

static const char nu__b64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t nu__b64url_encode(const uint8_t *data, size_t len, char *out)
{
    size_t n = 0, i = 0;

    for (; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8 |
                     data[i + 2];
        out[n++] = nu__b64url[v >> 18 & 63];
        out[n++] = nu__b64url[v >> 12 & 63];
        out[n++] = nu__b64url[v >> 6 & 63];
        out[n++] = nu__b64url[v & 63];
    }
    if (len - i == 1) {
        out[n++] = nu__b64url[data[i] >> 2];
        out[n++] = nu__b64url[(data[i] & 3) << 4];
    } else if (len - i == 2) {
        out[n++] = nu__b64url[data[i] >> 2];
        out[n++] = nu__b64url[(data[i] & 3) << 4 | data[i + 1] >> 4];
        out[n++] = nu__b64url[(data[i + 1] & 15) << 2];
    }
    out[n] = '\0';
    return n;
}

static int nu__b64url_value(char c)
{
    const char *p = c != '\0' ? strchr(nu__b64url, c) : NULL;

    return p != NULL ? (int)(p - nu__b64url) : -1;
}

ssize_t nu__b64url_decode(const char *text, size_t len, uint8_t *out,
                          size_t cap)
{
    size_t n = 0;
    uint32_t acc = 0;
    int bits = 0;

    if (len % 4 == 1)
        return -1;
    for (size_t i = 0; i < len; i++) {
        int v = nu__b64url_value(text[i]);
        if (v < 0)
            return -1;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n >= cap)
                return -1;
            out[n++] = (uint8_t)(acc >> bits);
        }
    }
    /* Leftover bits must be zero, so each byte string has one encoding. */
    if ((acc & ((1u << bits) - 1)) != 0)
        return -1;
    return (ssize_t)n;
}

/* ---- keys ------------------------------------------------------------------ */

int nu__id_ec_point(const mbedtls_pk_context *pk, uint8_t x[32], uint8_t y[32])
{
    const mbedtls_ecp_keypair *ec;

    if (mbedtls_pk_get_type(pk) != MBEDTLS_PK_ECKEY)
        return -1;
    ec = mbedtls_pk_ec(*pk);
    if (ec->grp.id != MBEDTLS_ECP_DP_SECP256R1)
        return -1;
    if (mbedtls_mpi_write_binary(&ec->Q.X, x, 32) != 0 ||
        mbedtls_mpi_write_binary(&ec->Q.Y, y, 32) != 0)
        return -1;
    return 0;
}

int nu__id_prepare_key(mbedtls_pk_context *pk)
{
    mbedtls_pk_context ecdsa;
    mbedtls_ecp_point r;
    mbedtls_mpi one;
    mbedtls_ecp_keypair *ec;
    int rc = 0;

    if (mbedtls_pk_get_type(pk) == MBEDTLS_PK_ECKEY) {
        mbedtls_pk_init(&ecdsa);
        rc = mbedtls_pk_setup(&ecdsa, mbedtls_pk_info_from_type(MBEDTLS_PK_ECDSA));
        if (rc == 0)
            rc = mbedtls_ecdsa_from_keypair(mbedtls_pk_ec(ecdsa),
                                            mbedtls_pk_ec(*pk));
        if (rc != 0) {
            mbedtls_pk_free(&ecdsa);
            return rc;
        }
        mbedtls_pk_free(pk);
        *pk = ecdsa;
    }
    if (mbedtls_pk_get_type(pk) != MBEDTLS_PK_ECDSA)
        return 0;

    ec = mbedtls_pk_ec(*pk);
    mbedtls_ecp_point_init(&r);
    mbedtls_mpi_init(&one);
    rc = mbedtls_mpi_lset(&one, 1);
    if (rc == 0)
        rc = mbedtls_ecp_mul(&ec->grp, &r, &one, &ec->grp.G, nu__id_random, NULL);
    mbedtls_ecp_point_free(&r);
    mbedtls_mpi_free(&one);
    return rc;
}

int nu__id_jwk_thumbprint(const mbedtls_pk_context *pk,
                          char kid[NU__KID_LEN + 1])
{
    uint8_t x[32], y[32], digest[NU_SHA256_LEN];
    char bx[48], by[48], jwk[160];
    int n;

    if (nu__id_ec_point(pk, x, y) != 0)
        return -1;
    nu__b64url_encode(x, 32, bx);
    nu__b64url_encode(y, 32, by);
    /* RFC 7638: the required members in lexicographic order, no spaces. */
    n = snprintf(jwk, sizeof jwk,
                 "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}",
                 bx, by);
    nu_sha256(jwk, (size_t)n, digest);
    nu__b64url_encode(digest, sizeof digest, kid);
    return 0;
}

/* ---- subjectAltName URIs --------------------------------------------------- */

int nu__id_uri_sans(const mbedtls_x509_crt *crt, const unsigned char **uri,
                    size_t *uri_len)
{
    unsigned char *p = crt->v3_ext.p, *end = p + crt->v3_ext.len, *exts_end;
    size_t len;
    int count = 0;

    *uri = NULL;
    *uri_len = 0;
    if (p == NULL || crt->v3_ext.len == 0)
        return 0;
    if (*p == (MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_ASN1_CONSTRUCTED | 3) &&
        mbedtls_asn1_get_tag(&p, end, &len, *p) != 0)
        return NU_EPARSE;
    if (mbedtls_asn1_get_tag(&p, end, &len, MBEDTLS_ASN1_CONSTRUCTED |
                             MBEDTLS_ASN1_SEQUENCE) != 0)
        return NU_EPARSE;
    exts_end = p + len;

    while (p < exts_end) {
        unsigned char *ext_end, *q, *names_end;
        mbedtls_x509_buf oid;
        int critical;

        if (mbedtls_asn1_get_tag(&p, exts_end, &len, MBEDTLS_ASN1_CONSTRUCTED |
                                 MBEDTLS_ASN1_SEQUENCE) != 0)
            return NU_EPARSE;
        ext_end = p + len;
        if (mbedtls_asn1_get_tag(&p, ext_end, &oid.len, MBEDTLS_ASN1_OID) != 0)
            return NU_EPARSE;
        oid.p = p;
        p += oid.len;
        if (p < ext_end && *p == MBEDTLS_ASN1_BOOLEAN &&
            mbedtls_asn1_get_bool(&p, ext_end, &critical) != 0)
            return NU_EPARSE;
        if (mbedtls_asn1_get_tag(&p, ext_end, &len, MBEDTLS_ASN1_OCTET_STRING) != 0)
            return NU_EPARSE;
        if (MBEDTLS_OID_CMP(MBEDTLS_OID_SUBJECT_ALT_NAME, &oid) != 0) {
            p = ext_end;
            continue;
        }

        q = p;
        if (mbedtls_asn1_get_tag(&q, p + len, &len, MBEDTLS_ASN1_CONSTRUCTED |
                                 MBEDTLS_ASN1_SEQUENCE) != 0)
            return NU_EPARSE;
        names_end = q + len;
        while (q < names_end) {
            unsigned char tag = *q++;
            size_t name_len;

            if (mbedtls_asn1_get_len(&q, names_end, &name_len) != 0)
                return NU_EPARSE;
            if (tag == (MBEDTLS_ASN1_CONTEXT_SPECIFIC |
                        MBEDTLS_X509_SAN_UNIFORM_RESOURCE_IDENTIFIER)) {
                if (count == 0) {
                    *uri = q;
                    *uri_len = name_len;
                }
                count++;
            }
            q += name_len;
        }
        p = ext_end;
    }
    return count;
}

/* ---- times ---------------------------------------------------------------- */

time_t nu__id_x509_epoch(const mbedtls_x509_time *t)
{
    struct tm tm = {
        .tm_year = t->year - 1900, .tm_mon = t->mon - 1, .tm_mday = t->day,
        .tm_hour = t->hour, .tm_min = t->min, .tm_sec = t->sec,
    };

    return timegm(&tm);
}

void nu__id_x509_string(time_t t, char out[16])
{
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(out, 16, "%Y%m%d%H%M%S", &tm);
}

/* ---- files ------------------------------------------------------------------ */

int nu__id_read_file(int dirfd, const char *path, char **out, size_t *len,
                     nu_err_t *err)
{
    int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    char *buf = NULL;
    size_t used = 0;
    int rc = NU_OK;

    if (fd < 0)
        return nu_err_errno(err, errno, "identity: cannot open '%s'", path);
    buf = malloc(NU__FILE_MAX + 1);
    if (buf == NULL) {
        rc = nu_err_set(err, NU_ENOMEM, "identity: cannot read '%s': out of "
                        "memory", path);
        goto out;
    }
    for (;;) {
        ssize_t n = read(fd, buf + used, NU__FILE_MAX + 1 - used);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = nu_err_errno(err, errno, "identity: cannot read '%s'", path);
            goto out;
        }
        if (n == 0)
            break;
        used += (size_t)n;
        if (used > NU__FILE_MAX) {
            rc = nu_err_set(err, NU_ELIMIT, "identity: cannot read '%s': "
                            "larger than 1 MiB", path);
            goto out;
        }
    }
    buf[used] = '\0';
    *out = buf;
    buf = NULL;
    if (len != NULL)
        *len = used;

out:
    free(buf);
    close(fd);
    return rc;
}

static int nu__write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

int nu__id_write_file(int dirfd, const char *dir_name, const char *name,
                      const char *data, mode_t mode, nu_err_t *err)
{
    char tmp[256];
    uint8_t rnd[6];
    char rnd_hex[13];
    int fd, rc = NU_OK;

    nu__id_random(NULL, rnd, sizeof rnd);
    nu_hex_encode(rnd, sizeof rnd, rnd_hex);
    snprintf(tmp, sizeof tmp, ".%s.tmp.%s", name, rnd_hex);

    fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC |
                O_NOFOLLOW, mode);
    if (fd < 0)
        return nu_err_errno(err, errno, "identity: cannot create '%s/%s'",
                            dir_name, tmp);
    if (fchmod(fd, mode) != 0 || nu__write_all(fd, data, strlen(data)) != 0 ||
        fsync(fd) != 0) {
        rc = nu_err_errno(err, errno, "identity: cannot write '%s/%s'",
                          dir_name, tmp);
        close(fd);
        goto fail;
    }
    if (close(fd) != 0) {
        rc = nu_err_errno(err, errno, "identity: cannot write '%s/%s'",
                          dir_name, tmp);
        goto fail;
    }
    if (renameat(dirfd, tmp, dirfd, name) != 0) {
        rc = nu_err_errno(err, errno, "identity: cannot rename '%s/%s' to "
                          "'%s'", dir_name, tmp, name);
        goto fail;
    }
    return NU_OK;

fail:
    unlinkat(dirfd, tmp, 0);
    return rc;
}

int nu_identity_read_file(const char *path, char **out, size_t *len,
                          nu_err_t *err)
{
    return nu__id_read_file(AT_FDCWD, path, out, len, err);
}
