/*
 * identity_mtls.c - mTLS with SPIFFE peer verification (contract in mtls.h).
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <mbedtls/ecdsa.h>
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/oid.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_cache.h>

#include "identity_internal.h"
#include "nucleus/mtls.h"

struct nu_mtls_config {
    mbedtls_ssl_config conf;
    mbedtls_x509_crt own_chain;
    mbedtls_pk_context own_key;
    mbedtls_x509_crt roots;
    char trust_domain[NU_TRUST_DOMAIN_MAX + 1];
    int timeout_ms;
    nu_mtls_role_t role;

    /* Session resumption: the server's cache of recent sessions; the
     * client's last session, offered on its next handshake. */
    int resume;
    mbedtls_ssl_cache_context cache;
    pthread_mutex_t session_lock;
    mbedtls_ssl_session session;
    int have_session;
};

struct nu_mtls_conn {
    mbedtls_ssl_context ssl;
    const nu_mtls_config_t *cfg;
    int fd;
    nu_spiffeid_t peer;
    char reject[NU_ERR_MAX];        /* why the verify callback rejected */
    mbedtls_ecp_group *borrowed;    /* peer key group using nu__g_table */
    unsigned char offered_id[32];   /* client: the session id it offered */
    size_t offered_id_len;
    int resumed;
};

static const int nu__suites[] = {
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    0,
};

/* X25519 first: in mbedTLS 2.28 its key exchange costs about two thirds of
 * P-256's (1.06 against 1.63 ms of CPU for key generation plus the shared
 * secret on the benchmark machine).  P-256 must stay in the list, because
 * TLS 1.2 peers read it as the curves they accept for ECDSA certificates. */
static const mbedtls_ecp_group_id nu__curves[] = {
    MBEDTLS_ECP_DP_CURVE25519,
    MBEDTLS_ECP_DP_SECP256R1,
    MBEDTLS_ECP_DP_NONE,
};

/* ---- transport ---------------------------------------------------------- */

static int nu__bio_send(void *ctx, const unsigned char *buf, size_t len)
{
    nu_mtls_conn_t *c = ctx;

    for (;;) {
        ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL);
        if (n >= 0)
            return (int)n;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return MBEDTLS_ERR_SSL_WANT_WRITE;
        return MBEDTLS_ERR_NET_SEND_FAILED;
    }
}

static int nu__bio_recv(void *ctx, unsigned char *buf, size_t len)
{
    nu_mtls_conn_t *c = ctx;
    struct pollfd pfd = { .fd = c->fd, .events = POLLIN };

    for (;;) {
        int ready = poll(&pfd, 1, c->cfg->timeout_ms > 0 ? c->cfg->timeout_ms
                                                         : -1);
        ssize_t n;

        if (ready < 0 && errno == EINTR)
            continue;
        if (ready < 0)
            return MBEDTLS_ERR_NET_RECV_FAILED;
        if (ready == 0)
            return MBEDTLS_ERR_SSL_TIMEOUT;
        n = recv(c->fd, buf, len, 0);
        if (n >= 0)
            return (int)n;
        if (errno == EINTR)
            continue;
        if (errno == ECONNRESET)
            return MBEDTLS_ERR_NET_CONN_RESET;
        return MBEDTLS_ERR_NET_RECV_FAILED;
    }
}

/* ---- peer verification ---------------------------------------------------- */

/*
 * Each full handshake verifies one signature with the peer's leaf key (the
 * ServerKeyExchange on a client, the CertificateVerify on a server).
 * mbedTLS 2.28 would build the table of multiples of the P-256 generator
 * for that key's group first, about 0.33 ms of CPU on the benchmark
 * machine.  The table is the same for every P-256 group, so the leaf key's
 * group borrows one process-wide table, built once and only read after
 * that.  The borrowed pointer is cleared before mbedTLS frees the peer
 * certificate (nu__return_table), because mbedTLS would free it.
 */
static mbedtls_ecp_group nu__g_table;
static pthread_once_t nu__g_table_once = PTHREAD_ONCE_INIT;
static int nu__g_table_ok;

static void nu__build_g_table(void)
{
    mbedtls_ecp_point r;
    mbedtls_mpi one;

    mbedtls_ecp_group_init(&nu__g_table);
    mbedtls_ecp_point_init(&r);
    mbedtls_mpi_init(&one);
    nu__g_table_ok =
        mbedtls_ecp_group_load(&nu__g_table, MBEDTLS_ECP_DP_SECP256R1) == 0 &&
        mbedtls_mpi_lset(&one, 1) == 0 &&
        mbedtls_ecp_mul(&nu__g_table, &r, &one, &nu__g_table.G, nu__id_random,
                        NULL) == 0 &&
        nu__g_table.T != NULL;
    mbedtls_ecp_point_free(&r);
    mbedtls_mpi_free(&one);
}

