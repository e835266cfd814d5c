/*
 * audit_signer.c - checkpoint signing keys and signature checks.
 *
 * The default signer is a local ECDSA P-256 key pair under
 * $NUCLEUS_HOME/audit/ (node.key, mode 0600, and node.pub).  A signer built
 * from the node's X.509-SVID key (nu_audit_file_signer with a chain) makes
 * every checkpoint carry the chain, so a verifier needs only the trust
 * bundle.  Signatures are ECDSA over SHA-256 of the canonical checkpoint
 * body, DER encoded; key ids are SHA-256 of the DER SubjectPublicKeyInfo.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecp.h>
#include <mbedtls/entropy.h>
#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>

#include "audit_private.h"
#include "nucleus/home.h"
#include "nucleus/json.h"

typedef struct nu__signer {
    mbedtls_pk_context pk;
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    pthread_mutex_t mu;
    char *public_pem;
    char *chain_pem;
} nu__signer_t;

static int nu__mbed_err(nu_err_t *err, int mrc, const char *action)
{
    return nu_err_set(err, NU_ECRYPTO, "audit: cannot %s: mbedTLS error "
                      "-0x%04x", action, (unsigned)-mrc);
}

static char *nu__read_file(const char *path, size_t *len_out, nu_err_t *err)
{
    FILE *f = fopen(path, "rbe");
    char *data = NULL;
    long size;

    if (f == NULL) {
        nu_err_errno(err, errno, "audit: cannot open '%s'", path);
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 ||
        fseek(f, 0, SEEK_SET) != 0 || size > (1L << 24)) {
        nu_err_set(err, NU_EIO, "audit: cannot read '%s': not a regular "
                   "file of at most 16 MiB", path);
        goto cleanup;
    }
    data = malloc((size_t)size + 1);
    if (data == NULL || fread(data, 1, (size_t)size, f) != (size_t)size) {
        nu_err_set(err, NU_EIO, "audit: cannot read '%s'", path);
        free(data);
        data = NULL;
        goto cleanup;
    }
    data[size] = '\0';
    if (len_out != NULL)
        *len_out = (size_t)size;

cleanup:
    fclose(f);
    return data;
}

static int nu__signer_sign(void *ctx, const uint8_t *msg, size_t len,
                           uint8_t *sig, size_t sig_cap, size_t *sig_len,
                           nu_err_t *err)
{
    nu__signer_t *s = ctx;
    uint8_t hash[NU_SHA256_LEN];
    unsigned char buf[MBEDTLS_PK_SIGNATURE_MAX_SIZE];
    size_t n = 0;
    int mrc;

    nu_sha256(msg, len, hash);
    pthread_mutex_lock(&s->mu);
    mrc = mbedtls_pk_sign(&s->pk, MBEDTLS_MD_SHA256, hash, sizeof hash, buf,
                          &n, mbedtls_ctr_drbg_random, &s->drbg);
    pthread_mutex_unlock(&s->mu);
    if (mrc != 0)
        return nu__mbed_err(err, mrc, "sign the checkpoint");
    if (n > sig_cap)
        return nu_err_set(err, NU_ECRYPTO, "audit: cannot sign the "
                          "checkpoint: signature of %zu bytes", n);
    memcpy(sig, buf, n);
    *sig_len = n;
    return NU_OK;
}

static nu__signer_t *nu__signer_new(nu_err_t *err)
{
    static const char pers[] = "nucleus-audit-signer";
    nu__signer_t *s = calloc(1, sizeof *s);
    int mrc;

    if (s == NULL) {
        nu_err_set(err, NU_ENOMEM, "audit: cannot create signer: out of "
                   "memory");
        return NULL;
    }
    mbedtls_pk_init(&s->pk);
    mbedtls_entropy_init(&s->entropy);
    mbedtls_ctr_drbg_init(&s->drbg);
    pthread_mutex_init(&s->mu, NULL);
    mrc = mbedtls_ctr_drbg_seed(&s->drbg, mbedtls_entropy_func, &s->entropy,
                                (const unsigned char *)pers, sizeof pers - 1);
    if (mrc != 0) {
        nu__mbed_err(err, mrc, "seed the random generator");
        mbedtls_ctr_drbg_free(&s->drbg);
        mbedtls_entropy_free(&s->entropy);
        pthread_mutex_destroy(&s->mu);
        free(s);
        return NULL;
    }
    return s;
}

static void nu__signer_destroy(nu__signer_t *s)
{
    if (s == NULL)
        return;
    mbedtls_pk_free(&s->pk);
    mbedtls_ctr_drbg_free(&s->drbg);
    mbedtls_entropy_free(&s->entropy);
    pthread_mutex_destroy(&s->mu);
    free(s->public_pem);
    free(s->chain_pem);
    free(s);
}

static int nu__signer_finish(nu__signer_t *s, nu_audit_signer_t *out,
                             nu_err_t *err)
{
    unsigned char pem[1024];
    int mrc;

    if (!mbedtls_pk_can_do(&s->pk, MBEDTLS_PK_ECKEY) ||
        mbedtls_pk_ec(s->pk)->grp.id != MBEDTLS_ECP_DP_SECP256R1)
        return nu_err_set(err, NU_ECRYPTO, "audit: cannot use the signing "
                          "key: not an ECDSA P-256 key");
    mrc = mbedtls_pk_write_pubkey_pem(&s->pk, pem, sizeof pem);
    if (mrc != 0)
        return nu__mbed_err(err, mrc, "encode the public key");
    s->public_pem = strdup((char *)pem);
    if (s->public_pem == NULL)
        return nu_err_set(err, NU_ENOMEM, "audit: out of memory");

    memset(out, 0, sizeof *out);
    out->sign = nu__signer_sign;
    out->ctx = s;
    out->public_key_pem = s->public_pem;
    out->cert_chain_pem = s->chain_pem;
    return NU_OK;
}

/* Write the new key to a temporary file and link(2) it into place, so
 * that a concurrent creator either wins or finds ours. */
