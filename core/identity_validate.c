/*
 * identity_validate.c - X.509-SVID validation and trust bundle sets.
 *
 * The rules come from the SPIFFE X.509-SVID standard (spiffe/spiffe,
 * standards/X509-SVID.md) and match go-spiffe's x509svid package:
 *   leaf:          exactly one URI SAN, a valid SPIFFE ID with a non-empty
 *                  path; cA false; keyUsage with digitalSignature and
 *                  without keyCertSign and cRLSign;
 *   intermediates: cA true and keyUsage with keyCertSign;
 *   chain:         built by mbedTLS against the bundle of the leaf's trust
 *                  domain only, checking signatures, validity dates, CA
 *                  flags, key usage and path length.
 */
#include <stdlib.h>
#include <string.h>

#include <mbedtls/oid.h>

#include "identity_internal.h"

int nu_svid_leaf_id(const mbedtls_x509_crt *leaf, nu_spiffeid_t *out,
                    nu_err_t *err)
{
    const unsigned char *uri;
    size_t uri_len;
    nu_spiffeid_t id;
    nu_err_t parse_err;
    int n = nu__id_uri_sans(leaf, &uri, &uri_len);

    if (n < 0)
        return nu_err_set(err, NU_EDENIED, "svid: leaf certificate has a "
                          "malformed subjectAltName extension");
    if (n == 0)
        return nu_err_set(err, NU_EDENIED, "svid: leaf certificate contains "
                          "no URI SAN");
    if (n > 1)
        return nu_err_set(err, NU_EDENIED, "svid: leaf certificate contains "
                          "more than one URI SAN");
    if (nu_spiffeid_parse((const char *)uri, uri_len, &id, &parse_err) != NU_OK)
        return nu_err_set(err, NU_EDENIED, "svid: leaf URI SAN is not a "
                          "valid SPIFFE ID (%s)", parse_err.msg);
    if (nu_spiffeid_path(&id)[0] == '\0')
        return nu_err_set(err, NU_EDENIED, "svid: leaf certificate SPIFFE ID "
                          "'%s' must have a non-root path", id.id);
    if (out != NULL)
        *out = id;
    return NU_OK;
}

static int nu__has_ku(const mbedtls_x509_crt *crt, unsigned int bit)
{
    return (crt->ext_types & MBEDTLS_X509_EXT_KEY_USAGE) != 0 &&
           (crt->key_usage & bit) != 0;
}

static int nu__check_leaf(const mbedtls_x509_crt *leaf, nu_err_t *err)
{
    if (leaf->ca_istrue)
        return nu_err_set(err, NU_EDENIED, "svid: leaf certificate must not "
                          "have the CA flag set");
    if (!nu__has_ku(leaf, MBEDTLS_X509_KU_DIGITAL_SIGNATURE))
        return nu_err_set(err, NU_EDENIED, "svid: leaf certificate must have "
                          "'digitalSignature' set as key usage");
    if (nu__has_ku(leaf, MBEDTLS_X509_KU_KEY_CERT_SIGN))
        return nu_err_set(err, NU_EDENIED, "svid: leaf certificate must not "
                          "have 'keyCertSign' set as key usage");
    if (nu__has_ku(leaf, MBEDTLS_X509_KU_CRL_SIGN))
        return nu_err_set(err, NU_EDENIED, "svid: leaf certificate must not "
                          "have 'cRLSign' set as key usage");
    return NU_OK;
}

int nu_svid_check_chain(const mbedtls_x509_crt *chain, nu_spiffeid_t *out,
                        nu_err_t *err)
{
    int rc, depth = 1;

    if (chain == NULL || chain->raw.p == NULL)
        return nu_err_set(err, NU_EDENIED, "svid: no certificates found");
    rc = nu_svid_leaf_id(chain, out, err);
    if (rc == NU_OK)
        rc = nu__check_leaf(chain, err);
    if (rc != NU_OK)
        return rc;

    for (const mbedtls_x509_crt *c = chain->next; c != NULL; c = c->next) {
        if (!c->ca_istrue)
            return nu_err_set(err, NU_EDENIED, "svid: signing certificate %d "
                              "must have the CA flag set", depth);
        if (!nu__has_ku(c, MBEDTLS_X509_KU_KEY_CERT_SIGN))
            return nu_err_set(err, NU_EDENIED, "svid: signing certificate %d "
                              "must have 'keyCertSign' set as key usage",
                              depth);
        depth++;
    }
    return NU_OK;
}

int nu_svid_check_key(const mbedtls_x509_crt *leaf, mbedtls_pk_context *key,
                      nu_err_t *err)
{
    /* mbedtls_pk_check_pair takes non-const contexts but only reads them. */
    if (mbedtls_pk_check_pair((mbedtls_pk_context *)&leaf->pk, key) != 0)
        return nu_err_set(err, NU_EDENIED, "svid: leaf certificate does not "
                          "match the private key");
    return NU_OK;
}

/* ---- bundle sets ------------------------------------------------------------ */

typedef struct nu__bundle {
    char trust_domain[NU_TRUST_DOMAIN_MAX + 1];
    mbedtls_x509_crt roots;
} nu__bundle_t;

struct nu_bundle_set {
    nu__bundle_t *items;
    size_t count;
};

nu_bundle_set_t *nu_bundle_set_new(void)
{
    return calloc(1, sizeof(nu_bundle_set_t));
}

void nu_bundle_set_free(nu_bundle_set_t *set)
{
    if (set == NULL)
        return;
    for (size_t i = 0; i < set->count; i++)
        mbedtls_x509_crt_free(&set->items[i].roots);
    free(set->items);
    free(set);
}

