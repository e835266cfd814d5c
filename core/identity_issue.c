/*
 * identity_issue.c - write certificates: the CA root and X.509-SVID leaves.
 *
 * The certificate is assembled here from mbedTLS's ASN.1 and X.509 name and
 * extension writers instead of mbedtls_x509write_crt_der, for three
 * reasons (mbedTLS 2.28):
 *   1. it has no writer for URI SANs or extended key usage, and marks
 *      basicConstraints critical only for CAs;
 *   2. it writes ecdsa-with-SHA256 AlgorithmIdentifiers with a NULL
 *      parameter, where RFC 5758 section 3.2 requires none;
 *   3. it signs through mbedtls_pk_sign, which took about 2.4 times as long
 *      as mbedtls_ecdsa_sign on the benchmark machine (docs/benchmarks.md).
 *
 * Certificate layout (RFC 5280 4.1), DER, written back to front:
 *   SEQUENCE { tbsCertificate, AlgorithmIdentifier, BIT STRING signature }
 *   tbsCertificate = SEQUENCE { [0] INTEGER 2, serialNumber, signature
 *       AlgorithmIdentifier, issuer, validity, subject,
 *       subjectPublicKeyInfo, [3] extensions }
 */
#include <stdlib.h>
#include <string.h>

#include <mbedtls/asn1write.h>
#include <mbedtls/ecdsa.h>
#include <mbedtls/oid.h>
#include <mbedtls/sha1.h>
#include <mbedtls/sha256.h>
#include <mbedtls/x509.h>

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

/* Add to *len the bytes a writer call produced; jump to out on error. */
#define NU__ADD(len, expr)                                                 \
    do {                                                                   \
        int nu__n = (expr);                                                \
        if (nu__n < 0) {                                                   \
            rc = nu__n;                                                    \
            goto out;                                                      \
        }                                                                  \
        (len) += (size_t)nu__n;                                            \
    } while (0)

/* Write the length and tag in front of len bytes already at *p. */
static int nu__wrap(unsigned char **p, unsigned char *start, size_t len,
                    unsigned char tag)
{
    int a = mbedtls_asn1_write_len(p, start, len), b;

    if (a < 0)
        return a;
    b = mbedtls_asn1_write_tag(p, start, tag);
    return b < 0 ? b : a + b;
}

/* AlgorithmIdentifier ecdsa-with-SHA256 without parameters. */
static int nu__write_sig_alg(unsigned char **p, unsigned char *start)
{
    int n = mbedtls_asn1_write_oid(p, start, MBEDTLS_OID_ECDSA_SHA256,
                                   MBEDTLS_OID_SIZE(MBEDTLS_OID_ECDSA_SHA256));
    int w = n < 0 ? n : nu__wrap(p, start, (size_t)n, MBEDTLS_ASN1_CONSTRUCTED |
                                                      MBEDTLS_ASN1_SEQUENCE);

    return w < 0 ? w : n + w;
}

/* UTCTime through 2049, GeneralizedTime after (RFC 5280 4.1.2.5). */
static int nu__write_time(unsigned char **p, unsigned char *start, time_t t)
{
    char text[64];
    struct tm tm;
    int tag;

    gmtime_r(&t, &tm);
    if (tm.tm_year + 1900 < 2050) {
        snprintf(text, sizeof text, "%02d%02d%02d%02d%02d%02dZ",
                 tm.tm_year % 100, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                 tm.tm_min, tm.tm_sec);
        tag = MBEDTLS_ASN1_UTC_TIME;
    } else {
        strftime(text, sizeof text, "%Y%m%d%H%M%SZ", &tm);
        tag = MBEDTLS_ASN1_GENERALIZED_TIME;
    }
    return mbedtls_asn1_write_tagged_string(p, start, tag, text, strlen(text));
}