static int nu__create_key(const char *dir, const char *key_path,
                          nu_err_t *err)
{
    nu__signer_t *s = nu__signer_new(err);
    unsigned char pem[1024];
    char tmp[4200];
    int fd = -1, rc = NU_OK, mrc;
    size_t len;

    if (s == NULL)
        return NU_ECRYPTO;

    mrc = mbedtls_pk_setup(&s->pk, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY));
    if (mrc == 0)
        mrc = mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1,
                                  mbedtls_pk_ec(s->pk),
                                  mbedtls_ctr_drbg_random, &s->drbg);
    if (mrc == 0)
        mrc = mbedtls_pk_write_key_pem(&s->pk, pem, sizeof pem);
    if (mrc != 0) {
        rc = nu__mbed_err(err, mrc, "generate the node key");
        goto cleanup;
    }

    snprintf(tmp, sizeof tmp, "%s/.node.key.%ld", dir, (long)getpid());
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = nu_err_errno(err, errno, "audit: cannot create '%s'", tmp);
        goto cleanup;
    }
    len = strlen((char *)pem);
    if (write(fd, pem, len) != (ssize_t)len || fsync(fd) != 0) {
        rc = nu_err_errno(err, errno, "audit: cannot write '%s'", tmp);
        goto cleanup;
    }
    if (link(tmp, key_path) != 0 && errno != EEXIST)
        rc = nu_err_errno(err, errno, "audit: cannot create '%s'", key_path);

cleanup:
    if (fd >= 0) {
        close(fd);
        unlink(tmp);
    }
    nu__signer_destroy(s);
    return rc;
}

static int nu__write_public(const char *path, const char *pem, nu_err_t *err)
{
    char tmp[4300];
    FILE *f;

    snprintf(tmp, sizeof tmp, "%s.%ld", path, (long)getpid());
    f = fopen(tmp, "we");
    if (f == NULL)
        return nu_err_errno(err, errno, "audit: cannot create '%s'", tmp);
    fputs(pem, f);
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        unlink(tmp);
        return nu_err_errno(err, errno, "audit: cannot write '%s'", path);
    }
    return NU_OK;
}

