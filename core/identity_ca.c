/*
 * identity_ca.c - create and load the trust domain's CA; trust bundles in
 * PEM and SPIFFE bundle (JWKS) form.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <mbedtls/base64.h>

#include "identity_internal.h"
#include "nucleus/home.h"
#include "nucleus/json.h"

#define NU__CA_CERT "ca.pem"
#define NU__CA_KEY "ca.key"
#define NU__JWT_KEY "jwt.key"
#define NU__CA_META "ca.json"

/* Read the sequence number of an existing CA (0 when there is none). */
static int64_t nu__old_sequence(int dirfd)
{
    char *text = NULL;
    size_t len = 0;
    json_t *meta;
    int64_t seq = 0;

    if (nu__id_read_file(dirfd, NU__CA_META, &text, &len, NULL) != NU_OK)
        return 0;
    meta = json_loadb(text, len, 0, NULL);
    if (json_is_integer(json_object_get(meta, "sequence")))
        seq = json_integer_value(json_object_get(meta, "sequence"));
    json_decref(meta);
    free(text);
    return seq;
}

static int nu__exists(int dirfd, const char *name)
{
    struct stat st;

    return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

/* Write the self-signed root for td with key into a PEM text. */
static char *nu__make_root(const char *td, mbedtls_pk_context *key,
                           nu_err_t *err)
{
    char subject[NU_TRUST_DOMAIN_MAX + 32], uri[NU_TRUST_DOMAIN_MAX + 16];
    nu__cert_spec_t spec = { 0 };
    unsigned char *der = NULL;
    size_t der_len = 0;
    time_t now = time(NULL);
    char *pem;

    nu__id_ca_subject(td, subject, sizeof subject);
    snprintf(uri, sizeof uri, "spiffe://%s", td);
    spec.subject = subject;
    spec.issuer = subject;
    spec.uri = uri;
    spec.subject_key = key;
    spec.issuer_key = key;
    spec.not_before = now - NU_SVID_BACKDATE;
    spec.not_after = now + NU_CA_TTL_DEFAULT;
    spec.is_ca = 1;
    if (nu__id_write_cert(&spec, &der, &der_len, err) != NU_OK)
        return NULL;
    pem = nu__id_cert_pem(der, der_len);
    free(der);
    if (pem == NULL)
        nu_err_set(err, NU_ENOMEM, "ca: cannot encode the root: out of memory");
    return pem;
}

static int nu__write_meta(int dirfd, const char *dir, const char *td,
                          int64_t seq, nu_err_t *err)
{
    json_t *meta = json_pack("{s:s, s:I}", "trust_domain", td, "sequence",
                             (json_int_t)seq);
    char *text = meta != NULL ? json_dumps(meta, JSON_SORT_KEYS) : NULL;
    char *line = text != NULL ? malloc(strlen(text) + 2) : NULL;
    int rc;

    if (line == NULL) {
        rc = nu_err_set(err, NU_ENOMEM, "ca: cannot write '%s/%s': out of "
                        "memory", dir, NU__CA_META);
    } else {
        sprintf(line, "%s\n", text);
        rc = nu__id_write_file(dirfd, dir, NU__CA_META, line, 0644, err);
    }
    free(line);
    free(text);
    json_decref(meta);
    return rc;
}

int nu_ca_create(const char *ca_dir, const char *trust_domain, int force,
                 nu_err_t *err)
{
    char td[NU_TRUST_DOMAIN_MAX + 1];
    mbedtls_pk_context key, jwt_key;
    char *root = NULL, *key_pem = NULL, *jwt_pem = NULL;
    int dirfd = -1, rc;
    int64_t seq;

    mbedtls_pk_init(&key);
    mbedtls_pk_init(&jwt_key);
    rc = nu_spiffeid_parse_trust_domain(
        trust_domain != NULL ? trust_domain : NU_TRUST_DOMAIN_DEFAULT, td, err);
    if (rc != NU_OK)
        goto out;
    rc = nu_mkdir_p(ca_dir, err);
    if (rc != NU_OK)
        goto out;
    dirfd = open(ca_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) {
        rc = nu_err_errno(err, errno, "ca: cannot open '%s'", ca_dir);
        goto out;
    }
    if (!force && (nu__exists(dirfd, NU__CA_META) ||
                   nu__exists(dirfd, NU__CA_CERT) ||
                   nu__exists(dirfd, NU__CA_KEY))) {
        rc = nu_err_set(err, NU_EEXIST, "ca: cannot create CA: one already "
                        "exists in '%s' (pass --force to replace it; every "
                        "SVID it issued stops validating)", ca_dir);
        goto out;
    }
    seq = nu__old_sequence(dirfd) + 1;

    rc = nu__id_gen_key(&key, err);
    if (rc == NU_OK)
        rc = nu__id_gen_key(&jwt_key, err);
    if (rc != NU_OK)
        goto out;
    root = nu__make_root(td, &key, err);
    key_pem = root != NULL ? nu__id_key_pem(&key, err) : NULL;
    jwt_pem = key_pem != NULL ? nu__id_key_pem(&jwt_key, err) : NULL;
    if (jwt_pem == NULL) {
        rc = err != NULL ? err->code : NU_ECRYPTO;
        goto out;
    }

    /* ca.json goes last: its presence marks a complete CA. */
    rc = nu__id_write_file(dirfd, ca_dir, NU__CA_KEY, key_pem, 0600, err);
    if (rc == NU_OK)
        rc = nu__id_write_file(dirfd, ca_dir, NU__JWT_KEY, jwt_pem, 0600, err);
    if (rc == NU_OK)
        rc = nu__id_write_file(dirfd, ca_dir, NU__CA_CERT, root, 0644, err);
    if (rc == NU_OK)
        rc = nu__write_meta(dirfd, ca_dir, td, seq, err);

out:
    if (key_pem != NULL)
        mbedtls_platform_zeroize(key_pem, strlen(key_pem));
    if (jwt_pem != NULL)
        mbedtls_platform_zeroize(jwt_pem, strlen(jwt_pem));
    free(key_pem);
    free(jwt_pem);
    free(root);
    mbedtls_pk_free(&key);
    mbedtls_pk_free(&jwt_key);
    if (dirfd >= 0)
        close(dirfd);
    return rc;
}

/* ---- loading --------------------------------------------------------------- */

static int nu__load_meta(nu_ca_t *ca, int dirfd, const char *dir,
                         nu_err_t *err)
{
    char *text = NULL;
    size_t len = 0;
    json_t *meta = NULL;
    const char *td;
    int rc = nu__id_read_file(dirfd, NU__CA_META, &text, &len, err);

    if (rc == NU_ENOENT)
        return nu_err_set(err, NU_ENOENT, "ca: cannot load CA: no CA in '%s' "
                          "(run 'nucleus ca init' first)", dir);
    if (rc != NU_OK)
        return rc;
    meta = nu_json_parse(text, len, NULL);
    td = json_string_value(json_object_get(meta, "trust_domain"));
    if (td == NULL ||
        nu_spiffeid_parse_trust_domain(td, ca->trust_domain, NULL) != NU_OK ||
        !json_is_integer(json_object_get(meta, "sequence")))
        rc = nu_err_set(err, NU_EPARSE, "ca: cannot load CA: '%s/%s' is "
                        "damaged (expected trust_domain and sequence)", dir,
                        NU__CA_META);
    else
        ca->sequence = json_integer_value(json_object_get(meta, "sequence"));
    json_decref(meta);
    free(text);
    return rc;
}

static int nu__load_key(int dirfd, const char *dir, const char *name,
                        mbedtls_pk_context *key, nu_err_t *err)
{
    char *text = NULL;
    size_t len = 0;
    int rc = nu__id_read_file(dirfd, name, &text, &len, err);

    if (rc != NU_OK)
        return rc;
    rc = nu_x509_parse_key(text, len, key, err);
    mbedtls_platform_zeroize(text, len);
    free(text);
    if (rc == NU_OK && nu__id_ec_point(key, (uint8_t[32]){ 0 },
                                       (uint8_t[32]){ 0 }) != 0)
        rc = nu_err_set(err, NU_EPARSE, "ca: cannot load '%s/%s': not a "
                        "P-256 key", dir, name);
    return rc;
}

/* Check that the root is the CA of ca->trust_domain and matches ca->key. */
static int nu__check_root(nu_ca_t *ca, const char *dir, nu_err_t *err)
{
    char expected[NU_TRUST_DOMAIN_MAX + 16];
    const unsigned char *uri;
    size_t uri_len;
    int n = nu__id_uri_sans(&ca->cert, &uri, &uri_len);

    snprintf(expected, sizeof expected, "spiffe://%s", ca->trust_domain);
    if (n != 1 || uri_len != strlen(expected) ||
        memcmp(uri, expected, uri_len) != 0 || !ca->cert.ca_istrue)
        return nu_err_set(err, NU_EPARSE, "ca: cannot load CA: '%s/%s' is not "
                          "the CA certificate of '%s'", dir, NU__CA_CERT,
                          ca->trust_domain);
    if (mbedtls_pk_check_pair(&ca->cert.pk, &ca->key) != 0)
        return nu_err_set(err, NU_ECRYPTO, "ca: cannot load CA: '%s/%s' does "
                          "not match '%s/%s'", dir, NU__CA_KEY, dir,
                          NU__CA_CERT);
    ca->not_after = nu__id_x509_epoch(&ca->cert.valid_to);
    return NU_OK;
}

int nu_ca_load(const char *ca_dir, nu_ca_t **out, nu_err_t *err)
{
    nu_ca_t *ca = calloc(1, sizeof *ca);
    size_t len = 0;
    int dirfd = -1, rc;

    if (ca == NULL)
        return nu_err_set(err, NU_ENOMEM, "ca: cannot load CA: out of memory");
    pthread_mutex_init(&ca->lock, NULL);
    mbedtls_x509_crt_init(&ca->cert);
    mbedtls_pk_init(&ca->key);
    mbedtls_pk_init(&ca->jwt_key);

    dirfd = open(ca_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) {
        rc = errno == ENOENT
             ? nu_err_set(err, NU_ENOENT, "ca: cannot load CA: no CA in '%s' "
                          "(run 'nucleus ca init' first)", ca_dir)
             : nu_err_errno(err, errno, "ca: cannot open '%s'", ca_dir);
        goto fail;
    }
    rc = nu__load_meta(ca, dirfd, ca_dir, err);
    if (rc == NU_OK)
        rc = nu__id_read_file(dirfd, NU__CA_CERT, &ca->cert_pem, &len, err);
    if (rc == NU_OK && nu_x509_parse_certs(ca->cert_pem, len, &ca->cert,
                                           err) != 1)
        rc = nu_err_set(err, NU_EPARSE, "ca: cannot load CA: '%s/%s' must "
                        "hold exactly one certificate", ca_dir, NU__CA_CERT);
    if (rc == NU_OK)
        rc = nu__load_key(dirfd, ca_dir, NU__CA_KEY, &ca->key, err);
    if (rc == NU_OK)
        rc = nu__load_key(dirfd, ca_dir, NU__JWT_KEY, &ca->jwt_key, err);
    if (rc == NU_OK)
        rc = nu__check_root(ca, ca_dir, err);
    if (rc == NU_OK)
        nu__id_jwk_thumbprint(&ca->jwt_key, ca->jwt_kid);
    if (rc != NU_OK)
        goto fail;
    close(dirfd);
    *out = ca;
    return NU_OK;

fail:
    if (dirfd >= 0)
        close(dirfd);
    nu_ca_free(ca);
    return rc;
}

void nu_ca_free(nu_ca_t *ca)
{
    if (ca == NULL)
        return;
    mbedtls_x509_crt_free(&ca->cert);
    mbedtls_pk_free(&ca->key);
    mbedtls_pk_free(&ca->jwt_key);
    free(ca->cert_pem);
    pthread_mutex_destroy(&ca->lock);
    free(ca);
}

const char *nu_ca_trust_domain(const nu_ca_t *ca)
{
    return ca->trust_domain;
}

time_t nu_ca_not_after(const nu_ca_t *ca)
{
    return ca->not_after;
}

const char *nu_ca_bundle_pem(const nu_ca_t *ca)
{
    return ca->cert_pem;
}

/* ---- SPIFFE bundle JSON --------------------------------------------------- */

/* A JWK for a P-256 public key: {"kty","crv","x","y"} plus "use". */
static json_t *nu__jwk(const mbedtls_pk_context *pk, const char *use)
{
    uint8_t x[32], y[32];
    char bx[48], by[48];

    if (nu__id_ec_point(pk, x, y) != 0)
        return NULL;
    nu__b64url_encode(x, 32, bx);
    nu__b64url_encode(y, 32, by);
    return json_pack("{s:s, s:s, s:s, s:s, s:s}", "use", use, "kty", "EC",
                     "crv", "P-256", "x", bx, "y", by);
}

static json_t *nu__x5c(const mbedtls_x509_crt *crt)
{
    size_t size = crt->raw.len * 4 / 3 + 8, olen = 0;
    unsigned char *b64 = malloc(size);
    json_t *arr = NULL;

    if (b64 != NULL && mbedtls_base64_encode(b64, size, &olen, crt->raw.p,
                                             crt->raw.len) == 0)
        arr = json_pack("[s]", (char *)b64);
    free(b64);
    return arr;
}

char *nu_ca_bundle_json(const nu_ca_t *ca, nu_err_t *err)
{
    json_t *x509 = nu__jwk(&ca->cert.pk, "x509-svid");
    json_t *jwt = nu__jwk(&ca->jwt_key, "jwt-svid");
    json_t *x5c = nu__x5c(&ca->cert);
    json_t *bundle = NULL;
    char *text = NULL;

    if (x509 == NULL || jwt == NULL || x5c == NULL)
        goto out;
    json_object_set(x509, "x5c", x5c);
    json_object_set_new(jwt, "kid", json_string(ca->jwt_kid));
    bundle = json_pack("{s:[O,O], s:I, s:i}", "keys", x509, jwt,
                       "spiffe_sequence", (json_int_t)ca->sequence,
                       "spiffe_refresh_hint", NU_BUNDLE_REFRESH_HINT);
    if (bundle != NULL)
        text = json_dumps(bundle, JSON_INDENT(2) | JSON_SORT_KEYS);

out:
    if (text == NULL)
        nu_err_set(err, NU_ENOMEM, "ca: cannot encode the bundle JSON: out "
                   "of memory");
    json_decref(x509);
    json_decref(jwt);
    json_decref(x5c);
    json_decref(bundle);
    return text;
}