/* RFC 5280 4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits. */
static int nu__key_id(mbedtls_pk_context *key, unsigned char id[20])
{
    const mbedtls_ecp_keypair *ec = mbedtls_pk_ec(*key);
    unsigned char point[65];
    size_t len = 0;
    int rc = mbedtls_ecp_point_write_binary(&ec->grp, &ec->Q,
                                            MBEDTLS_ECP_PF_UNCOMPRESSED, &len,
                                            point, sizeof point);

    return rc != 0 ? rc : mbedtls_sha1_ret(point, len, id);
}

/* GeneralNames with one uniformResourceIdentifier [6] IA5String. */
static int nu__san_uri(const char *uri, unsigned char *buf, size_t size,
                       const unsigned char **val, size_t *val_len)
{
    unsigned char *p = buf + size;
    size_t len = 0;
    int rc = 0;

    NU__ADD(len, mbedtls_asn1_write_raw_buffer(&p, buf,
                                               (const unsigned char *)uri,
                                               strlen(uri)));
    NU__ADD(len, nu__wrap(&p, buf, len, MBEDTLS_ASN1_CONTEXT_SPECIFIC |
                          MBEDTLS_X509_SAN_UNIFORM_RESOURCE_IDENTIFIER));
    NU__ADD(len, nu__wrap(&p, buf, len, MBEDTLS_ASN1_CONSTRUCTED |
                          MBEDTLS_ASN1_SEQUENCE));
    *val = p;
    *val_len = len;
out:
    return rc;
}

/* 16 random bytes that stay a positive 16-byte INTEGER in DER.  The top bit
 * is cleared, so no sign byte is needed, and the next bit is set, so DER
 * does not trim a leading zero byte. */
static int nu__random_serial(mbedtls_mpi *serial)
{
    unsigned char raw[16];
    int rc = nu__id_random(NULL, raw, sizeof raw);

    raw[0] = (unsigned char)((raw[0] & 0x7f) | 0x40);
    return rc != 0 ? rc : mbedtls_mpi_read_binary(serial, raw, sizeof raw);
}

#define NU__EXT(list, oid, critical, val, len)                              \
    mbedtls_x509_set_extension(list, oid, MBEDTLS_OID_SIZE(oid), critical, \
                               val, len)

/* Build the extension list of spec. */
static int nu__extensions(const nu__cert_spec_t *spec,
                          mbedtls_asn1_named_data **list)
{
    unsigned char san_buf[NU_SPIFFEID_MAX + 16], skid[22], akid[24];
    const unsigned char *san = NULL;
    size_t san_len = 0;
    int rc;

    rc = nu__san_uri(spec->uri, san_buf, sizeof san_buf, &san, &san_len);
    if (rc == 0)
        rc = NU__EXT(list, MBEDTLS_OID_SUBJECT_ALT_NAME, spec->is_ca, san,
                     san_len);
    if (rc == 0)
        rc = spec->is_ca
             ? NU__EXT(list, MBEDTLS_OID_BASIC_CONSTRAINTS, 1, nu__bc_ca,
                       sizeof nu__bc_ca)
             : NU__EXT(list, MBEDTLS_OID_BASIC_CONSTRAINTS, 1, nu__bc_leaf,
                       sizeof nu__bc_leaf);
    if (rc == 0)
        rc = NU__EXT(list, MBEDTLS_OID_KEY_USAGE, 1,
                     spec->is_ca ? nu__ku_ca : nu__ku_leaf, sizeof nu__ku_ca);
    if (rc == 0 && !spec->is_ca)
        rc = NU__EXT(list, MBEDTLS_OID_EXTENDED_KEY_USAGE, 0, nu__eku_leaf,
                     sizeof nu__eku_leaf);

    /* subjectKeyIdentifier OCTET STRING; authorityKeyIdentifier
     * SEQUENCE { [0] keyIdentifier }. */
    skid[0] = MBEDTLS_ASN1_OCTET_STRING;
    skid[1] = 20;
    akid[0] = MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE;
    akid[1] = 22;
    akid[2] = MBEDTLS_ASN1_CONTEXT_SPECIFIC;
    akid[3] = 20;
    if (rc == 0)
        rc = nu__key_id(spec->subject_key, skid + 2);
    if (rc == 0)
        rc = nu__key_id(spec->issuer_key, akid + 4);
    if (rc == 0)
        rc = NU__EXT(list, MBEDTLS_OID_SUBJECT_KEY_IDENTIFIER, 0, skid,
                     sizeof skid);
    if (rc == 0)
        rc = NU__EXT(list, MBEDTLS_OID_AUTHORITY_KEY_IDENTIFIER, 0, akid,
                     sizeof akid);
    return rc;
}

