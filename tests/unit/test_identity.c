/*
 * test_identity.c - the CA, X.509-SVID issuance and validation, bundle sets,
 * JWT-SVIDs and in-process mTLS handshakes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <mbedtls/ecdsa.h>
#include <mbedtls/oid.h>
#include <mbedtls/sha256.h>

#include "identity_internal.h"
#include "nucleus/identity.h"
#include "nucleus/mtls.h"

#define TD "nucleus.local"
#define POD "spiffe://nucleus.local/ns/default/pod/p1"
#define NODE "spiffe://nucleus.local/node/n1"

/* Two CAs shared by the tests: "nucleus.local" and the look-alike
 * "nucleus.local.evil". */
static char g_root[64];
static nu_ca_t *g_ca;
static nu_ca_t *g_evil;

static nu_ca_t *make_ca(const char *sub, const char *td)
{
    char dir[128];
    nu_ca_t *ca = NULL;
    nu_err_t err;

    snprintf(dir, sizeof dir, "%s/%s", g_root, sub);
    if (nu_ca_create(dir, td, 0, &err) != NU_OK ||
        nu_ca_load(dir, &ca, &err) != NU_OK)
        fail_msg("cannot make CA %s: %s", td, err.msg);
    return ca;
}

static int setup_cas(void **state)
{
    (void)state;
    snprintf(g_root, sizeof g_root, "/tmp/nu-test-identity-XXXXXX");
    if (mkdtemp(g_root) == NULL)
        return -1;
    g_ca = make_ca("ca", TD);
    g_evil = make_ca("evil", "nucleus.local.evil");
    return 0;
}

static int teardown_cas(void **state)
{
    char cmd[128];

    (void)state;
    nu_ca_free(g_ca);
    nu_ca_free(g_evil);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_root);
    return system(cmd) == 0 ? 0 : -1;
}

/* Parse the certificates of pem into a fresh chain. */
static void parse_chain(const char *pem, mbedtls_x509_crt *chain)
{
    nu_err_t err;

    mbedtls_x509_crt_init(chain);
    if (nu_x509_parse_certs(pem, strlen(pem), chain, &err) < 1)
        fail_msg("cannot parse chain: %s", err.msg);
}

static nu_bundle_set_t *bundle_of(const nu_ca_t *ca)
{
    nu_bundle_set_t *set = nu_bundle_set_new();
    const char *pem = nu_ca_bundle_pem(ca);

    assert_int_equal(nu_bundle_set_add_pem(set, NULL, pem, strlen(pem), NULL), 1);
    return set;
}

/* ---- CA ----------------------------------------------------------------- */

static void test_identity_ca_refuses_overwrite(void **state)
{
    char dir[128];
    nu_ca_t *ca = NULL;
    nu_err_t err;
    char *json;

    (void)state;
    snprintf(dir, sizeof dir, "%s/again", g_root);
    assert_int_equal(nu_ca_create(dir, "again.test", 0, &err), NU_OK);
    assert_int_equal(nu_ca_create(dir, "again.test", 0, &err), NU_EEXIST);
    assert_non_null(strstr(err.msg, "--force"));

    assert_int_equal(nu_ca_create(dir, "again.test", 1, &err), NU_OK);
    assert_int_equal(nu_ca_load(dir, &ca, &err), NU_OK);
    json = nu_ca_bundle_json(ca, &err);
    assert_non_null(json);
    assert_non_null(strstr(json, "\"spiffe_sequence\": 2"));
    free(json);
    nu_ca_free(ca);
}

static void test_identity_ca_keys_are_private(void **state)
{
    static const char *const keys[] = { "ca.key", "jwt.key" };
    char path[160];
    struct stat st;

    (void)state;
    for (size_t i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/ca/%s", g_root, keys[i]);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
    }
}

static void test_identity_ca_root_profile(void **state)
{
    mbedtls_x509_crt root;
    const unsigned char *uri;
    size_t uri_len;

    (void)state;
    parse_chain(nu_ca_bundle_pem(g_ca), &root);
    assert_true(root.ca_istrue);
    assert_int_equal(root.max_pathlen, 1);     /* mbedTLS stores pathLen + 1 */
    assert_int_equal(root.key_usage, MBEDTLS_X509_KU_KEY_CERT_SIGN |
                                     MBEDTLS_X509_KU_CRL_SIGN);
    assert_int_equal(nu__id_uri_sans(&root, &uri, &uri_len), 1);
    assert_memory_equal(uri, "spiffe://" TD, uri_len);
    mbedtls_x509_crt_free(&root);
}

static void test_identity_ca_load_missing(void **state)
{
    char dir[128];
    nu_ca_t *ca = NULL;
    nu_err_t err;

    (void)state;
    snprintf(dir, sizeof dir, "%s/none", g_root);
    assert_int_equal(nu_ca_load(dir, &ca, &err), NU_ENOENT);
    assert_non_null(strstr(err.msg, "nucleus ca init"));
}

/* ---- issuance ----------------------------------------------------------- */

