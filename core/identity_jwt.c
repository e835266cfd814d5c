/*
 * identity_jwt.c - JWT-SVIDs (SPIFFE JWT-SVID standard, RFC 7515/7519).
 *
 * Token: BASE64URL(header) "." BASE64URL(claims) "." BASE64URL(signature),
 * no padding.  header = {"alg":"ES256","kid":KID,"typ":"JWT"}; claims =
 * {"aud":AUD or [AUD...],"exp":N,"iat":N,"sub":SPIFFE_ID}.  The signature is
 * ECDSA P-256 over SHA-256 of the first two parts, written as the 32-byte
 * big-endian r followed by the 32-byte s (RFC 7518 3.4), not as DER.
 * KID is the RFC 7638 thumbprint of the signing key, which the SPIFFE
 * bundle publishes as a "jwt-svid" key.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <mbedtls/base64.h>
#include <mbedtls/ecdsa.h>
#include <mbedtls/sha256.h>

#include "identity_internal.h"
#include "nucleus/json.h"

#define NU__JWT_MAX 8192       /* maximum token length, in bytes */
#define NU__JWT_KEYS_MAX 64

typedef struct nu__jwt_key {
    char kid[128];
    mbedtls_pk_context pk;
} nu__jwt_key_t;

struct nu_jwt_bundle {
    char trust_domain[NU_TRUST_DOMAIN_MAX + 1];
    nu__jwt_key_t *keys;
    size_t count;
};

/* ---- bundles ----------------------------------------------------------------- */

void nu_jwt_bundle_free(nu_jwt_bundle_t *bundle)
{
    if (bundle == NULL)
        return;
    for (size_t i = 0; i < bundle->count; i++)
        mbedtls_pk_free(&bundle->keys[i].pk);
    free(bundle->keys);
    free(bundle);
}

const char *nu_jwt_bundle_trust_domain(const nu_jwt_bundle_t *bundle)
{
    return bundle->trust_domain;
}

/* Set pk to the P-256 public key (x, y).  Returns 0 or an mbedTLS code. */
static int nu__pk_from_point(mbedtls_pk_context *pk, const uint8_t x[32],
                             const uint8_t y[32])
{
    unsigned char point[65];
    mbedtls_ecp_keypair *ec;
    int rc;

    point[0] = 0x04;
    memcpy(point + 1, x, 32);
    memcpy(point + 33, y, 32);
    rc = mbedtls_pk_setup(pk, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY));
    if (rc != 0)
        return rc;
    ec = mbedtls_pk_ec(*pk);
    rc = mbedtls_ecp_group_load(&ec->grp, MBEDTLS_ECP_DP_SECP256R1);
    if (rc == 0)
        rc = mbedtls_ecp_point_read_binary(&ec->grp, &ec->Q, point,
                                           sizeof point);
    if (rc == 0)
        rc = mbedtls_ecp_check_pubkey(&ec->grp, &ec->Q);
    if (rc == 0)
        rc = nu__id_prepare_key(pk);
    return rc;
}

static nu_jwt_bundle_t *nu__bundle_new(size_t capacity)
{
    nu_jwt_bundle_t *b = calloc(1, sizeof *b);

    if (b != NULL && capacity > 0) {
        b->keys = calloc(capacity, sizeof *b->keys);
        if (b->keys == NULL) {
            free(b);
            return NULL;
        }
    }
    return b;
}

int nu_jwt_bundle_from_ca(const nu_ca_t *ca, nu_jwt_bundle_t **out,
                          nu_err_t *err)
{
    nu_jwt_bundle_t *b = nu__bundle_new(1);
    uint8_t x[32], y[32];
    int rc;

    if (b == NULL)
        return nu_err_set(err, NU_ENOMEM, "jwt: out of memory");
    memcpy(b->trust_domain, ca->trust_domain, sizeof b->trust_domain);
    memcpy(b->keys[0].kid, ca->jwt_kid, sizeof ca->jwt_kid);
    mbedtls_pk_init(&b->keys[0].pk);
    b->count = 1;
    rc = nu__id_ec_point(&ca->jwt_key, x, y) == 0
         ? nu__pk_from_point(&b->keys[0].pk, x, y) : -1;
    if (rc != 0) {
        nu_jwt_bundle_free(b);
        return nu_err_set(err, NU_ECRYPTO, "jwt: cannot load the CA's JWT "
                          "key");
    }
    *out = b;
    return NU_OK;
}