/* Write tbsCertificate at the end of buf; *tbs points at its first byte. */
static int nu__write_tbs(const nu__cert_spec_t *spec, unsigned char *buf,
                         size_t size, unsigned char **tbs, size_t *tbs_len)
{
    mbedtls_asn1_named_data *exts = NULL, *subject = NULL, *issuer = NULL;
    unsigned char spki[256], *p = buf + size;
    size_t len = 0, sub;
    mbedtls_mpi serial;
    int rc, spki_len;

    mbedtls_mpi_init(&serial);
    rc = nu__extensions(spec, &exts);
    if (rc == 0)
        rc = mbedtls_x509_string_to_names(&subject, spec->subject);
    if (rc == 0)
        rc = mbedtls_x509_string_to_names(&issuer, spec->issuer);
    if (rc == 0)
        rc = nu__random_serial(&serial);
    if (rc != 0)
        goto out;

    sub = 0;
    NU__ADD(sub, mbedtls_x509_write_extensions(&p, buf, exts));
    NU__ADD(sub, nu__wrap(&p, buf, sub, MBEDTLS_ASN1_CONSTRUCTED |
                          MBEDTLS_ASN1_SEQUENCE));
    NU__ADD(sub, nu__wrap(&p, buf, sub, MBEDTLS_ASN1_CONTEXT_SPECIFIC |
                          MBEDTLS_ASN1_CONSTRUCTED | 3));
    len += sub;

    spki_len = mbedtls_pk_write_pubkey_der(spec->subject_key, spki, sizeof spki);
    if (spki_len < 0) {
        rc = spki_len;
        goto out;
    }
    NU__ADD(len, mbedtls_asn1_write_raw_buffer(&p, buf,
                                               spki + sizeof spki - spki_len,
                                               (size_t)spki_len));
    NU__ADD(len, mbedtls_x509_write_names(&p, buf, subject));

    sub = 0;
    NU__ADD(sub, nu__write_time(&p, buf, spec->not_after));
    NU__ADD(sub, nu__write_time(&p, buf, spec->not_before));
    NU__ADD(sub, nu__wrap(&p, buf, sub, MBEDTLS_ASN1_CONSTRUCTED |
                          MBEDTLS_ASN1_SEQUENCE));
    len += sub;

    NU__ADD(len, mbedtls_x509_write_names(&p, buf, issuer));
    NU__ADD(len, nu__write_sig_alg(&p, buf));
    NU__ADD(len, mbedtls_asn1_write_mpi(&p, buf, &serial));

    sub = 0;
    NU__ADD(sub, mbedtls_asn1_write_int(&p, buf, 2));
    NU__ADD(sub, nu__wrap(&p, buf, sub, MBEDTLS_ASN1_CONTEXT_SPECIFIC |
                          MBEDTLS_ASN1_CONSTRUCTED | 0));
    len += sub;
    NU__ADD(len, nu__wrap(&p, buf, len, MBEDTLS_ASN1_CONSTRUCTED |
                          MBEDTLS_ASN1_SEQUENCE));
    *tbs = p;
    *tbs_len = len;

out:
    mbedtls_mpi_free(&serial);
    mbedtls_asn1_free_named_data_list(&exts);
    mbedtls_asn1_free_named_data_list(&subject);
    mbedtls_asn1_free_named_data_list(&issuer);
    return rc;
}