/* Give the peer's P-256 leaf key the ECDSA type and the shared table.  Any
 * failure leaves the key as it was, which is only slower. */
static void nu__borrow_table(nu_mtls_conn_t *c, mbedtls_x509_crt *leaf)
{
    mbedtls_pk_context ecdsa;
    mbedtls_ecp_group *grp;

    pthread_once(&nu__g_table_once, nu__build_g_table);
    if (!nu__g_table_ok || c->borrowed != NULL ||
        mbedtls_pk_get_type(&leaf->pk) != MBEDTLS_PK_ECKEY ||
        mbedtls_pk_ec(leaf->pk)->grp.id != MBEDTLS_ECP_DP_SECP256R1)
        return;

    mbedtls_pk_init(&ecdsa);
    if (mbedtls_pk_setup(&ecdsa, mbedtls_pk_info_from_type(MBEDTLS_PK_ECDSA)) != 0 ||
        mbedtls_ecdsa_from_keypair(mbedtls_pk_ec(ecdsa),
                                   mbedtls_pk_ec(leaf->pk)) != 0) {
        mbedtls_pk_free(&ecdsa);
        return;
    }
    mbedtls_pk_free(&leaf->pk);
    leaf->pk = ecdsa;

    grp = &mbedtls_pk_ec(leaf->pk)->grp;
    grp->T = nu__g_table.T;
    grp->T_size = nu__g_table.T_size;
    c->borrowed = grp;
}

/* Detach the shared table before mbedTLS frees the peer certificate. */
static void nu__return_table(nu_mtls_conn_t *c)
{
    if (c->borrowed == NULL)
        return;
    c->borrowed->T = NULL;
    c->borrowed->T_size = 0;
    c->borrowed = NULL;
}

/* Called by mbedTLS for each certificate of the peer's path, from the trust
 * anchor (highest depth) down to the leaf (depth 0).  Returning 0 with a
 * flag set fails the handshake with that flag. */
static int nu__verify_peer(void *ctx, mbedtls_x509_crt *crt, int depth,
                           uint32_t *flags)
{
    nu_mtls_conn_t *c = ctx;
    nu_spiffeid_t id;
    nu_err_t err;

    if (depth > 0) {
        if (!crt->ca_istrue ||
            ((crt->ext_types & MBEDTLS_X509_EXT_KEY_USAGE) &&
             !(crt->key_usage & MBEDTLS_X509_KU_KEY_CERT_SIGN))) {
            snprintf(c->reject, sizeof c->reject, "signing certificate at "
                     "depth %d is not a CA with keyCertSign", depth);
            *flags |= MBEDTLS_X509_BADCERT_OTHER;
        }
        return 0;
    }

    /* A problem that mbedTLS found (no path to the bundle, expiry) is
     * reported first.  A signing certificate's problem was recorded at its
     * own depth. */
    if (c->reject[0] != '\0')
        return 0;
    if (*flags != 0) {
        snprintf(c->reject, sizeof c->reject, "%s",
                 nu__id_flag_reason(*flags));
    } else if (nu_svid_check_chain(crt, &id, &err) != NU_OK) {
        snprintf(c->reject, sizeof c->reject, "%s", err.msg);
        *flags |= MBEDTLS_X509_BADCERT_OTHER;
    } else if (!nu_spiffeid_member_of(&id, c->cfg->trust_domain)) {
        snprintf(c->reject, sizeof c->reject, "peer SPIFFE ID '%.200s' is not in "
                 "the expected trust domain '%.200s'", id.id,
                 c->cfg->trust_domain);
        *flags |= MBEDTLS_X509_BADCERT_OTHER;
    } else {
        nu__borrow_table(c, crt);
    }
    return 0;
}

/* ---- configuration ------------------------------------------------------- */