/* Decode a base64url member of exactly 32 bytes. */
static int nu__coord(json_t *jwk, const char *name, uint8_t out[32])
{
    const char *text = json_string_value(json_object_get(jwk, name));

    return text != NULL &&
           nu__b64url_decode(text, strlen(text), out, 32) == 32 ? 0 : -1;
}

static int nu__add_json_key(nu_jwt_bundle_t *b, json_t *jwk, size_t index,
                            nu_err_t *err)
{
    const char *kid = json_string_value(json_object_get(jwk, "kid"));
    const char *kty = json_string_value(json_object_get(jwk, "kty"));
    const char *crv = json_string_value(json_object_get(jwk, "crv"));
    nu__jwt_key_t *key = &b->keys[b->count];
    uint8_t x[32], y[32];

    if (kid == NULL || kid[0] == '\0' || strlen(kid) >= sizeof key->kid)
        return nu_err_set(err, NU_EPARSE, "jwt: invalid bundle: key %zu has "
                          "no usable kid", index);
    if (kty == NULL || strcmp(kty, "EC") != 0 || crv == NULL ||
        strcmp(crv, "P-256") != 0)
        return nu_err_set(err, NU_EPARSE, "jwt: invalid bundle: key '%s' is "
                          "not an EC P-256 key (only ES256 is supported)", kid);
    if (nu__coord(jwk, "x", x) != 0 || nu__coord(jwk, "y", y) != 0)
        return nu_err_set(err, NU_EPARSE, "jwt: invalid bundle: key '%s' has "
                          "bad x or y", kid);
    mbedtls_pk_init(&key->pk);
    snprintf(key->kid, sizeof key->kid, "%s", kid);
    b->count++;
    if (nu__pk_from_point(&key->pk, x, y) != 0)
        return nu_err_set(err, NU_EPARSE, "jwt: invalid bundle: key '%s' is "
                          "not a point on P-256", kid);
    return NU_OK;
}

/* The trust domain named by the first certificate of an x509-svid key. */
static int nu__bundle_domain(json_t *keys, char td[NU_TRUST_DOMAIN_MAX + 1])
{
    size_t i;
    json_t *jwk;

    json_array_foreach(keys, i, jwk) {
        const char *use = json_string_value(json_object_get(jwk, "use"));
        const char *b64 = json_string_value(
            json_array_get(json_object_get(jwk, "x5c"), 0));
        unsigned char der[4096];
        size_t der_len = 0;
        mbedtls_x509_crt crt;
        const unsigned char *uri;
        size_t uri_len;
        nu_spiffeid_t id;
        int ok;

        if (use == NULL || strcmp(use, "x509-svid") != 0 || b64 == NULL ||
            mbedtls_base64_decode(der, sizeof der, &der_len,
                                  (const unsigned char *)b64, strlen(b64)) != 0)
            continue;
        mbedtls_x509_crt_init(&crt);
        ok = mbedtls_x509_crt_parse_der(&crt, der, der_len) == 0 &&
             nu__id_uri_sans(&crt, &uri, &uri_len) == 1 &&
             nu_spiffeid_parse((const char *)uri, uri_len, &id, NULL) == NU_OK;
        mbedtls_x509_crt_free(&crt);
        if (ok) {
            memcpy(td, id.trust_domain, strlen(id.trust_domain) + 1);
            return 0;
        }
    }
    return -1;
}

int nu_jwt_bundle_from_json(const char *json, size_t len, const char *td,
                            nu_jwt_bundle_t **out, nu_err_t *err)
{
    json_t *doc = nu_json_parse(json, len, err), *keys, *jwk;
    nu_jwt_bundle_t *b = NULL;
    size_t i;
    int rc = NU_OK;

    if (doc == NULL)
        return NU_EPARSE;
    keys = json_object_get(doc, "keys");
    if (!json_is_array(keys) || json_array_size(keys) > NU__JWT_KEYS_MAX) {
        rc = nu_err_set(err, NU_EPARSE, "jwt: invalid bundle: expected a "
                        "\"keys\" array of at most %d keys", NU__JWT_KEYS_MAX);
        goto out;
    }
    b = nu__bundle_new(json_array_size(keys));
    if (b == NULL) {
        rc = nu_err_set(err, NU_ENOMEM, "jwt: out of memory");
        goto out;
    }
    if (td != NULL)
        rc = nu_spiffeid_parse_trust_domain(td, b->trust_domain, err);
    else if (nu__bundle_domain(keys, b->trust_domain) != 0)
        rc = nu_err_set(err, NU_EINVAL, "jwt: cannot tell the trust domain "
                        "of the bundle (no x509-svid key names one): pass "
                        "--trust-domain");
    json_array_foreach(keys, i, jwk) {
        const char *use = json_string_value(json_object_get(jwk, "use"));
        if (rc != NU_OK)
            break;
        if (use != NULL && strcmp(use, "jwt-svid") == 0)
            rc = nu__add_json_key(b, jwk, i, err);
    }
    if (rc == NU_OK && b->count == 0)
        rc = nu_err_set(err, NU_EPARSE, "jwt: invalid bundle: no \"jwt-svid\" "
                        "key");

out:
    json_decref(doc);
    if (rc != NU_OK) {
        nu_jwt_bundle_free(b);
        return rc;
    }
    *out = b;
    return NU_OK;
}