int nu_audit_file_signer(const char *key_path, const char *chain_path,
                         nu_audit_signer_t *signer, nu_err_t *err)
{
    nu__signer_t *s;
    char *key = NULL;
    size_t len = 0;
    int rc = NU_OK, mrc;

    s = nu__signer_new(err);
    if (s == NULL)
        return NU_ECRYPTO;

    key = nu__read_file(key_path, &len, err);
    if (key == NULL) {
        rc = NU_EIO;
        goto cleanup;
    }
    mrc = mbedtls_pk_parse_key(&s->pk, (unsigned char *)key, len + 1, NULL, 0);
    if (mrc != 0) {
        rc = nu_err_set(err, NU_ECRYPTO, "audit: cannot parse key '%s': "
                        "mbedTLS error -0x%04x (expected a PEM EC private "
                        "key)", key_path, (unsigned)-mrc);
        goto cleanup;
    }
    if (chain_path != NULL) {
        s->chain_pem = nu__read_file(chain_path, NULL, err);
        if (s->chain_pem == NULL) {
            rc = NU_EIO;
            goto cleanup;
        }
    }
    rc = nu__signer_finish(s, signer, err);

cleanup:
    if (key != NULL) {
        mbedtls_platform_zeroize(key, len);
        free(key);
    }
    if (rc != NU_OK)
        nu__signer_destroy(s);
    return rc;
}

int nu_audit_local_signer(const char *dir, nu_audit_signer_t *signer,
                          nu_err_t *err)
{
    char key_path[4200], pub_path[4200];
    struct stat st;
    int rc;

    rc = nu_mkdir_p(dir, err);
    if (rc != NU_OK)
        return rc;
    snprintf(key_path, sizeof key_path, "%s/node.key", dir);
    snprintf(pub_path, sizeof pub_path, "%s/node.pub", dir);

    if (stat(key_path, &st) != 0) {
        rc = nu__create_key(dir, key_path, err);
        if (rc != NU_OK)
            return rc;
    } else if ((st.st_mode & 077) != 0) {
        return nu_err_set(err, NU_EPERM, "audit: cannot use key '%s': mode "
                          "%03o lets other users read it (chmod 600 it)",
                          key_path, (unsigned)(st.st_mode & 0777));
    }

    rc = nu_audit_file_signer(key_path, NULL, signer, err);
    if (rc != NU_OK)
        return rc;
    if (stat(pub_path, &st) != 0)
        rc = nu__write_public(pub_path, signer->public_key_pem, err);
    if (rc != NU_OK)
        nu_audit_signer_free(signer);
    return rc;
}

void nu_audit_signer_free(nu_audit_signer_t *signer)
{
    if (signer == NULL || signer->sign != nu__signer_sign)
        return;
    nu__signer_destroy(signer->ctx);
    memset(signer, 0, sizeof *signer);
}

char *nu_audit_local_public_key(const char *home, nu_err_t *err)
{
    char path[4200], dir[4096];

    if (nu_home_resolve(home, dir, sizeof dir, err) != NU_OK)
        return NULL;
    snprintf(path, sizeof path, "%s/audit/node.pub", dir);
    return nu__read_file(path, NULL, err);
}

/* ---- checkpoints -------------------------------------------------------- */