/* ECDSA signature of tbs as DER SEQUENCE { r, s } at the end of buf. */
static int nu__sign(mbedtls_pk_context *key, const unsigned char *tbs,
                    size_t tbs_len, unsigned char *buf, size_t size,
                    unsigned char **sig, size_t *sig_len)
{
    mbedtls_ecp_keypair *ec = mbedtls_pk_ec(*key);
    unsigned char hash[32], *p = buf + size;
    mbedtls_mpi r, s;
    size_t len = 0;
    int rc;

    mbedtls_mpi_init(&r);
    mbedtls_mpi_init(&s);
    rc = mbedtls_sha256_ret(tbs, tbs_len, hash, 0);
    if (rc == 0)
        rc = mbedtls_ecdsa_sign(&ec->grp, &r, &s, &ec->d, hash, sizeof hash,
                                nu__id_random, NULL);
    if (rc != 0)
        goto out;
    NU__ADD(len, mbedtls_asn1_write_mpi(&p, buf, &s));
    NU__ADD(len, mbedtls_asn1_write_mpi(&p, buf, &r));
    NU__ADD(len, nu__wrap(&p, buf, len, MBEDTLS_ASN1_CONSTRUCTED |
                          MBEDTLS_ASN1_SEQUENCE));
    *sig = p;
    *sig_len = len;

out:
    mbedtls_mpi_free(&r);
    mbedtls_mpi_free(&s);
    return rc;
}

int nu__id_write_cert(const nu__cert_spec_t *spec, unsigned char **der,
                      size_t *der_len, nu_err_t *err)
{
    unsigned char *tbs_buf = malloc(NU__DER_MAX), *out_buf = malloc(NU__DER_MAX);
    unsigned char sig_buf[80], *tbs = NULL, *sig = NULL, *p;
    size_t tbs_len = 0, sig_len = 0, len = 0;
    int rc;

    if (tbs_buf == NULL || out_buf == NULL) {
        free(tbs_buf);
        free(out_buf);
        return nu_err_set(err, NU_ENOMEM, "identity: cannot write certificate: "
                          "out of memory");
    }
    rc = nu__write_tbs(spec, tbs_buf, NU__DER_MAX, &tbs, &tbs_len);
    if (rc == 0)
        rc = nu__sign(spec->issuer_key, tbs, tbs_len, sig_buf, sizeof sig_buf,
                      &sig, &sig_len);
    if (rc != 0)
        goto out;

    p = out_buf + NU__DER_MAX;
    NU__ADD(len, mbedtls_asn1_write_raw_buffer(&p, out_buf, sig, sig_len));
    *--p = 0x00;                    /* BIT STRING: no unused bits */
    len++;
    NU__ADD(len, nu__wrap(&p, out_buf, len, MBEDTLS_ASN1_BIT_STRING));
    NU__ADD(len, nu__write_sig_alg(&p, out_buf));
    NU__ADD(len, mbedtls_asn1_write_raw_buffer(&p, out_buf, tbs, tbs_len));
    NU__ADD(len, nu__wrap(&p, out_buf, len, MBEDTLS_ASN1_CONSTRUCTED |
                          MBEDTLS_ASN1_SEQUENCE));

    /* The DER was written back to front, so it ends at the buffer's end. */
    memmove(out_buf, p, len);
    *der = out_buf;
    *der_len = len;
    out_buf = NULL;

out:
    if (rc != 0)
        rc = nu__id_mbed_err(err, NU_ECRYPTO, rc, "identity: cannot write the "
                             "certificate for '%s'", spec->uri);
    free(tbs_buf);
    free(out_buf);
    return rc;
}

/* Compute the leaf's validity window, rejecting a bad TTL or an expired CA. */
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