/* ---- signing --------------------------------------------------------------- */

/* base64url of a JSON value in compact form, sorted keys (malloc'd). */
static char *nu__b64_json(json_t *v)
{
    char *text = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
    char *out = text != NULL ? malloc(strlen(text) * 4 / 3 + 4) : NULL;

    if (out != NULL)
        nu__b64url_encode((const uint8_t *)text, strlen(text), out);
    free(text);
    return out;
}

static json_t *nu__claims(const char *sub, const char *const *aud,
                          size_t n_aud, time_t now, int64_t ttl)
{
    json_t *claims = json_pack("{s:s, s:I, s:I}", "sub", sub,
                               "iat", (json_int_t)now,
                               "exp", (json_int_t)(now + ttl));
    json_t *audience = n_aud == 1 ? json_string(aud[0]) : json_array();

    for (size_t i = 0; n_aud > 1 && i < n_aud; i++)
        json_array_append_new(audience, json_string(aud[i]));
    if (claims == NULL || audience == NULL) {
        json_decref(claims);
        json_decref(audience);
        return NULL;
    }
    json_object_set_new(claims, "aud", audience);
    return claims;
}

/* ES256 signature of input: r || s, 32 bytes each. */
static int nu__es256_sign(mbedtls_pk_context *key, const char *input,
                          uint8_t sig[64])
{
    mbedtls_ecp_keypair *ec = mbedtls_pk_ec(*key);
    unsigned char hash[32];
    mbedtls_mpi r, s;
    int rc;

    mbedtls_mpi_init(&r);
    mbedtls_mpi_init(&s);
    rc = mbedtls_sha256_ret((const unsigned char *)input, strlen(input), hash, 0);
    if (rc == 0)
        rc = mbedtls_ecdsa_sign(&ec->grp, &r, &s, &ec->d, hash, sizeof hash,
                                nu__id_random, NULL);
    if (rc == 0)
        rc = mbedtls_mpi_write_binary(&r, sig, 32);
    if (rc == 0)
        rc = mbedtls_mpi_write_binary(&s, sig + 32, 32);
    mbedtls_mpi_free(&r);
    mbedtls_mpi_free(&s);
    return rc;
}

int nu_jwt_issue(nu_ca_t *ca, const char *spiffe_id, const char *const *aud,
                 size_t n_aud, int64_t ttl, char **token, nu_err_t *err)
{
    json_t *header = NULL, *claims = NULL;
    char *h64 = NULL, *c64 = NULL, *out = NULL;
    char s64[96];
    uint8_t sig[64];
    nu_spiffeid_t id;
    size_t len;
    int rc;

    rc = nu_spiffeid_parse(spiffe_id, strlen(spiffe_id), &id, err);
    if (rc != NU_OK)
        return rc;
    if (!nu_spiffeid_member_of(&id, ca->trust_domain))
        return nu_err_set(err, NU_EINVAL, "jwt: cannot issue JWT-SVID for "
                          "'%s': not in trust domain '%s'", spiffe_id,
                          ca->trust_domain);
    if (n_aud == 0)
        return nu_err_set(err, NU_EINVAL, "jwt: cannot issue JWT-SVID: at "
                          "least one audience is required");
    for (size_t i = 0; i < n_aud; i++)
        if (aud[i][0] == '\0')
            return nu_err_set(err, NU_EINVAL, "jwt: cannot issue JWT-SVID: "
                              "an audience is empty");
    if (ttl == 0)
        ttl = NU_SVID_TTL_DEFAULT;
    if (ttl < 0 || ttl > NU_CA_TTL_DEFAULT)
        return nu_err_set(err, NU_EINVAL, "jwt: cannot issue JWT-SVID: "
                          "invalid TTL %lld s", (long long)ttl);

    header = json_pack("{s:s, s:s, s:s}", "alg", "ES256", "kid", ca->jwt_kid,
                       "typ", "JWT");
    claims = nu__claims(id.id, aud, n_aud, time(NULL), ttl);
    h64 = header != NULL ? nu__b64_json(header) : NULL;
    c64 = claims != NULL ? nu__b64_json(claims) : NULL;
    len = h64 != NULL && c64 != NULL ? strlen(h64) + strlen(c64) : 0;
    out = len > 0 ? malloc(len + sizeof s64 + 2) : NULL;
    if (out == NULL) {
        rc = nu_err_set(err, NU_ENOMEM, "jwt: cannot issue JWT-SVID: out of "
                        "memory");
        goto out;
    }
    sprintf(out, "%s.%s", h64, c64);

    pthread_mutex_lock(&ca->lock);
    rc = nu__es256_sign(&ca->jwt_key, out, sig);
    pthread_mutex_unlock(&ca->lock);
    if (rc != 0) {
        rc = nu__id_mbed_err(err, NU_ECRYPTO, rc, "jwt: cannot sign JWT-SVID");
        goto out;
    }
    nu__b64url_encode(sig, sizeof sig, s64);
    strcat(out, ".");
    strcat(out, s64);
    *token = out;
    out = NULL;
    rc = NU_OK;

out:
    free(out);
    free(h64);
    free(c64);
    json_decref(header);
    json_decref(claims);
    return rc;
}