static void test_identity_issue_profile(void **state)
{
    nu_svid_t svid;
    mbedtls_x509_crt leaf;
    mbedtls_pk_context key;
    nu_spiffeid_t id;
    time_t now = time(NULL);
    nu_err_t err;

    (void)state;
    assert_int_equal(nu_ca_issue(g_ca, POD, 0, &svid, &err), NU_OK);
    parse_chain(svid.cert_pem, &leaf);
    assert_null(leaf.next);

    assert_int_equal(nu_svid_leaf_id(&leaf, &id, &err), NU_OK);
    assert_string_equal(id.id, POD);
    assert_false(leaf.ca_istrue);
    assert_true(leaf.ext_types & MBEDTLS_X509_EXT_BASIC_CONSTRAINTS);
    assert_int_equal(leaf.key_usage, MBEDTLS_X509_KU_DIGITAL_SIGNATURE);
    assert_int_equal(mbedtls_x509_crt_check_extended_key_usage(
        &leaf, MBEDTLS_OID_SERVER_AUTH, MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH)), 0);
    assert_int_equal(mbedtls_x509_crt_check_extended_key_usage(
        &leaf, MBEDTLS_OID_CLIENT_AUTH, MBEDTLS_OID_SIZE(MBEDTLS_OID_CLIENT_AUTH)), 0);

    /* 16-byte positive serial. */
    assert_int_equal(leaf.serial.len, 16);
    assert_true(leaf.serial.p[0] < 0x80);

    /* Back-dated by 60 s; default TTL one hour. */
    assert_true(nu__id_x509_epoch(&leaf.valid_from) <= now - 59);
    assert_true(nu__id_x509_epoch(&leaf.valid_to) >= now + 3599);
    assert_true(nu__id_x509_epoch(&leaf.valid_to) <= now + 3601);

    mbedtls_pk_init(&key);
    assert_int_equal(nu_x509_parse_key(svid.key_pem, strlen(svid.key_pem),
                                       &key, &err), NU_OK);
    assert_int_equal(nu_svid_check_key(&leaf, &key, &err), NU_OK);
    assert_non_null(strstr(svid.key_pem, "BEGIN PRIVATE KEY"));

    mbedtls_pk_free(&key);
    mbedtls_x509_crt_free(&leaf);
    nu_svid_free(&svid);
}

static void test_identity_issue_new_key_each_time(void **state)
{
    nu_svid_t a, b;

    (void)state;
    assert_int_equal(nu_ca_issue(g_ca, POD, 60, &a, NULL), NU_OK);
    assert_int_equal(nu_ca_issue(g_ca, POD, 60, &b, NULL), NU_OK);
    assert_string_not_equal(a.key_pem, b.key_pem);
    assert_string_not_equal(a.cert_pem, b.cert_pem);
    nu_svid_free(&a);
    nu_svid_free(&b);
}

static void test_identity_issue_rejects_bad_requests(void **state)
{
    nu_svid_t svid;
    nu_err_t err;

    (void)state;
    assert_int_equal(nu_ca_issue(g_ca, "spiffe://other.td/x", 0, &svid, &err),
                     NU_EINVAL);
    assert_non_null(strstr(err.msg, "not in trust domain"));
    assert_int_equal(nu_ca_issue(g_ca, "spiffe://nucleus.local.evil/x", 0,
                                 &svid, &err), NU_EINVAL);
    assert_int_equal(nu_ca_issue(g_ca, "spiffe://" TD, 0, &svid, &err),
                     NU_EINVAL);
    assert_int_equal(nu_ca_issue(g_ca, "spiffe://" TD "/a//b", 0, &svid, &err),
                     NU_EPARSE);
    assert_int_equal(nu_ca_issue(g_ca, POD, -5, &svid, &err), NU_EINVAL);
    assert_null(svid.cert_pem);
}

static void test_identity_issue_ttl_capped_by_ca(void **state)
{
    nu_svid_t svid;

    (void)state;
    assert_int_equal(nu_ca_issue(g_ca, POD, NU_CA_TTL_DEFAULT, &svid, NULL),
                     NU_OK);
    assert_true(svid.not_after <= nu_ca_not_after(g_ca));
    nu_svid_free(&svid);
}

/* ---- validation ----------------------------------------------------------- */

static void test_identity_verify_accepts_issued(void **state)
{
    nu_bundle_set_t *set = bundle_of(g_ca);
    mbedtls_x509_crt chain;
    nu_spiffeid_t id;
    nu_svid_t svid;
    nu_err_t err;

    (void)state;
    assert_int_equal(nu_ca_issue(g_ca, POD, 0, &svid, &err), NU_OK);
    parse_chain(svid.cert_pem, &chain);
    assert_int_equal(nu_svid_verify(&chain, set, TD, &id, &err), NU_OK);
    assert_string_equal(id.id, POD);
    assert_int_equal(nu_svid_verify(&chain, set, NULL, &id, &err), NU_OK);

    mbedtls_x509_crt_free(&chain);
    nu_svid_free(&svid);
    nu_bundle_set_free(set);
}