mbedtls_x509_crt *nu_bundle_set_find(const nu_bundle_set_t *set,
                                     const char *td)
{
    for (size_t i = 0; td != NULL && i < set->count; i++)
        if (strcmp(set->items[i].trust_domain, td) == 0)
            return &set->items[i].roots;
    return NULL;
}

const char *nu_bundle_set_only_domain(const nu_bundle_set_t *set)
{
    return set->count == 1 ? set->items[0].trust_domain : NULL;
}

/* The trust domain named by a root's URI SAN "spiffe://TD". */
static int nu__root_domain(const mbedtls_x509_crt *root,
                           char td[NU_TRUST_DOMAIN_MAX + 1])
{
    const unsigned char *uri;
    size_t uri_len;
    nu_spiffeid_t id;

    if (nu__id_uri_sans(root, &uri, &uri_len) != 1 ||
        nu_spiffeid_parse((const char *)uri, uri_len, &id, NULL) != NU_OK ||
        nu_spiffeid_path(&id)[0] != '\0')
        return -1;
    memcpy(td, id.trust_domain, strlen(id.trust_domain) + 1);
    return 0;
}

int nu_bundle_set_add_pem(nu_bundle_set_t *set, const char *td,
                          const char *pem, size_t len, nu_err_t *err)
{
    nu__bundle_t bundle, *items;
    int n, rc;

    memset(&bundle, 0, sizeof bundle);
    mbedtls_x509_crt_init(&bundle.roots);
    n = nu_x509_parse_certs(pem, len, &bundle.roots, err);
    if (n < 0) {
        rc = n;
        goto fail;
    }
    if (td != NULL)
        rc = nu_spiffeid_parse_trust_domain(td, bundle.trust_domain, err);
    else if (n > 0 && nu__root_domain(&bundle.roots, bundle.trust_domain) == 0)
        rc = NU_OK;
    else
        rc = nu_err_set(err, NU_EINVAL, "svid: cannot tell the trust domain "
                        "of the bundle: its first certificate has no URI SAN "
                        "'spiffe://TD' (pass the trust domain explicitly)");
    if (rc == NU_OK && nu_bundle_set_find(set, bundle.trust_domain) != NULL)
        rc = nu_err_set(err, NU_EINVAL, "svid: cannot add bundle: the set "
                        "already has one for trust domain '%s'",
                        bundle.trust_domain);
    for (mbedtls_x509_crt *c = &bundle.roots; rc == NU_OK && c != NULL &&
                                              c->raw.p != NULL; c = c->next)
        if (nu__id_prepare_key(&c->pk) != 0)
            rc = nu_err_set(err, NU_ECRYPTO, "svid: cannot load the key of a "
                            "bundle certificate");
    if (rc != NU_OK)
        goto fail;

    items = realloc(set->items, (set->count + 1) * sizeof *items);
    if (items == NULL) {
        rc = nu_err_set(err, NU_ENOMEM, "svid: cannot add bundle: out of "
                        "memory");
        goto fail;
    }
    set->items = items;
    set->items[set->count++] = bundle;
    return n;

fail:
    mbedtls_x509_crt_free(&bundle.roots);
    return rc;
}

/* ---- verification ----------------------------------------------------------- */

const char *nu__id_flag_reason(uint32_t flags)
{
    if (flags & MBEDTLS_X509_BADCERT_EXPIRED)
        return "certificate has expired";
    if (flags & MBEDTLS_X509_BADCERT_FUTURE)
        return "certificate is not yet valid";
    if (flags & MBEDTLS_X509_BADCERT_NOT_TRUSTED)
        return "certificate signed by unknown authority (the chain does not "
               "reach the trust bundle)";
    if (flags & MBEDTLS_X509_BADCERT_KEY_USAGE)
        return "a certificate in the chain has the wrong key usage";
    if (flags & MBEDTLS_X509_BADCERT_BAD_KEY)
        return "a key in the chain is not allowed (too weak or an unexpected "
               "curve)";
    if (flags & MBEDTLS_X509_BADCERT_BAD_MD)
        return "a signature in the chain uses a hash that is not allowed";
    if (flags & MBEDTLS_X509_BADCERT_BAD_PK)
        return "a signature in the chain uses an algorithm that is not "
               "allowed";
    return "chain verification failed";
}

int nu_svid_verify(mbedtls_x509_crt *chain, const nu_bundle_set_t *bundles,
                   const char *expected_td, nu_spiffeid_t *out, nu_err_t *err)
{
    mbedtls_x509_crt *roots;
    nu_spiffeid_t id;
    uint32_t flags = 0;
    int rc = nu_svid_check_chain(chain, &id, err);

    if (rc != NU_OK)
        return rc;
    if (expected_td != NULL && !nu_spiffeid_member_of(&id, expected_td))
        return nu_err_set(err, NU_EDENIED, "svid: SPIFFE ID '%s' is not in "
                          "the expected trust domain '%s'", id.id,
                          expected_td);
    roots = nu_bundle_set_find(bundles, id.trust_domain);
    if (roots == NULL || roots->raw.p == NULL)
        return nu_err_set(err, NU_EDENIED, "svid: no X.509 bundle found for "
                          "trust domain '%s'", id.trust_domain);

    rc = mbedtls_x509_crt_verify_with_profile(chain, roots, NULL,
                                              &mbedtls_x509_crt_profile_default,
                                              NULL, &flags, NULL, NULL);
    if (rc != 0)
        return nu_err_set(err, NU_EDENIED, "svid: cannot verify '%s': %s",
                          id.id, flags != 0 ? nu__id_flag_reason(flags)
                                            : "chain verification failed");
    if (out != NULL)
        *out = id;
    return NU_OK;
}