/* ---- verification ---------------------------------------------------------- */

static int nu__deny(nu_err_t *err, const char *reason)
{
    return nu_err_set(err, NU_EDENIED, "jwt: %s", reason);
}

/* Decode one base64url part of a token and parse it as a JSON object. */
static json_t *nu__decode_part(const char *text, size_t len)
{
    uint8_t *raw = malloc(len + 1);
    ssize_t n = raw != NULL ? nu__b64url_decode(text, len, raw, len) : -1;
    json_t *v = n > 0 ? nu_json_parse((const char *)raw, (size_t)n, NULL)
                      : NULL;

    free(raw);
    if (v != NULL && !json_is_object(v)) {
        json_decref(v);
        v = NULL;
    }
    return v;
}

static int nu__check_header(json_t *header, const nu_jwt_bundle_t *bundle,
                            const nu__jwt_key_t **key, nu_err_t *err)
{
    const char *alg = json_string_value(json_object_get(header, "alg"));
    const char *kid = json_string_value(json_object_get(header, "kid"));
    json_t *typ = json_object_get(header, "typ");

    if (alg == NULL)
        return nu__deny(err, "header has no alg");
    if (strcmp(alg, "none") == 0)
        return nu__deny(err, "alg 'none' is not allowed (unsigned token)");
    if (strncmp(alg, "HS", 2) == 0)
        return nu__deny(err, "HMAC algorithms are not allowed (expected "
                        "ES256)");
    if (strcmp(alg, "ES256") != 0)
        return nu_err_set(err, NU_EDENIED, "jwt: unsupported algorithm "
                          "'%.32s' (expected ES256)", alg);
    if (json_object_get(header, "crit") != NULL)
        return nu__deny(err, "header has unsupported critical extensions "
                        "(crit)");
    if (typ != NULL && (!json_is_string(typ) ||
                        (strcmp(json_string_value(typ), "JWT") != 0 &&
                         strcmp(json_string_value(typ), "JOSE") != 0)))
        return nu__deny(err, "header typ must be JWT or JOSE");
    if (kid == NULL)
        return nu__deny(err, "header has no kid");
    for (size_t i = 0; i < bundle->count; i++) {
        if (strcmp(bundle->keys[i].kid, kid) == 0) {
            *key = &bundle->keys[i];
            return NU_OK;
        }
    }
    return nu_err_set(err, NU_EDENIED, "jwt: unknown kid '%.64s' (not in the "
                      "bundle of '%s')", kid, bundle->trust_domain);
}

static int nu__check_signature(const nu__jwt_key_t *key, const char *token,
                               size_t signed_len, const char *sig64,
                               nu_err_t *err)
{
    mbedtls_ecp_keypair *ec = mbedtls_pk_ec(key->pk);
    unsigned char hash[32];
    uint8_t sig[160];
    mbedtls_mpi r, s;
    ssize_t n = nu__b64url_decode(sig64, strlen(sig64), sig, sizeof sig);
    int rc;

    if (n < 0)
        return nu__deny(err, "malformed base64url in the signature");
    if (n != 64)
        return nu__deny(err, "signature must be 64 bytes (JOSE r||s, not "
                        "DER)");
    mbedtls_mpi_init(&r);
    mbedtls_mpi_init(&s);
    rc = mbedtls_sha256_ret((const unsigned char *)token, signed_len, hash, 0);
    if (rc == 0)
        rc = mbedtls_mpi_read_binary(&r, sig, 32);
    if (rc == 0)
        rc = mbedtls_mpi_read_binary(&s, sig + 32, 32);
    if (rc == 0)
        rc = mbedtls_ecdsa_verify(&ec->grp, hash, sizeof hash, &ec->Q, &r, &s);
    mbedtls_mpi_free(&r);
    mbedtls_mpi_free(&s);
    return rc == 0 ? NU_OK : nu__deny(err, "bad signature");
}