static int nu__load_material(nu_mtls_config_t *cfg, const char *cert_pem,
                             const char *key_pem, const char *bundle_pem,
                             const char *expected_td, nu_err_t *err)
{
    nu_spiffeid_t own;
    int rc;

    rc = nu_x509_parse_certs(cert_pem, strlen(cert_pem), &cfg->own_chain, err);
    if (rc == 0)
        rc = nu_err_set(err, NU_EPARSE, "mtls: our SVID holds no certificate");
    if (rc >= 0)
        rc = nu_svid_check_chain(&cfg->own_chain, &own, err);
    if (rc == NU_OK)
        rc = nu_x509_parse_key(key_pem, strlen(key_pem), &cfg->own_key, err);
    if (rc == NU_OK)
        rc = nu_svid_check_key(&cfg->own_chain, &cfg->own_key, err);
    if (rc == NU_OK && nu__id_prepare_key(&cfg->own_key) != 0)
        rc = nu_err_set(err, NU_ECRYPTO, "mtls: cannot load our SVID key");
    if (rc == NU_OK)
        rc = nu_x509_parse_certs(bundle_pem, strlen(bundle_pem), &cfg->roots,
                                 err);
    if (rc == 0)
        rc = nu_err_set(err, NU_EPARSE, "mtls: the trust bundle holds no "
                        "certificate");
    if (rc < 0)
        return rc;
    for (mbedtls_x509_crt *c = &cfg->roots; c != NULL; c = c->next)
        if (nu__id_prepare_key(&c->pk) != 0)
            return nu_err_set(err, NU_ECRYPTO, "mtls: cannot load the key of "
                              "a bundle certificate");

    if (expected_td == NULL)
        expected_td = own.trust_domain;
    return nu_spiffeid_parse_trust_domain(expected_td, cfg->trust_domain, err);
}