static void test_identity_verify_rejects_lookalike_domain(void **state)
{
    nu_bundle_set_t *set = nu_bundle_set_new();
    const char *good = nu_ca_bundle_pem(g_ca), *evil = nu_ca_bundle_pem(g_evil);
    mbedtls_x509_crt chain;
    nu_svid_t svid;
    nu_err_t err;

    (void)state;
    assert_int_equal(nu_bundle_set_add_pem(set, NULL, good, strlen(good), &err), 1);
    assert_int_equal(nu_bundle_set_add_pem(set, NULL, evil, strlen(evil), &err), 1);
    assert_int_equal(nu_bundle_set_add_pem(set, NULL, evil, strlen(evil), &err),
                     NU_EINVAL);

    assert_int_equal(nu_ca_issue(g_evil, "spiffe://nucleus.local.evil/ns/a/pod/b",
                                 0, &svid, &err), NU_OK);
    parse_chain(svid.cert_pem, &chain);
    assert_int_equal(nu_svid_verify(&chain, set, TD, NULL, &err), NU_EDENIED);
    assert_non_null(strstr(err.msg, "expected trust domain 'nucleus.local'"));
    /* In its own trust domain the same SVID is valid. */
    assert_int_equal(nu_svid_verify(&chain, set, "nucleus.local.evil", NULL,
                                     &err), NU_OK);

    mbedtls_x509_crt_free(&chain);
    nu_svid_free(&svid);
    nu_bundle_set_free(set);
}

static void test_identity_verify_uses_only_leaf_domain_bundle(void **state)
{
    nu_bundle_set_t *set = nu_bundle_set_new();
    const char *good = nu_ca_bundle_pem(g_ca), *evil = nu_ca_bundle_pem(g_evil);
    mbedtls_x509_crt chain;
    nu_svid_t svid;
    nu_err_t err;

    (void)state;
    assert_int_equal(nu_ca_issue(g_ca, POD, 0, &svid, &err), NU_OK);
    parse_chain(svid.cert_pem, &chain);

    /* The real issuer's root is filed under another trust domain: the
     * chain must not be built against it. */
    assert_int_equal(nu_bundle_set_add_pem(set, "nucleus.local.evil", good,
                                           strlen(good), &err), 1);
    assert_int_equal(nu_svid_verify(&chain, set, NULL, NULL, &err), NU_EDENIED);
    assert_non_null(strstr(err.msg, "no X.509 bundle found for trust domain "
                                    "'nucleus.local'"));

    /* The leaf's trust domain maps to a different CA: unknown authority. */
    assert_int_equal(nu_bundle_set_add_pem(set, TD, evil, strlen(evil), &err), 1);
    assert_int_equal(nu_svid_verify(&chain, set, TD, NULL, &err), NU_EDENIED);
    assert_non_null(strstr(err.msg, "unknown authority"));

    mbedtls_x509_crt_free(&chain);
    nu_svid_free(&svid);
    nu_bundle_set_free(set);
}

static void test_identity_verify_rejects_wrong_key(void **state)
{
    mbedtls_x509_crt chain;
    mbedtls_pk_context key;
    nu_svid_t a, b;
    nu_err_t err;

    (void)state;
    assert_int_equal(nu_ca_issue(g_ca, POD, 0, &a, &err), NU_OK);
    assert_int_equal(nu_ca_issue(g_ca, POD, 0, &b, &err), NU_OK);
    parse_chain(a.cert_pem, &chain);
    mbedtls_pk_init(&key);
    assert_int_equal(nu_x509_parse_key(b.key_pem, strlen(b.key_pem), &key, &err),
                     NU_OK);
    assert_int_equal(nu_svid_check_key(&chain, &key, &err), NU_EDENIED);
    assert_non_null(strstr(err.msg, "does not match"));

    mbedtls_pk_free(&key);
    mbedtls_x509_crt_free(&chain);
    nu_svid_free(&a);
    nu_svid_free(&b);
}

static void test_identity_verify_rejects_expired(void **state)
{
    nu_bundle_set_t *set = bundle_of(g_ca);
    mbedtls_x509_crt chain;
    nu_svid_t svid;
    nu_err_t err;

    (void)state;
    assert_int_equal(nu_ca_issue(g_ca, POD, 1, &svid, &err), NU_OK);
    parse_chain(svid.cert_pem, &chain);
    sleep(2);
    assert_int_equal(nu_svid_verify(&chain, set, TD, NULL, &err), NU_EDENIED);
    assert_non_null(strstr(err.msg, "expired"));

    mbedtls_x509_crt_free(&chain);
    nu_svid_free(&svid);
    nu_bundle_set_free(set);
}

static void test_identity_pem_rejects_trailing_data(void **state)
{
    mbedtls_x509_crt chain, good;
    unsigned char *der;
    nu_svid_t svid;
    nu_err_t err;
    char *pem;

    (void)state;
    assert_int_equal(nu_ca_issue(g_ca, POD, 0, &svid, &err), NU_OK);
    parse_chain(svid.cert_pem, &good);

    /* The same certificate with three zero bytes after its DER encoding,
     * inside one PEM block (mbedTLS alone would ignore them). */
    der = calloc(1, good.raw.len + 3);
    memcpy(der, good.raw.p, good.raw.len);
    pem = nu__id_cert_pem(der, good.raw.len + 3);

    mbedtls_x509_crt_init(&chain);
    assert_int_equal(nu_x509_parse_certs(pem, strlen(pem), &chain, &err),
                     NU_EPARSE);
    assert_non_null(strstr(err.msg, "trailing data"));
    assert_int_equal(nu_x509_parse_certs("junk", 4, &chain, &err), NU_EPARSE);
    assert_non_null(strstr(err.msg, "no PEM blocks found"));
    assert_int_equal(nu_x509_parse_certs("\n", 1, &chain, &err), 0);

    mbedtls_x509_crt_free(&chain);
    mbedtls_x509_crt_free(&good);
    free(pem);
    free(der);
    nu_svid_free(&svid);
}