static int nu__has_audience(json_t *claim, const char *aud)
{
    size_t i;
    json_t *v;

    if (json_is_string(claim))
        return strcmp(json_string_value(claim), aud) == 0;
    json_array_foreach(claim, i, v)
        if (json_is_string(v) && strcmp(json_string_value(v), aud) == 0)
            return 1;
    return 0;
}

static int nu__check_claims(json_t *claims, const nu_jwt_bundle_t *bundle,
                            const char *aud, time_t now, nu_spiffeid_t *out,
                            nu_err_t *err)
{
    const char *sub = json_string_value(json_object_get(claims, "sub"));
    json_t *audience = json_object_get(claims, "aud");
    json_t *exp = json_object_get(claims, "exp");
    json_t *nbf = json_object_get(claims, "nbf");
    nu_err_t parse_err;

    if (sub == NULL)
        return nu__deny(err, "sub claim is required");
    if (nu_spiffeid_parse(sub, strlen(sub), out, &parse_err) != NU_OK)
        return nu_err_set(err, NU_EDENIED, "jwt: sub is not a valid SPIFFE ID "
                          "(%s)", parse_err.msg);
    if (!nu_spiffeid_member_of(out, bundle->trust_domain))
        return nu_err_set(err, NU_EDENIED, "jwt: subject '%s' is not in trust "
                          "domain '%s'", out->id, bundle->trust_domain);
    if (audience == NULL || (!json_is_string(audience) &&
                             !json_is_array(audience)))
        return nu__deny(err, "aud claim is required");
    if (!nu__has_audience(audience, aud))
        return nu_err_set(err, NU_EDENIED, "jwt: wrong audience (the token is "
                          "not for '%.128s')", aud);
    if (!json_is_number(exp))
        return nu__deny(err, "exp claim is required");
    if ((double)now >= json_number_value(exp))
        return nu__deny(err, "token has expired");
    if (nbf != NULL && (!json_is_number(nbf) ||
                        (double)now < json_number_value(nbf)))
        return nu__deny(err, "token is not yet valid (nbf)");
    return NU_OK;
}

int nu_jwt_verify(const char *token, const nu_jwt_bundle_t *bundle,
                  const char *aud, time_t now, nu_spiffeid_t *out,
                  nu_err_t *err)
{
    const char *dot1, *dot2;
    const nu__jwt_key_t *key = NULL;
    json_t *header = NULL, *claims = NULL;
    size_t len = strnlen(token, NU__JWT_MAX + 1);
    nu_spiffeid_t id;
    int rc;

    if (len > NU__JWT_MAX)
        return nu__deny(err, "token is longer than 8192 bytes");
    dot1 = strchr(token, '.');
    dot2 = dot1 != NULL ? strchr(dot1 + 1, '.') : NULL;
    if (dot2 == NULL || strchr(dot2 + 1, '.') != NULL || dot1 == token ||
        dot2 == dot1 + 1 || dot2[1] == '\0')
        return nu__deny(err, "malformed token (expected three non-empty "
                        "base64url parts separated by '.')");

    header = nu__decode_part(token, (size_t)(dot1 - token));
    if (header == NULL) {
        rc = nu__deny(err, "malformed base64url or JSON in the header");
        goto out;
    }
    rc = nu__check_header(header, bundle, &key, err);
    if (rc == NU_OK)
        rc = nu__check_signature(key, token, (size_t)(dot2 - token), dot2 + 1,
                                 err);
    if (rc != NU_OK)
        goto out;

    claims = nu__decode_part(dot1 + 1, (size_t)(dot2 - dot1 - 1));
    if (claims == NULL) {
        rc = nu__deny(err, "malformed base64url or JSON in the claims");
        goto out;
    }
    rc = nu__check_claims(claims, bundle, aud, now, &id, err);
    if (rc == NU_OK && out != NULL)
        *out = id;

out:
    json_decref(header);
    json_decref(claims);
    return rc;
}
