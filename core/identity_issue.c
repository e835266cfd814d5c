/*
 * identity_issue.c - write certificates: the CA root and X.509-SVID leaves.
 *
 * mbedTLS 2.28 has no writer for URI SANs or extended key usage, and its
 * basicConstraints writer marks the extension critical only for CAs, so
 * those extensions are encoded here and added as raw extensions.
 */
#include <stdlib.h>
#include <string.h>

#include <mbedtls/asn1write.h>
#include <mbedtls/oid.h>
#include <mbedtls/x509_crt.h>

#include "identity_internal.h"

#define NU__DER_MAX 4096

/* keyUsage BIT STRING values (RFC 5280 4.2.1.3: bit 0 is the high bit of
 * the first byte; the first content byte counts the unused bits). */
static const unsigned char nu__ku_ca[] = { 0x03, 0x02, 0x01, 0x06 };   /* keyCertSign, cRLSign */
static const unsigned char nu__ku_leaf[] = { 0x03, 0x02, 0x07, 0x80 }; /* digitalSignature */

/* basicConstraints: CA TRUE with pathLen 0, and the empty SEQUENCE that
 * DER uses for cA FALSE (the default value is omitted). */
static const unsigned char nu__bc_ca[] = { 0x30, 0x06, 0x01, 0x01, 0xff,
                                           0x02, 0x01, 0x00 };
static const unsigned char nu__bc_leaf[] = { 0x30, 0x00 };

/* extKeyUsage: id-kp-serverAuth, id-kp-clientAuth. */
static const unsigned char nu__eku_leaf[] = {
    0x30, 0x14,
    0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01,
    0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02,
};

void nu__id_ca_subject(const char *td, char *out, size_t size)
{
    snprintf(out, size, "CN=%s,O=Nucleus", td);
}

/* GeneralNames with one uniformResourceIdentifier [6] IA5String. */
static int nu__san_uri(const char *uri, unsigned char *buf, size_t size,
                       const unsigned char **val, size_t *val_len)
{
    unsigned char *p = buf + size;
    size_t len = strlen(uri);
    int rc;

    if (len + 8 > size)
        return MBEDTLS_ERR_ASN1_BUF_TOO_SMALL;
    p -= len;
    memcpy(p, uri, len);
    if ((rc = mbedtls_asn1_write_len(&p, buf, len)) < 0)
        return rc;
    len += (size_t)rc;
    if ((rc = mbedtls_asn1_write_tag(&p, buf, MBEDTLS_ASN1_CONTEXT_SPECIFIC |
                    MBEDTLS_X509_SAN_UNIFORM_RESOURCE_IDENTIFIER)) < 0)
        return rc;
    len += (size_t)rc;
    if ((rc = mbedtls_asn1_write_len(&p, buf, len)) < 0)
        return rc;
    len += (size_t)rc;
    if ((rc = mbedtls_asn1_write_tag(&p, buf, MBEDTLS_ASN1_CONSTRUCTED |
                                     MBEDTLS_ASN1_SEQUENCE)) < 0)
        return rc;
    len += (size_t)rc;
    *val = p;
    *val_len = len;
    return 0;
}

/* 16 random bytes, positive, and always 16 bytes long in DER (the top bit
 * is cleared so the INTEGER needs no sign byte; the next one is set so it
 * needs no trimming). */
static int nu__set_serial(mbedtls_x509write_cert *crt)
{
    unsigned char raw[16];
    mbedtls_mpi serial;
    int rc;

    mbedtls_mpi_init(&serial);
    rc = nu__id_random(NULL, raw, sizeof raw);
    raw[0] = (unsigned char)((raw[0] & 0x7f) | 0x40);
    if (rc == 0)
        rc = mbedtls_mpi_read_binary(&serial, raw, sizeof raw);
    if (rc == 0)
        rc = mbedtls_x509write_crt_set_serial(crt, &serial);
    mbedtls_mpi_free(&serial);
    return rc;
}

#define NU__EXT(crt, oid, critical, val, len)                               \
    mbedtls_x509write_crt_set_extension(crt, oid, MBEDTLS_OID_SIZE(oid),   \
                                        critical, val, len)