/* ---- go-spiffe test data ------------------------------------------------- */

static char *read_case(const char *dir, const char *name, size_t *len)
{
    char path[512];
    char *text = NULL;

    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
        fail_msg("path too long: %s/%s", dir, name);
    if (nu_identity_read_file(path, &text, len, NULL) != NU_OK)
        fail_msg("cannot read %s", path);
    return text;
}

/* go-spiffe's x509svid.Parse: certificates, chain shape, key, key match.
 * Returns NU_OK with the ID and certificate count, or the first error. */
static int gospiffe_parse(const char *dir, const char *cert_file,
                          const char *key_file, nu_spiffeid_t *id, int *count,
                          nu_err_t *err)
{
    size_t cert_len, key_len;
    char *cert = read_case(dir, cert_file, &cert_len);
    char *key = read_case(dir, key_file, &key_len);
    mbedtls_x509_crt chain;
    mbedtls_pk_context pk;
    int rc;

    mbedtls_x509_crt_init(&chain);
    mbedtls_pk_init(&pk);
    rc = nu_x509_parse_certs(cert, cert_len, &chain, err);
    if (rc == 0)
        rc = nu_err_set(err, NU_EPARSE, "no certificates found");
    if (rc > 0) {
        *count = rc;
        rc = nu_svid_check_chain(&chain, id, err);
    }
    if (rc == NU_OK)
        rc = nu_x509_parse_key(key, key_len, &pk, err);
    if (rc == NU_OK)
        rc = nu_svid_check_key(&chain, &pk, err);

    mbedtls_pk_free(&pk);
    mbedtls_x509_crt_free(&chain);
    free(cert);
    free(key);
    return rc;
}

static void test_identity_gospiffe_x509svid_verdicts(void **state)
{
    static const struct {
        const char *cert, *key;
        int count;                  /* expected certificates; 0: error */
        const char *error;          /* substring of the expected error */
    } cases[] = {
        { "good-leaf-only.pem", "key-pkcs8-rsa.pem", 1, NULL },
        { "good-leaf-and-intermediate.pem", "key-pkcs8-ecdsa.pem", 2, NULL },
        { "good-cert-and-key.pem", "good-cert-and-key.pem", 1, NULL },
        { "good-key-and-cert.pem", "good-key-and-cert.pem", 1, NULL },
        { "key-pkcs8-rsa.pem", "key-pkcs8-rsa.pem", 0, "no certificates found" },
        { "good-leaf-and-intermediate.pem", "key-pkcs8-rsa.pem", 0,
          "does not match the private key" },
        { "not-pem", "key-pkcs8-rsa.pem", 0, "no PEM blocks found" },
        { "good-leaf-only.pem", "not-pem", 0, "no PEM blocks found" },
        { "corrupt-cert.pem", "key-pkcs8-rsa.pem", 0, "cannot parse certificate" },
        { "good-leaf-only.pem", "corrupt-key.pem", 0, "cannot parse private key" },
        { "wrong-leaf-empty-id.pem", "key-pkcs8-rsa.pem", 0, "no URI SAN" },
        { "wrong-leaf-ca-true.pem", "key-pkcs8-rsa.pem", 0,
          "leaf certificate must not have the CA flag set" },
        { "wrong-leaf-no-digital-signature.pem", "key-pkcs8-rsa.pem", 0,
          "must have 'digitalSignature'" },
        { "wrong-leaf-cert-sign.pem", "key-pkcs8-rsa.pem", 0,
          "must not have 'keyCertSign'" },
        { "wrong-leaf-crl-sign.pem", "key-pkcs8-rsa.pem", 0,
          "must not have 'cRLSign'" },
        { "wrong-intermediate-no-ca.pem", "key-pkcs8-rsa.pem", 0,
          "signing certificate 1 must have the CA flag set" },
        { "wrong-intermediate-no-key-cert-sign.pem", "key-pkcs8-rsa.pem", 0,
          "signing certificate 1 must have 'keyCertSign'" },
    };
    const char *shared = getenv("NU_SHARED_DIR");
    char dir[512];
    struct stat st;

    (void)state;
    snprintf(dir, sizeof dir, "%s/cases/spiffe-x509/x509svid",
             shared != NULL ? shared : "");
    if (shared == NULL || stat(dir, &st) != 0) {
        print_message("skipped: go-spiffe test data not found (set "
                      "NU_SHARED_DIR)\n");
        skip();
    }
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        nu_spiffeid_t id;
        nu_err_t err;
        int count = 0;
        int rc = gospiffe_parse(dir, cases[i].cert, cases[i].key, &id, &count,
                                &err);

        if (cases[i].error == NULL) {
            if (rc != NU_OK)
                fail_msg("%s: rejected: %s", cases[i].cert, err.msg);
            assert_string_equal(id.id, "spiffe://example.org/workload-1");
            assert_int_equal(count, cases[i].count);
        } else if (rc == NU_OK) {
            fail_msg("%s + %s: accepted, expected '%s'", cases[i].cert,
                     cases[i].key, cases[i].error);
        } else if (strstr(err.msg, cases[i].error) == NULL) {
            fail_msg("%s: message '%s' lacks '%s'", cases[i].cert, err.msg,
                     cases[i].error);
        }
    }
}