static const char *nu__get_str(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

int nu_audit_checkpoint_parse(const json_t *args,
                              nu_audit_checkpoint_info_t *cp, nu_err_t *err)
{
    const char *origin, *root, *time, *sig, *key_id, *chain;
    json_t *size;
    size_t siglen;

    memset(cp, 0, sizeof *cp);
    origin = nu__get_str(args, "origin");
    root = nu__get_str(args, "root_hash");
    time = nu__get_str(args, "time");
    sig = nu__get_str(args, "signature");
    key_id = nu__get_str(args, "key_id");
    chain = nu__get_str(args, "cert_chain");
    size = json_object_get(args, "size");

    if (origin == NULL || root == NULL || time == NULL || sig == NULL ||
        key_id == NULL || !json_is_integer(size) ||
        json_integer_value(size) < 1)
        return nu_err_set(err, NU_EPARSE, "checkpoint is missing origin, "
                          "size, root_hash, time, signature or key_id");
    if (json_object_size(args) != (chain != NULL ? 7u : 6u))
        return nu_err_set(err, NU_EPARSE, "checkpoint has unknown members");
    if (strlen(origin) >= sizeof cp->origin || strlen(time) >= sizeof cp->time)
        return nu_err_set(err, NU_EPARSE, "checkpoint origin or time too "
                          "long");
    if (nu_hex_decode(root, cp->root, NU_SHA256_LEN) != 0)
        return nu_err_set(err, NU_EPARSE, "checkpoint root_hash is not 64 "
                          "hex digits");
    siglen = strlen(sig) / 2;
    if (siglen == 0 || siglen > sizeof cp->sig ||
        nu_hex_decode(sig, cp->sig, siglen) != 0)
        return nu_err_set(err, NU_EPARSE, "checkpoint signature is not hex "
                          "DER");
    if (strlen(key_id) != NU_SHA256_HEX_LEN)
        return nu_err_set(err, NU_EPARSE, "checkpoint key_id is not 64 hex "
                          "digits");

    snprintf(cp->origin, sizeof cp->origin, "%s", origin);
    snprintf(cp->time, sizeof cp->time, "%s", time);
    snprintf(cp->key_id, sizeof cp->key_id, "%s", key_id);
    cp->sig_len = siglen;
    cp->size = json_integer_value(size);
    if (chain != NULL && (cp->cert_chain = strdup(chain)) == NULL)
        return nu_err_set(err, NU_ENOMEM, "audit: out of memory");
    return NU_OK;
}

void nu_audit_checkpoint_info_clear(nu_audit_checkpoint_info_t *cp)
{
    free(cp->cert_chain);
    cp->cert_chain = NULL;
}

/* The signed bytes: canonical {"origin","root_hash","size","time"}. */
char *nu__audit_checkpoint_body(const char *origin, int64_t size,
                                const uint8_t root[NU_SHA256_LEN],
                                const char *time, size_t *len, nu_err_t *err)
{
    char hex[NU_SHA256_HEX_LEN + 1];
    json_t *o;
    char *body;

    nu_hex_encode(root, NU_SHA256_LEN, hex);
    o = json_pack("{s:s, s:s, s:I, s:s}", "origin", origin, "root_hash", hex,
                  "size", (json_int_t)size, "time", time);
    if (o == NULL) {
        nu_err_set(err, NU_EINVAL, "audit: cannot encode checkpoint: invalid "
                   "origin or time");
        return NULL;
    }
    body = nu_json_canonical(o, len, err);
    json_decref(o);
    return body;
}

int nu__audit_key_id(mbedtls_pk_context *pk, char out[NU_SHA256_HEX_LEN + 1])
{
    unsigned char der[256];
    uint8_t id[NU_SHA256_LEN];
    int n = mbedtls_pk_write_pubkey_der(pk, der, sizeof der);

    if (n <= 0)
        return NU_ECRYPTO;
    nu_sha256(der + sizeof der - n, (size_t)n, id);
    nu_hex_encode(id, sizeof id, out);
    return NU_OK;
}

/* Key id of a PEM public key. */
int nu__audit_key_id_pem(const char *pem, char out[NU_SHA256_HEX_LEN + 1])
{
    mbedtls_pk_context pk;
    int rc = NU_ECRYPTO;

    mbedtls_pk_init(&pk);
    if (mbedtls_pk_parse_public_key(&pk, (const unsigned char *)pem,
                                    strlen(pem) + 1) == 0)
        rc = nu__audit_key_id(&pk, out);
    mbedtls_pk_free(&pk);
    return rc;
}

static void nu__x509_time(const mbedtls_x509_time *t, char *out, size_t size)
{
    snprintf(out, size, "%04d-%02d-%02dT%02d:%02d:%02d", t->year, t->mon,
             t->day, t->hour, t->min, t->sec);
}

/* Check the chain carried by cp against bundle and copy the leaf's key
 * into pk. */
static int nu__check_chain(const nu_audit_checkpoint_info_t *cp,
                           const char *bundle, mbedtls_pk_context **pk,
                           mbedtls_x509_crt *chain, mbedtls_x509_crt *ca,
                           nu_err_t *err)
{
    char from[32], to[32];
    uint32_t flags = 0;
    int mrc;

    if (cp->cert_chain == NULL)
        return nu_err_set(err, NU_EDENIED, "checkpoint carries no "
                          "certificate chain, but a trust bundle was given "
                          "(verify with --key instead)");
    if (mbedtls_x509_crt_parse(chain, (const unsigned char *)cp->cert_chain,
                               strlen(cp->cert_chain) + 1) != 0)
        return nu_err_set(err, NU_EDENIED, "checkpoint certificate chain is "
                          "not valid PEM");
    if (mbedtls_x509_crt_parse(ca, (const unsigned char *)bundle,
                               strlen(bundle) + 1) != 0)
        return nu_err_set(err, NU_EINVAL, "audit: cannot parse the trust "
                          "bundle: expected PEM certificates");

    /* A checkpoint outlives its short-lived signing certificate: judge
     * validity at the checkpoint's own time instead of now. */
    mrc = mbedtls_x509_crt_verify(chain, ca, NULL, NULL, &flags, NULL, NULL);
    flags &= ~(uint32_t)(MBEDTLS_X509_BADCERT_EXPIRED |
                         MBEDTLS_X509_BADCERT_FUTURE);
    if (mrc != 0 && flags != 0)
        return nu_err_set(err, NU_EDENIED, "checkpoint certificate chain "
                          "does not lead to the trust bundle (flags 0x%x)",
                          (unsigned)flags);
    nu__x509_time(&chain->valid_from, from, sizeof from);
    nu__x509_time(&chain->valid_to, to, sizeof to);
    if (strncmp(cp->time, from, 19) < 0 || strncmp(cp->time, to, 19) > 0)
        return nu_err_set(err, NU_EDENIED, "checkpoint time %s is outside "
                          "its certificate's validity (%s to %s)", cp->time,
                          from, to);
    *pk = &chain->pk;
    return NU_OK;
}

int nu_audit_checkpoint_check(const nu_audit_checkpoint_info_t *cp,
                              const nu_audit_trust_t *trust,
                              const char *default_key_pem, nu_err_t *err)
{
    const char *key = trust != NULL ? trust->key_pem : NULL;
    const char *bundle = trust != NULL ? trust->bundle_pem : NULL;
    mbedtls_pk_context keypk, *pk = &keypk;
    mbedtls_x509_crt chain, ca;
    char body_id[NU_SHA256_HEX_LEN + 1];
    uint8_t hash[NU_SHA256_LEN];
    char *body = NULL;
    size_t len = 0;
    int rc = NU_OK;

    mbedtls_pk_init(&keypk);
    mbedtls_x509_crt_init(&chain);
    mbedtls_x509_crt_init(&ca);

    if (key == NULL && bundle == NULL)
        key = default_key_pem;
    /* Given both, a checkpoint with a chain is checked against the bundle
     * and one without against the key: a log signed by the local key
     * before the CA existed and by the node SVID after it. */
    if (bundle != NULL && key != NULL && cp->cert_chain == NULL)
        bundle = NULL;
    if (bundle != NULL) {
        rc = nu__check_chain(cp, bundle, &pk, &chain, &ca, err);
        if (rc != NU_OK)
            goto cleanup;
    } else if (key == NULL) {
        rc = nu_err_set(err, NU_EINVAL, "audit: cannot check signatures: no "
                        "public key (pass --key PEM or --bundle PEM)");
        goto cleanup;
    } else if (mbedtls_pk_parse_public_key(&keypk, (const unsigned char *)key,
                                           strlen(key) + 1) != 0) {
        rc = nu_err_set(err, NU_EINVAL, "audit: cannot parse the public key: "
                        "expected a PEM public key");
        goto cleanup;
    }

    if (nu__audit_key_id(pk, body_id) != NU_OK ||
        strcmp(body_id, cp->key_id) != 0) {
        rc = nu_err_set(err, NU_EDENIED, "checkpoint signed by key %.16s..., "
                        "not the trusted key %.16s...", cp->key_id, body_id);
        goto cleanup;
    }

    body = nu__audit_checkpoint_body(cp->origin, cp->size, cp->root, cp->time,
                                     &len, err);
    if (body == NULL) {
        rc = NU_EDENIED;
        goto cleanup;
    }
    nu_sha256(body, len, hash);
    if (mbedtls_pk_verify(pk, MBEDTLS_MD_SHA256, hash, sizeof hash, cp->sig,
                          cp->sig_len) != 0)
        rc = nu_err_set(err, NU_EDENIED, "checkpoint signature is invalid");

cleanup:
    free(body);
    mbedtls_x509_crt_free(&ca);
    mbedtls_x509_crt_free(&chain);
    mbedtls_pk_free(&keypk);
    return rc;
}