static int nu__set_extensions(mbedtls_x509write_cert *crt,
                              const nu__cert_spec_t *spec)
{
    unsigned char san_buf[NU_SPIFFEID_MAX + 16];
    const unsigned char *san;
    size_t san_len;
    int rc;

    rc = nu__san_uri(spec->uri, san_buf, sizeof san_buf, &san, &san_len);
    if (rc == 0)
        rc = NU__EXT(crt, MBEDTLS_OID_SUBJECT_ALT_NAME, spec->is_ca, san,
                     san_len);
    if (rc == 0 && spec->is_ca)
        rc = NU__EXT(crt, MBEDTLS_OID_BASIC_CONSTRAINTS, 1, nu__bc_ca,
                     sizeof nu__bc_ca);
    if (rc == 0 && !spec->is_ca)
        rc = NU__EXT(crt, MBEDTLS_OID_BASIC_CONSTRAINTS, 1, nu__bc_leaf,
                     sizeof nu__bc_leaf);
    if (rc == 0)
        rc = NU__EXT(crt, MBEDTLS_OID_KEY_USAGE, 1,
                     spec->is_ca ? nu__ku_ca : nu__ku_leaf, sizeof nu__ku_ca);
    if (rc == 0 && !spec->is_ca)
        rc = NU__EXT(crt, MBEDTLS_OID_EXTENDED_KEY_USAGE, 0, nu__eku_leaf,
                     sizeof nu__eku_leaf);
    if (rc == 0)
        rc = mbedtls_x509write_crt_set_subject_key_identifier(crt);
    if (rc == 0)
        rc = mbedtls_x509write_crt_set_authority_key_identifier(crt);
    return rc;
}

int nu__id_write_cert(const nu__cert_spec_t *spec, unsigned char **der,
                      size_t *der_len, nu_err_t *err)
{
    mbedtls_x509write_cert crt;
    unsigned char *buf = malloc(NU__DER_MAX);
    char not_before[16], not_after[16];
    int rc;

    if (buf == NULL)
        return nu_err_set(err, NU_ENOMEM, "identity: cannot write "
                          "certificate: out of memory");
    mbedtls_x509write_crt_init(&crt);
    mbedtls_x509write_crt_set_version(&crt, MBEDTLS_X509_CRT_VERSION_3);
    mbedtls_x509write_crt_set_md_alg(&crt, MBEDTLS_MD_SHA256);
    mbedtls_x509write_crt_set_subject_key(&crt, spec->subject_key);
    mbedtls_x509write_crt_set_issuer_key(&crt, spec->issuer_key);
    nu__id_x509_string(spec->not_before, not_before);
    nu__id_x509_string(spec->not_after, not_after);

    rc = nu__set_serial(&crt);
    if (rc == 0)
        rc = mbedtls_x509write_crt_set_validity(&crt, not_before, not_after);
    if (rc == 0)
        rc = mbedtls_x509write_crt_set_subject_name(&crt, spec->subject);
    if (rc == 0)
        rc = mbedtls_x509write_crt_set_issuer_name(&crt, spec->issuer);
    if (rc == 0)
        rc = nu__set_extensions(&crt, spec);
    if (rc == 0)
        rc = mbedtls_x509write_crt_der(&crt, buf, NU__DER_MAX, nu__id_random,
                                       NULL);
    if (rc < 0) {
        nu__id_mbed_err(err, NU_ECRYPTO, rc, "identity: cannot write the "
                        "certificate for '%s'", spec->uri);
        free(buf);
        buf = NULL;
        goto out;
    }

    /* mbedTLS writes the DER at the end of the buffer. */
    memmove(buf, buf + NU__DER_MAX - rc, (size_t)rc);
    *der = buf;
    *der_len = (size_t)rc;
    rc = NU_OK;

out:
    mbedtls_x509write_crt_free(&crt);
    return rc;
}