static void test_identity_gospiffe_x509bundle_verdicts(void **state)
{
    static const struct { const char *file; int count; } cases[] = {
        { "cert.pem", 1 }, { "certs.pem", 2 }, { "empty.pem", 0 },
        { "key.pem", 0 }, { "not-pem.pem", -1 }, { "corrupted.pem", -1 },
    };
    const char *shared = getenv("NU_SHARED_DIR");
    char dir[512];
    struct stat st;

    (void)state;
    snprintf(dir, sizeof dir, "%s/cases/spiffe-x509/x509bundle",
             shared != NULL ? shared : "");
    if (shared == NULL || stat(dir, &st) != 0) {
        print_message("skipped: go-spiffe test data not found (set "
                      "NU_SHARED_DIR)\n");
        skip();
    }
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mbedtls_x509_crt chain;
        size_t len;
        char *text = read_case(dir, cases[i].file, &len);
        int rc;

        mbedtls_x509_crt_init(&chain);
        rc = nu_x509_parse_certs(text, len, &chain, NULL);
        if (cases[i].count >= 0 && rc != cases[i].count)
            fail_msg("%s: %d certificates, expected %d", cases[i].file, rc,
                     cases[i].count);
        if (cases[i].count < 0 && rc >= 0)
            fail_msg("%s: accepted, expected an error", cases[i].file);
        mbedtls_x509_crt_free(&chain);
        free(text);
    }
}

/* ---- JWT-SVIDs ------------------------------------------------------------- */

static nu_jwt_bundle_t *jwt_bundle(void)
{
    nu_jwt_bundle_t *b = NULL;

    assert_int_equal(nu_jwt_bundle_from_ca(g_ca, &b, NULL), NU_OK);
    return b;
}

/* Build a token from raw header and claims JSON, signed with the CA's JWT
 * key; der_signature writes the signature as ASN.1 DER instead of r||s. */
static char *sign_token(const char *header, const char *claims,
                        int der_signature)
{
    mbedtls_ecp_keypair *ec = mbedtls_pk_ec(g_ca->jwt_key);
    char *token = malloc(strlen(header) * 2 + strlen(claims) * 2 + 256);
    unsigned char hash[32], sig[80];
    size_t sig_len = 0;
    char *p = token;

    p += nu__b64url_encode((const uint8_t *)header, strlen(header), p);
    *p++ = '.';
    p += nu__b64url_encode((const uint8_t *)claims, strlen(claims), p);
    mbedtls_sha256_ret((unsigned char *)token, (size_t)(p - token), hash, 0);
    if (der_signature) {
        assert_int_equal(mbedtls_ecdsa_write_signature(ec, MBEDTLS_MD_SHA256,
                         hash, 32, sig, &sig_len, nu__id_random, NULL), 0);
    } else {
        mbedtls_mpi r, s;
        mbedtls_mpi_init(&r);
        mbedtls_mpi_init(&s);
        assert_int_equal(mbedtls_ecdsa_sign(&ec->grp, &r, &s, &ec->d, hash, 32,
                                            nu__id_random, NULL), 0);
        mbedtls_mpi_write_binary(&r, sig, 32);
        mbedtls_mpi_write_binary(&s, sig + 32, 32);
        sig_len = 64;
        mbedtls_mpi_free(&r);
        mbedtls_mpi_free(&s);
    }
    *p++ = '.';
    nu__b64url_encode(sig, sig_len, p);
    return token;
}

static char *header_with(const char *alg)
{
    static char header[256];

    snprintf(header, sizeof header, "{\"alg\":\"%s\",\"kid\":\"%s\","
             "\"typ\":\"JWT\"}", alg, g_ca->jwt_kid);
    return header;
}

static char *claims_with(const char *extra)
{
    static char claims[512];

    snprintf(claims, sizeof claims, "{\"sub\":\"" POD "\",\"aud\":\"api\","
             "\"exp\":%lld%s}", (long long)time(NULL) + 300, extra);
    return claims;
}

static void test_identity_jwt_roundtrip(void **state)
{
    const char *aud[] = { "api", "audit" };
    nu_jwt_bundle_t *b = jwt_bundle();
    nu_spiffeid_t sub;
    char *token = NULL;
    nu_err_t err;

    (void)state;
    assert_int_equal(nu_jwt_issue(g_ca, POD, aud, 2, 0, &token, &err), NU_OK);
    assert_int_equal(nu_jwt_verify(token, b, "api", time(NULL), &sub, &err),
                     NU_OK);
    assert_string_equal(sub.id, POD);
    assert_int_equal(nu_jwt_verify(token, b, "audit", time(NULL), &sub, &err),
                     NU_OK);
    assert_int_equal(nu_jwt_verify(token, b, "other", time(NULL), &sub, &err),
                     NU_EDENIED);
    assert_non_null(strstr(err.msg, "wrong audience"));
    assert_int_equal(nu_jwt_verify(token, b, "api", time(NULL) + 3600, &sub,
                                   &err), NU_EDENIED);
    assert_non_null(strstr(err.msg, "expired"));
    free(token);
    nu_jwt_bundle_free(b);
}