static int nu__setup_conf(nu_mtls_config_t *cfg, nu_mtls_role_t role,
                          nu_err_t *err)
{
    mbedtls_ssl_config *conf = &cfg->conf;
    int rc = mbedtls_ssl_config_defaults(conf, role == NU_MTLS_SERVER
                                         ? MBEDTLS_SSL_IS_SERVER
                                         : MBEDTLS_SSL_IS_CLIENT,
                                         MBEDTLS_SSL_TRANSPORT_STREAM,
                                         MBEDTLS_SSL_PRESET_DEFAULT);

    if (rc != 0)
        return nu__id_mbed_err(err, NU_ECRYPTO, rc, "mtls: cannot configure "
                               "TLS");
    mbedtls_ssl_conf_min_version(conf, MBEDTLS_SSL_MAJOR_VERSION_3,
                                 MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_max_version(conf, MBEDTLS_SSL_MAJOR_VERSION_3,
                                 MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_ciphersuites(conf, nu__suites);
    mbedtls_ssl_conf_curves(conf, nu__curves);
    mbedtls_ssl_conf_authmode(conf, MBEDTLS_SSL_VERIFY_REQUIRED);
    mbedtls_ssl_conf_rng(conf, nu__id_random, NULL);
    mbedtls_ssl_conf_ca_chain(conf, &cfg->roots, NULL);
    rc = mbedtls_ssl_conf_own_cert(conf, &cfg->own_chain, &cfg->own_key);
    if (rc != 0)
        return nu__id_mbed_err(err, NU_ECRYPTO, rc, "mtls: cannot use our "
                               "SVID");
    if (role == NU_MTLS_SERVER) {
        mbedtls_ssl_cache_set_timeout(&cfg->cache, NU_MTLS_SESSION_TTL);
        mbedtls_ssl_conf_session_cache(conf, &cfg->cache, mbedtls_ssl_cache_get,
                                       mbedtls_ssl_cache_set);
    }
    return NU_OK;
}

int nu_mtls_config_new(nu_mtls_role_t role, const char *cert_pem,
                       const char *key_pem, const char *bundle_pem,
                       const char *expected_td, int timeout_ms,
                       nu_mtls_config_t **out, nu_err_t *err)
{
    nu_mtls_config_t *cfg = calloc(1, sizeof *cfg);
    int rc;

    if (cfg == NULL)
        return nu_err_set(err, NU_ENOMEM, "mtls: out of memory");
    mbedtls_ssl_config_init(&cfg->conf);
    mbedtls_x509_crt_init(&cfg->own_chain);
    mbedtls_pk_init(&cfg->own_key);
    mbedtls_x509_crt_init(&cfg->roots);
    mbedtls_ssl_cache_init(&cfg->cache);
    mbedtls_ssl_session_init(&cfg->session);
    pthread_mutex_init(&cfg->session_lock, NULL);
    cfg->timeout_ms = timeout_ms;
    cfg->role = role;
    cfg->resume = 1;

    rc = nu__load_material(cfg, cert_pem, key_pem, bundle_pem, expected_td,
                           err);
    if (rc == NU_OK)
        rc = nu__setup_conf(cfg, role, err);
    if (rc != NU_OK) {
        nu_mtls_config_free(cfg);
        return rc;
    }
    *out = cfg;
    return NU_OK;
}

int nu_mtls_config_from_dir(nu_mtls_role_t role, const char *dir,
                            const char *expected_td, int timeout_ms,
                            nu_mtls_config_t **out, nu_err_t *err)
{
    char *cert = NULL, *key = NULL, *bundle = NULL;
    int rc = nu_svid_read_dir(dir, &cert, &key, &bundle, err);

    if (rc == NU_OK)
        rc = nu_mtls_config_new(role, cert, key, bundle, expected_td,
                                timeout_ms, out, err);
    if (key != NULL)
        mbedtls_platform_zeroize(key, strlen(key));
    free(cert);
    free(key);
    free(bundle);
    return rc;
}

void nu_mtls_config_free(nu_mtls_config_t *cfg)
{
    if (cfg == NULL)
        return;
    mbedtls_ssl_config_free(&cfg->conf);
    mbedtls_x509_crt_free(&cfg->own_chain);
    mbedtls_pk_free(&cfg->own_key);
    mbedtls_x509_crt_free(&cfg->roots);
    mbedtls_ssl_cache_free(&cfg->cache);
    mbedtls_ssl_session_free(&cfg->session);
    pthread_mutex_destroy(&cfg->session_lock);
    free(cfg);
}

void nu_mtls_config_set_resumption(nu_mtls_config_t *cfg, int enabled)
{
    cfg->resume = enabled;
    if (cfg->role == NU_MTLS_SERVER && !enabled)
        mbedtls_ssl_conf_session_cache(&cfg->conf, NULL, NULL, NULL);
    if (cfg->role == NU_MTLS_SERVER && enabled)
        mbedtls_ssl_conf_session_cache(&cfg->conf, &cfg->cache,
                                       mbedtls_ssl_cache_get,
                                       mbedtls_ssl_cache_set);
}

/* ---- connections ------------------------------------------------------------ */

/* mbedTLS sends each handshake message in its own write, so Nagle's
 * algorithm and delayed ACKs would add tens of milliseconds per handshake
 * on TCP.  Other socket types reject the option, which is harmless. */
static void nu__no_delay(int fd)
{
    int one = 1;

    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static int nu__handshake_error(nu_mtls_conn_t *c, int rc, nu_err_t *err)
{
    uint32_t flags = mbedtls_ssl_get_verify_result(&c->ssl);

    if (c->reject[0] != '\0')
        return nu_err_set(err, NU_EDENIED, "mtls: peer certificate rejected: "
                          "%s", c->reject);
    if (rc == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED && flags != 0 &&
        flags != (uint32_t)-1)
        return nu_err_set(err, NU_EDENIED, "mtls: peer certificate rejected: "
                          "%s", nu__id_flag_reason(flags));
    if (rc == MBEDTLS_ERR_SSL_TIMEOUT)
        return nu_err_set(err, NU_ETIMEDOUT, "mtls: handshake timed out after "
                          "%d ms", c->cfg->timeout_ms);
    return nu__id_mbed_err(err, NU_EPROTO, rc, "mtls: handshake failed");
}

/* Client: offer the last session of this configuration for resumption. */
static void nu__offer_session(nu_mtls_conn_t *c)
{
    nu_mtls_config_t *cfg = (nu_mtls_config_t *)c->cfg;

    if (cfg->role != NU_MTLS_CLIENT || !cfg->resume)
        return;
    pthread_mutex_lock(&cfg->session_lock);
    if (cfg->have_session && cfg->session.id_len <= sizeof c->offered_id &&
        mbedtls_ssl_set_session(&c->ssl, &cfg->session) == 0) {
        memcpy(c->offered_id, cfg->session.id, cfg->session.id_len);
        c->offered_id_len = cfg->session.id_len;
    }
    pthread_mutex_unlock(&cfg->session_lock);
}

/* Client: keep the session of a successful handshake for the next one. */
static void nu__save_session(nu_mtls_conn_t *c)
{
    nu_mtls_config_t *cfg = (nu_mtls_config_t *)c->cfg;

    if (cfg->role != NU_MTLS_CLIENT || !cfg->resume)
        return;
    pthread_mutex_lock(&cfg->session_lock);
    mbedtls_ssl_session_free(&cfg->session);
    mbedtls_ssl_session_init(&cfg->session);
    cfg->have_session = mbedtls_ssl_get_session(&c->ssl, &cfg->session) == 0;
    pthread_mutex_unlock(&cfg->session_lock);
}

/* Apply the SPIFFE rules, the trust domain and the validity dates to the
 * peer certificate of the session, and take its ID. */
static int nu__check_session_peer(nu_mtls_conn_t *c,
                                  const mbedtls_x509_crt *peer, nu_err_t *err)
{
    int rc = nu_svid_check_chain(peer, &c->peer, err);

    if (rc != NU_OK)
        return rc;
    if (!nu_spiffeid_member_of(&c->peer, c->cfg->trust_domain))
        return nu_err_set(err, NU_EDENIED, "mtls: peer SPIFFE ID '%s' is not "
                          "in the expected trust domain '%s'", c->peer.id,
                          c->cfg->trust_domain);
    if (mbedtls_x509_time_is_past(&peer->valid_to) ||
        mbedtls_x509_time_is_future(&peer->valid_from))
        return nu_err_set(err, NU_EDENIED, "mtls: peer certificate rejected: "
                          "certificate has expired or is not yet valid");
    return NU_OK;
}

int nu_mtls_handshake(const nu_mtls_config_t *cfg, int fd,
                      nu_mtls_conn_t **out, nu_err_t *err)
{
    nu_mtls_conn_t *c = calloc(1, sizeof *c);
    const mbedtls_x509_crt *peer;
    int rc;

    if (c == NULL)
        return nu_err_set(err, NU_ENOMEM, "mtls: out of memory");
    c->cfg = cfg;
    c->fd = fd;
    nu__no_delay(fd);
    mbedtls_ssl_init(&c->ssl);
    rc = mbedtls_ssl_setup(&c->ssl, &cfg->conf);
    if (rc != 0) {
        rc = nu__id_mbed_err(err, NU_ECRYPTO, rc, "mtls: cannot set up TLS");
        goto fail;
    }
    mbedtls_ssl_set_verify(&c->ssl, nu__verify_peer, c);
    mbedtls_ssl_set_bio(&c->ssl, c, nu__bio_send, nu__bio_recv, NULL);
    nu__offer_session(c);

    do
        rc = mbedtls_ssl_handshake(&c->ssl);
    while (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE);
    if (rc != 0) {
        rc = nu__handshake_error(c, rc, err);
        goto fail;
    }

    /* The callback checked a new peer chain, but a resumed session skips
     * it.  So the session's certificate is checked again here, without the
     * signatures, which were verified when the session was made. */
    peer = mbedtls_ssl_get_peer_cert(&c->ssl);
    if (peer == NULL) {
        rc = nu_err_set(err, NU_EDENIED, "mtls: peer sent no certificate");
        goto fail;
    }
    /* A server that accepts the offered session echoes its id. */
    c->resumed = c->offered_id_len > 0 &&
                 c->ssl.session->id_len == c->offered_id_len &&
                 memcmp(c->ssl.session->id, c->offered_id,
                        c->offered_id_len) == 0;
    rc = nu__check_session_peer(c, peer, err);
    if (rc != NU_OK)
        goto fail;
    nu__save_session(c);
    *out = c;
    return NU_OK;

fail:
    nu__return_table(c);
    mbedtls_ssl_free(&c->ssl);
    free(c);
    return rc;
}

const nu_spiffeid_t *nu_mtls_peer_id(const nu_mtls_conn_t *conn)
{
    return &conn->peer;
}

int nu_mtls_resumed(const nu_mtls_conn_t *conn)
{
    return conn->resumed;
}

const char *nu_mtls_ciphersuite(const nu_mtls_conn_t *conn)
{
    return mbedtls_ssl_get_ciphersuite(&conn->ssl);
}

ssize_t nu_mtls_read(nu_mtls_conn_t *conn, void *buf, size_t len,
                     nu_err_t *err)
{
    int rc;

    do
        rc = mbedtls_ssl_read(&conn->ssl, buf, len);
    while (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE);
    if (rc >= 0)
        return rc;
    if (rc == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY)
        return 0;
    if (rc == MBEDTLS_ERR_SSL_TIMEOUT)
        return nu_err_set(err, NU_ETIMEDOUT, "mtls: read timed out");
    return nu__id_mbed_err(err, NU_EIO, rc, "mtls: cannot read from %s",
                           conn->peer.id);
}

int nu_mtls_write(nu_mtls_conn_t *conn, const void *buf, size_t len,
                  nu_err_t *err)
{
    const unsigned char *p = buf;

    while (len > 0) {
        int rc = mbedtls_ssl_write(&conn->ssl, p, len);
        if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE)
            continue;
        if (rc < 0)
            return nu__id_mbed_err(err, NU_EIO, rc, "mtls: cannot write to %s",
                                   conn->peer.id);
        p += rc;
        len -= (size_t)rc;
    }
    return NU_OK;
}

void nu_mtls_close(nu_mtls_conn_t *conn)
{
    if (conn == NULL)
        return;
    (void)mbedtls_ssl_close_notify(&conn->ssl);
    nu__return_table(conn);
    mbedtls_ssl_free(&conn->ssl);
    free(conn);
}