/* Compute the leaf's validity window; fills err when it would be empty. */
static int nu__validity(const nu_ca_t *ca, int64_t ttl, time_t *not_before,
                        time_t *not_after, nu_err_t *err)
{
    time_t now = time(NULL);

    if (ttl == 0)
        ttl = NU_SVID_TTL_DEFAULT;
    if (ttl < 0 || ttl > NU_CA_TTL_DEFAULT)
        return nu_err_set(err, NU_EINVAL, "identity: cannot issue SVID: "
                          "invalid TTL %lld s (expected 1 to %d)",
                          (long long)ttl, NU_CA_TTL_DEFAULT);
    if (now >= ca->not_after)
        return nu_err_set(err, NU_EINVAL, "identity: cannot issue SVID: the "
                          "CA of '%s' has expired: run 'nucleus ca init "
                          "--force'", ca->trust_domain);
    *not_before = now - NU_SVID_BACKDATE;
    *not_after = now + (time_t)ttl;
    if (*not_after > ca->not_after)
        *not_after = ca->not_after;
    return NU_OK;
}

/* Fill the PEM texts of out from the leaf DER. */
static int nu__fill_svid(nu_ca_t *ca, mbedtls_pk_context *key,
                         const unsigned char *der, size_t der_len,
                         nu_svid_t *out, nu_err_t *err)
{
    out->cert_pem = nu__id_cert_pem(der, der_len);
    out->bundle_pem = strdup(ca->cert_pem);
    if (out->cert_pem == NULL || out->bundle_pem == NULL)
        return nu_err_set(err, NU_ENOMEM, "identity: cannot encode SVID: "
                          "out of memory");
    out->key_pem = nu__id_key_pem(key, err);
    return out->key_pem != NULL ? NU_OK : err->code;
}

int nu_ca_issue(nu_ca_t *ca, const char *spiffe_id, int64_t ttl,
                nu_svid_t *out, nu_err_t *err)
{
    char issuer[NU_TRUST_DOMAIN_MAX + 32];
    nu__cert_spec_t spec = { 0 };
    mbedtls_pk_context key;
    unsigned char *der = NULL;
    size_t der_len = 0;
    int rc;

    memset(out, 0, sizeof *out);
    mbedtls_pk_init(&key);
    rc = nu_spiffeid_parse(spiffe_id, strlen(spiffe_id), &out->id, err);
    if (rc != NU_OK)
        goto out;
    if (!nu_spiffeid_member_of(&out->id, ca->trust_domain)) {
        rc = nu_err_set(err, NU_EINVAL, "identity: cannot issue SVID for "
                        "'%s': not in trust domain '%s'", spiffe_id,
                        ca->trust_domain);
        goto out;
    }
    if (nu_spiffeid_path(&out->id)[0] == '\0') {
        rc = nu_err_set(err, NU_EINVAL, "identity: cannot issue SVID for "
                        "'%s': a workload ID needs a path", spiffe_id);
        goto out;
    }
    rc = nu__validity(ca, ttl, &out->not_before, &out->not_after, err);
    if (rc != NU_OK)
        goto out;
    rc = nu__id_gen_key(&key, err);
    if (rc != NU_OK)
        goto out;

    nu__id_ca_subject(ca->trust_domain, issuer, sizeof issuer);
    spec.subject = "O=Nucleus";
    spec.issuer = issuer;
    spec.uri = out->id.id;
    spec.subject_key = &key;
    spec.issuer_key = &ca->key;
    spec.not_before = out->not_before;
    spec.not_after = out->not_after;
    spec.is_ca = 0;

    pthread_mutex_lock(&ca->lock);
    rc = nu__id_write_cert(&spec, &der, &der_len, err);
    pthread_mutex_unlock(&ca->lock);
    if (rc == NU_OK)
        rc = nu__fill_svid(ca, &key, der, der_len, out, err);

out:
    free(der);
    mbedtls_pk_free(&key);
    if (rc != NU_OK)
        nu_svid_free(out);
    return rc;
}

void nu_svid_free(nu_svid_t *svid)
{
    if (svid == NULL)
        return;
    if (svid->key_pem != NULL)
        mbedtls_platform_zeroize(svid->key_pem, strlen(svid->key_pem));
    free(svid->key_pem);
    free(svid->cert_pem);
    free(svid->bundle_pem);
    memset(svid, 0, sizeof *svid);
}