static void test_identity_jwt_bundle_json_roundtrip(void **state)
{
    const char *aud[] = { "api" };
    nu_jwt_bundle_t *b = NULL;
    char *json = nu_ca_bundle_json(g_ca, NULL), *token = NULL;
    nu_spiffeid_t sub;
    nu_err_t err;

    (void)state;
    assert_int_equal(nu_jwt_bundle_from_json(json, strlen(json), NULL, &b, &err),
                     NU_OK);
    assert_string_equal(nu_jwt_bundle_trust_domain(b), TD);
    assert_int_equal(nu_jwt_issue(g_ca, POD, aud, 1, 60, &token, &err), NU_OK);
    assert_int_equal(nu_jwt_verify(token, b, "api", time(NULL), &sub, &err),
                     NU_OK);
    nu_jwt_bundle_free(b);

    /* The look-alike trust domain's bundle must not accept it. */
    free(json);
    json = nu_ca_bundle_json(g_evil, NULL);
    assert_int_equal(nu_jwt_bundle_from_json(json, strlen(json), NULL, &b, &err),
                     NU_OK);
    assert_int_equal(nu_jwt_verify(token, b, "api", time(NULL), &sub, &err),
                     NU_EDENIED);
    assert_non_null(strstr(err.msg, "unknown kid"));
    nu_jwt_bundle_free(b);
    free(json);
    free(token);
}

static void test_identity_jwt_rejects_forged_tokens(void **state)
{
    static const struct { const char *alg, *claims_extra, *reason; } cases[] = {
        { "none", "", "alg 'none'" },
        { "HS256", "", "HMAC" },
        { "HS512", "", "HMAC" },
        { "RS256", "", "unsupported algorithm" },
        { "ES384", "", "unsupported algorithm" },
        { "ES256", ",\"nbf\":9999999999", "not yet valid" },
    };
    nu_jwt_bundle_t *b = jwt_bundle();
    nu_spiffeid_t sub;
    nu_err_t err;

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *token = sign_token(header_with(cases[i].alg),
                                 claims_with(cases[i].claims_extra), 0);
        int rc = nu_jwt_verify(token, b, "api", time(NULL), &sub, &err);
        if (rc != NU_EDENIED || strstr(err.msg, cases[i].reason) == NULL)
            fail_msg("alg %s: rc %d, '%s' (expected '%s')", cases[i].alg, rc,
                     err.msg, cases[i].reason);
        free(token);
    }
    nu_jwt_bundle_free(b);
}

static void test_identity_jwt_rejects_bad_claims(void **state)
{
    long long exp = (long long)time(NULL) + 300;
    char missing_aud[256], missing_exp[256], other_td[256], bad_sub[256];
    const struct { const char *claims, *reason; } cases[] = {
        { missing_aud, "aud claim is required" },
        { missing_exp, "exp claim is required" },
        { other_td, "not in trust domain" },
        { bad_sub, "not a valid SPIFFE ID" },
    };
    nu_jwt_bundle_t *b = jwt_bundle();
    nu_spiffeid_t sub;
    nu_err_t err;

    (void)state;
    snprintf(missing_aud, sizeof missing_aud, "{\"sub\":\"" POD "\","
             "\"exp\":%lld}", exp);
    snprintf(missing_exp, sizeof missing_exp, "{\"sub\":\"" POD "\","
             "\"aud\":\"api\"}");
    snprintf(other_td, sizeof other_td, "{\"sub\":\"spiffe://nucleus.local.evil"
             "/x\",\"aud\":\"api\",\"exp\":%lld}", exp);
    snprintf(bad_sub, sizeof bad_sub, "{\"sub\":\"spiffe://Nucleus.local/x\","
             "\"aud\":\"api\",\"exp\":%lld}", exp);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *token = sign_token(header_with("ES256"), cases[i].claims, 0);
        int rc = nu_jwt_verify(token, b, "api", time(NULL), &sub, &err);
        if (rc != NU_EDENIED || strstr(err.msg, cases[i].reason) == NULL)
            fail_msg("%s: rc %d, '%s' (expected '%s')", cases[i].claims, rc,
                     err.msg, cases[i].reason);
        free(token);
    }
    nu_jwt_bundle_free(b);
}

