/*
 * node.c - the node's X.509-SVID, used to sign audit checkpoints.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/x509_crt.h>

#include "nucleus/home.h"
#include "nucleus/identity.h"
#include "nucleus/log.h"
#include "nucleus/node.h"

/* Seconds the installed node SVID at dir remains valid (<= 0 when it is
 * missing, unreadable or expired). */
static int64_t nu__remaining(const char *dir)
{
    char *cert = NULL, *key = NULL;
    mbedtls_x509_crt crt;
    int64_t left = 0;
    nu_err_t err;

    if (nu_svid_read_dir(dir, &cert, &key, NULL, &err) != NU_OK)
        return 0;
    mbedtls_x509_crt_init(&crt);
    if (mbedtls_x509_crt_parse(&crt, (const unsigned char *)cert,
                               strlen(cert) + 1) == 0) {
        struct tm tm = {
            .tm_year = crt.valid_to.year - 1900, .tm_mon = crt.valid_to.mon - 1,
            .tm_mday = crt.valid_to.day, .tm_hour = crt.valid_to.hour,
            .tm_min = crt.valid_to.min, .tm_sec = crt.valid_to.sec,
        };
        left = (int64_t)timegm(&tm) - (int64_t)time(NULL);
    }
    mbedtls_x509_crt_free(&crt);
    free(cert);
    if (key != NULL)
        explicit_bzero(key, strlen(key));
    free(key);
    return left;
}

static int nu__issue(nu_ca_t *ca, const char *dir, nu_err_t *err)
{
    char host[HOST_NAME_MAX + 1] = "node", id[512];
    nu_svid_t svid = { 0 };
    int rc;

    if (gethostname(host, sizeof host) != 0 || host[0] == '\0')
        snprintf(host, sizeof host, "node");
    /* A host name may hold characters a SPIFFE path cannot. */
    for (char *p = host; *p != '\0'; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (*p >= '0' && *p <= '9') || *p == '.' || *p == '-' || *p == '_'))
            *p = '-';
    snprintf(id, sizeof id, "spiffe://%s/node/%s", nu_ca_trust_domain(ca), host);

    rc = nu_ca_issue(ca, id, NU_NODE_SVID_TTL, &svid, err);
    if (rc == NU_OK)
        rc = nu_svid_install(dir, &svid, err);
    if (rc == NU_OK)
        nu_log(NU_LOG_INFO, "node", "issued node SVID %s", id);
    nu_svid_free(&svid);
    return rc;
}

int nu_node_signer(const char *home, nu_audit_signer_t *signer, nu_err_t *err)
{
    char ca_dir[PATH_MAX], node_dir[PATH_MAX], svid[PATH_MAX];
    char key_path[PATH_MAX + 16], chain_path[PATH_MAX + 16];
    nu_ca_t *ca = NULL;
    int rc;

    snprintf(ca_dir, sizeof ca_dir, "%s/ca", home);
    if (access(ca_dir, F_OK) != 0)
        return NU_ENOENT;
    snprintf(node_dir, sizeof node_dir, "%s/node", home);
    snprintf(svid, sizeof svid, "%s/node/svid", home);

    if (nu__remaining(svid) < NU_NODE_SVID_TTL / 2) {
        rc = nu_ca_load(ca_dir, &ca, err);
        if (rc == NU_OK)
            rc = nu_mkdir_p(node_dir, err);
        if (rc == NU_OK)
            rc = nu__issue(ca, svid, err);
        nu_ca_free(ca);
        if (rc != NU_OK)
            return rc;
    }

    snprintf(key_path, sizeof key_path, "%s/svid.key", svid);
    snprintf(chain_path, sizeof chain_path, "%s/svid.pem", svid);
    return nu_audit_file_signer(key_path, chain_path, signer, err);
}

char *nu_node_bundle(const char *home)
{
    char dir[PATH_MAX];
    nu_ca_t *ca;
    nu_err_t err;
    char *pem;

    snprintf(dir, sizeof dir, "%s/ca", home);
    if (access(dir, F_OK) != 0 || nu_ca_load(dir, &ca, &err) != NU_OK)
        return NULL;
    pem = strdup(nu_ca_bundle_pem(ca));
    nu_ca_free(ca);
    return pem;
}