static void test_identity_jwt_rejects_bad_encoding(void **state)
{
    nu_jwt_bundle_t *b = jwt_bundle();
    char header[256];
    char *good = sign_token(header_with("ES256"), claims_with(""), 0);
    char *der = sign_token(header_with("ES256"), claims_with(""), 1);
    char *copy = strdup(good), *dot;
    nu_spiffeid_t sub;
    nu_err_t err;

    (void)state;
    assert_int_equal(nu_jwt_verify(good, b, "api", time(NULL), &sub, &err), NU_OK);

    assert_int_equal(nu_jwt_verify(der, b, "api", time(NULL), &sub, &err),
                     NU_EDENIED);
    assert_non_null(strstr(err.msg, "64 bytes"));

    /* A changed claim breaks the signature. */
    dot = strchr(copy, '.');
    dot[3] = dot[3] == 'A' ? 'B' : 'A';
    assert_int_equal(nu_jwt_verify(copy, b, "api", time(NULL), &sub, &err),
                     NU_EDENIED);
    assert_non_null(strstr(err.msg, "bad signature"));

    /* Characters outside base64url, padding and missing parts. */
    strcpy(copy, good);
    strchr(copy, '.')[2] = '*';
    assert_int_equal(nu_jwt_verify(copy, b, "api", time(NULL), &sub, &err),
                     NU_EDENIED);
    snprintf(copy, strlen(good) + 1, "%s", good);
    *strrchr(copy, '.') = '\0';
    assert_int_equal(nu_jwt_verify(copy, b, "api", time(NULL), &sub, &err),
                     NU_EDENIED);
    assert_non_null(strstr(err.msg, "malformed token"));
    assert_int_equal(nu_jwt_verify("a.b.c.d", b, "api", time(NULL), &sub, &err),
                     NU_EDENIED);
    assert_int_equal(nu_jwt_verify("", b, "api", time(NULL), &sub, &err),
                     NU_EDENIED);

    /* Unknown kid. */
    snprintf(header, sizeof header, "{\"alg\":\"ES256\",\"kid\":\"nope\"}");
    free(copy);
    copy = sign_token(header, claims_with(""), 0);
    assert_int_equal(nu_jwt_verify(copy, b, "api", time(NULL), &sub, &err),
                     NU_EDENIED);
    assert_non_null(strstr(err.msg, "unknown kid"));

    free(copy);
    free(good);
    free(der);
    nu_jwt_bundle_free(b);
}

/* ---- mTLS -------------------------------------------------------------------- */

typedef struct peer_run {
    nu_mtls_config_t *cfg;
    int fd;
    int rc;
    nu_err_t err;
    char peer[NU_SPIFFEID_MAX + 1];
} peer_run_t;

static void *run_server(void *arg)
{
    peer_run_t *run = arg;
    nu_mtls_conn_t *conn = NULL;

    run->rc = nu_mtls_handshake(run->cfg, run->fd, &conn, &run->err);
    if (run->rc == NU_OK) {
        char buf[16];
        snprintf(run->peer, sizeof run->peer, "%s", nu_mtls_peer_id(conn)->id);
        nu_mtls_write(conn, "pong", 4, NULL);
        nu_mtls_read(conn, buf, sizeof buf, NULL);
        nu_mtls_close(conn);
    }
    shutdown(run->fd, SHUT_RDWR);
    return NULL;
}

static nu_mtls_config_t *mtls_config(nu_ca_t *ca, const char *id, int64_t ttl,
                                     nu_mtls_role_t role, const char *td)
{
    nu_mtls_config_t *cfg = NULL;
    nu_svid_t svid;
    nu_err_t err;

    assert_int_equal(nu_ca_issue(ca, id, ttl, &svid, &err), NU_OK);
    if (nu_mtls_config_new(role, svid.cert_pem, svid.key_pem, svid.bundle_pem,
                           td, 5000, &cfg, &err) != NU_OK)
        fail_msg("mtls config: %s", err.msg);
    nu_svid_free(&svid);
    return cfg;
}

/* Whether the last successful client handshake resumed a session. */
static int g_last_resumed;

/* Handshake client against server over a socketpair; returns the client's
 * result and fills the server's run. */
static int handshake_pair(nu_mtls_config_t *client, nu_mtls_config_t *server,
                          peer_run_t *srv, char *client_peer, nu_err_t *err)
{
    nu_mtls_conn_t *conn = NULL;
    pthread_t thread;
    int sv[2], rc;

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    memset(srv, 0, sizeof *srv);
    srv->cfg = server;
    srv->fd = sv[1];
    pthread_create(&thread, NULL, run_server, srv);

    rc = nu_mtls_handshake(client, sv[0], &conn, err);
    if (rc == NU_OK) {
        char buf[16] = { 0 };
        g_last_resumed = nu_mtls_resumed(conn);
        strcpy(client_peer, nu_mtls_peer_id(conn)->id);
        assert_int_equal(nu_mtls_read(conn, buf, 4, NULL), 4);
        assert_string_equal(buf, "pong");
        nu_mtls_close(conn);
    }
    shutdown(sv[0], SHUT_RDWR);
    pthread_join(thread, NULL);
    close(sv[0]);
    close(sv[1]);
    return rc;
}

static void test_identity_mtls_exposes_peer_ids(void **state)
{
    nu_mtls_config_t *server = mtls_config(g_ca, POD, 0, NU_MTLS_SERVER, NULL);
    nu_mtls_config_t *client = mtls_config(g_ca, NODE, 0, NU_MTLS_CLIENT, TD);
    char client_peer[NU_SPIFFEID_MAX + 1] = "";
    peer_run_t srv;
    nu_err_t err;

    (void)state;
    if (handshake_pair(client, server, &srv, client_peer, &err) != NU_OK)
        fail_msg("client: %s / server: %s", err.msg, srv.err.msg);
    assert_int_equal(srv.rc, NU_OK);
    assert_string_equal(client_peer, POD);
    assert_string_equal(srv.peer, NODE);
    nu_mtls_config_free(server);
    nu_mtls_config_free(client);
}

static void test_identity_mtls_rejects_other_domain(void **state)
{
    /* The client trusts the evil CA's bundle but expects nucleus.local. */
    nu_mtls_config_t *server = mtls_config(g_evil, "spiffe://nucleus.local.evil/s",
                                           0, NU_MTLS_SERVER, TD);
    nu_mtls_config_t *client = NULL;
    char client_peer[NU_SPIFFEID_MAX + 1] = "";
    nu_svid_t svid;
    peer_run_t srv;
    nu_err_t err;

    (void)state;
    assert_int_equal(nu_ca_issue(g_ca, NODE, 0, &svid, &err), NU_OK);
    assert_int_equal(nu_mtls_config_new(NU_MTLS_CLIENT, svid.cert_pem,
                                        svid.key_pem, nu_ca_bundle_pem(g_evil),
                                        TD, 5000, &client, &err), NU_OK);
    assert_int_equal(handshake_pair(client, server, &srv, client_peer, &err),
                     NU_EDENIED);
    assert_non_null(strstr(err.msg, "not in the expected trust domain"));
    assert_int_not_equal(srv.rc, NU_OK);

    nu_svid_free(&svid);
    nu_mtls_config_free(server);
    nu_mtls_config_free(client);
}

static void test_identity_mtls_rejects_expired_client(void **state)
{
    nu_mtls_config_t *server = mtls_config(g_ca, POD, 0, NU_MTLS_SERVER, NULL);
    nu_mtls_config_t *client = mtls_config(g_ca, NODE, 1, NU_MTLS_CLIENT, NULL);
    char client_peer[NU_SPIFFEID_MAX + 1] = "";
    peer_run_t srv;
    nu_err_t err;

    (void)state;
    sleep(2);
    assert_int_not_equal(handshake_pair(client, server, &srv, client_peer, &err),
                         NU_OK);
    assert_int_equal(srv.rc, NU_EDENIED);
    assert_non_null(strstr(srv.err.msg, "expired"));
    nu_mtls_config_free(server);
    nu_mtls_config_free(client);
}

static void test_identity_mtls_resumes_sessions(void **state)
{
    nu_mtls_config_t *server = mtls_config(g_ca, POD, 3, NU_MTLS_SERVER, NULL);
    nu_mtls_config_t *client = mtls_config(g_ca, NODE, 0, NU_MTLS_CLIENT, TD);
    char client_peer[NU_SPIFFEID_MAX + 1] = "";
    peer_run_t srv;
    nu_err_t err;

    (void)state;
    /* Full handshake, then a resumed one: both expose the same peers. */
    for (int i = 0; i < 2; i++) {
        client_peer[0] = '\0';
        if (handshake_pair(client, server, &srv, client_peer, &err) != NU_OK)
            fail_msg("handshake %d: %s / %s", i, err.msg, srv.err.msg);
        assert_string_equal(client_peer, POD);
        assert_string_equal(srv.peer, NODE);
        assert_int_equal(g_last_resumed, i == 1);
    }

    /* The server's certificate expires.  Resuming the session that carries
     * it must fail on the client, which checks the dates again (a full
     * handshake would fail in the verify callback with another message). */
    sleep(4);
    assert_int_not_equal(handshake_pair(client, server, &srv, client_peer,
                                        &err), NU_OK);
    assert_non_null(strstr(err.msg, "expired or is not yet valid"));

    nu_mtls_config_free(server);
    nu_mtls_config_free(client);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identity_ca_refuses_overwrite),
        cmocka_unit_test(test_identity_ca_keys_are_private),
        cmocka_unit_test(test_identity_ca_root_profile),
        cmocka_unit_test(test_identity_ca_load_missing),
        cmocka_unit_test(test_identity_issue_profile),
        cmocka_unit_test(test_identity_issue_new_key_each_time),
        cmocka_unit_test(test_identity_issue_rejects_bad_requests),
        cmocka_unit_test(test_identity_issue_ttl_capped_by_ca),
        cmocka_unit_test(test_identity_verify_accepts_issued),
        cmocka_unit_test(test_identity_verify_rejects_lookalike_domain),
        cmocka_unit_test(test_identity_verify_uses_only_leaf_domain_bundle),
        cmocka_unit_test(test_identity_verify_rejects_wrong_key),
        cmocka_unit_test(test_identity_verify_rejects_expired),
        cmocka_unit_test(test_identity_pem_rejects_trailing_data),
        cmocka_unit_test(test_identity_gospiffe_x509svid_verdicts),
        cmocka_unit_test(test_identity_gospiffe_x509bundle_verdicts),
        cmocka_unit_test(test_identity_jwt_roundtrip),
        cmocka_unit_test(test_identity_jwt_bundle_json_roundtrip),
        cmocka_unit_test(test_identity_jwt_rejects_forged_tokens),
        cmocka_unit_test(test_identity_jwt_rejects_bad_claims),
        cmocka_unit_test(test_identity_jwt_rejects_bad_encoding),
        cmocka_unit_test(test_identity_mtls_exposes_peer_ids),
        cmocka_unit_test(test_identity_mtls_rejects_other_domain),
        cmocka_unit_test(test_identity_mtls_rejects_expired_client),
        cmocka_unit_test(test_identity_mtls_resumes_sessions),
    };

    return cmocka_run_group_tests(tests, setup_cas, teardown_cas);
}
