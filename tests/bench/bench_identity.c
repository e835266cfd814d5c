/*
 * bench_identity.c - identity throughput beside floors measured in the same
 * run:
 *   issuance    nu_ca_issue (new key, certificate, PEM and PKCS#8) against
 *               bare mbedTLS P-256 key generation plus one ECDSA signature;
 *   validation  PEM parsing plus nu_svid_verify against one bare ECDSA
 *               verification;
 *   mTLS        handshake latency over loopback TCP, our client against our
 *               server, beside 'openssl s_time' against the same server:
 *               full handshakes (s_time -new) and resumed sessions
 *               (s_time -reuse).
 * 'openssl speed ecdsap256' is printed for reference.
 *
 *   bench_identity [SECONDS]     (default 4 seconds per measurement; the
 *                                rate pairs alternate in 5 rounds)
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecdsa.h>
#include <mbedtls/entropy.h>
#include <mbedtls/sha256.h>

#include "nucleus/identity.h"
#include "nucleus/mtls.h"

#define POD "spiffe://nucleus.local/ns/bench/pod/p1"

static double g_seconds = 4.0;
static mbedtls_ctr_drbg_context g_drbg;

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU seconds of this thread: rates count CPU time, not wall time, so that
 * other processes on the machine do not skew them. */
static double cpu_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Run op until g_seconds of CPU time have passed; returns operations per
 * CPU second. */
static double rate(int (*op)(void *), void *arg)
{
    double start = cpu_s(), elapsed;
    long n = 0;

    do {
        if (op(arg) != 0) {
            fprintf(stderr, "bench_identity: operation failed\n");
            exit(1);
        }
        n++;
        elapsed = cpu_s() - start;
    } while (elapsed < g_seconds);
    return (double)n / elapsed;
}

#define ROUNDS 5

/* Measure floor and ours in ROUNDS alternating rounds of g_seconds / ROUNDS
 * each, so that load from other processes hits both alike.  Reports the
 * median rate of each. */
static int cmp_double(const void *a, const void *b);

static void paired_rates(int (*floor_op)(void *), void *floor_arg,
                         int (*our_op)(void *), void *our_arg,
                         double *floor_rate, double *our_rate)
{
    double floors[ROUNDS], ours[ROUNDS], total = g_seconds;

    g_seconds = total / ROUNDS;
    for (int i = 0; i < ROUNDS; i++) {
        floors[i] = rate(floor_op, floor_arg);
        ours[i] = rate(our_op, our_arg);
    }
    g_seconds = total;
    qsort(floors, ROUNDS, sizeof floors[0], cmp_double);
    qsort(ours, ROUNDS, sizeof ours[0], cmp_double);
    *floor_rate = floors[ROUNDS / 2];
    *our_rate = ours[ROUNDS / 2];
}

/* ---- floors ------------------------------------------------------------------ */

static int floor_keygen_sign(void *arg)
{
    mbedtls_ecp_keypair key;
    unsigned char hash[32] = { 1 };
    mbedtls_mpi r, s;
    int rc;

    (void)arg;
    mbedtls_ecp_keypair_init(&key);
    mbedtls_mpi_init(&r);
    mbedtls_mpi_init(&s);
    rc = mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, &key,
                             mbedtls_ctr_drbg_random, &g_drbg);
    if (rc == 0)
        rc = mbedtls_ecdsa_sign(&key.grp, &r, &s, &key.d, hash, sizeof hash,
                                mbedtls_ctr_drbg_random, &g_drbg);
    mbedtls_mpi_free(&r);
    mbedtls_mpi_free(&s);
    mbedtls_ecp_keypair_free(&key);
    return rc;
}

typedef struct verify_floor {
    mbedtls_ecp_keypair key;
    unsigned char hash[32];
    mbedtls_mpi r, s;
} verify_floor_t;

static int floor_verify(void *arg)
{
    verify_floor_t *v = arg;

    return mbedtls_ecdsa_verify(&v->key.grp, v->hash, sizeof v->hash,
                                &v->key.Q, &v->r, &v->s);
}

/* ---- ours -------------------------------------------------------------------- */

static int ours_issue(void *arg)
{
    nu_svid_t svid;
    int rc = nu_ca_issue(arg, POD, 0, &svid, NULL);

    nu_svid_free(&svid);
    return rc;
}

typedef struct verify_ours {
    const char *cert_pem;
    nu_bundle_set_t *bundles;
} verify_ours_t;

static int ours_verify(void *arg)
{
    verify_ours_t *v = arg;
    mbedtls_x509_crt chain;
    nu_spiffeid_t id;
    int rc;

    mbedtls_x509_crt_init(&chain);
    rc = nu_x509_parse_certs(v->cert_pem, strlen(v->cert_pem), &chain, NULL);
    rc = rc == 1 ? nu_svid_verify(&chain, v->bundles, "nucleus.local", &id,
                                  NULL) : -1;
    mbedtls_x509_crt_free(&chain);
    return rc;
}

/* ---- mTLS ---------------------------------------------------------------------- */

typedef struct server {
    nu_mtls_config_t *cfg;
    int lfd;
    int port;
    long handshakes;
} server_t;

static void *server_main(void *arg)
{
    server_t *srv = arg;

    for (;;) {
        nu_mtls_conn_t *conn = NULL;
        int fd = accept4(srv->lfd, NULL, NULL, SOCK_CLOEXEC);

        if (fd < 0)
            return NULL;            /* the listener was shut down */
        if (nu_mtls_handshake(srv->cfg, fd, &conn, NULL) == NU_OK) {
            srv->handshakes++;
            nu_mtls_close(conn);
        }
        close(fd);
    }
}

static int start_server(server_t *srv)
{
    struct sockaddr_in addr = { .sin_family = AF_INET,
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof addr;
    pthread_t thread;

    srv->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (srv->lfd < 0 || bind(srv->lfd, (struct sockaddr *)&addr, sizeof addr) != 0 ||
        listen(srv->lfd, 128) != 0 ||
        getsockname(srv->lfd, (struct sockaddr *)&addr, &len) != 0)
        return -1;
    srv->port = ntohs(addr.sin_port);
    pthread_create(&thread, NULL, server_main, srv);
    pthread_detach(thread);
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* Median handshake time in ms of our client against the server; *cpu_ms
 * gets the CPU time per handshake of both sides (this process runs both),
 * which load from other processes does not inflate. */
static double our_handshakes(nu_mtls_config_t *client, int port, int *count,
                             double *cpu_ms)
{
    struct timespec c0, c1;
    struct sockaddr_in addr = { .sin_family = AF_INET,
                                .sin_port = htons((uint16_t)port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    double *ms = malloc(sizeof(double) * 100000), start = now_s(), median;
    int n = 0, one = 1;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
    while (now_s() - start < g_seconds && n < 100000) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        nu_mtls_conn_t *conn = NULL;
        double t0 = now_s();
        nu_err_t err;

        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0 ||
            nu_mtls_handshake(client, fd, &conn, &err) != NU_OK) {
            fprintf(stderr, "bench_identity: handshake failed: %s\n", err.msg);
            exit(1);
        }
        ms[n++] = (now_s() - t0) * 1e3;
        nu_mtls_close(conn);
        close(fd);
    }
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
    *cpu_ms = ((double)(c1.tv_sec - c0.tv_sec) * 1e3 +
               (double)(c1.tv_nsec - c0.tv_nsec) / 1e6) / n;
    qsort(ms, (size_t)n, sizeof *ms, cmp_double);
    median = ms[n / 2];
    free(ms);
    *count = n;
    return median;
}

/* Run openssl s_time with a new TLS 1.2 session per connection (mode
 * "-new") or one reused session ("-reuse").  Returns the mean wall-clock
 * ms per connection, or -1. */
static double openssl_s_time(int port, const char *dir, const char *mode)
{
    char cmd[1024], line[512];
    double per_ms = -1;
    long conns;
    double secs;
    FILE *p;

    snprintf(cmd, sizeof cmd, "openssl s_time -connect 127.0.0.1:%d %s "
             "-tls1_2 -time %d -cert %s/svid.pem -key %s/svid.key "
             "-CAfile %s/bundle.pem 2>&1", port, mode, (int)(g_seconds + 0.5),
             dir, dir, dir);
    p = popen(cmd, "r");
    if (p == NULL)
        return -1;
    while (fgets(line, sizeof line, p) != NULL)
        if (per_ms < 0 && strstr(line, "real seconds") != NULL &&
            sscanf(line, "%ld connections in %lf", &conns, &secs) == 2 &&
            conns > 0)
            per_ms = secs * 1e3 / (double)conns;
    pclose(p);
    return per_ms;
}

static void openssl_speed(void)
{
    char line[512];
    FILE *p = popen("openssl speed -seconds 2 ecdsap256 2>/dev/null", "r");

    if (p == NULL)
        return;
    while (fgets(line, sizeof line, p) != NULL)
        if (strstr(line, "sign") != NULL || strstr(line, "nistp256") != NULL)
            printf("  openssl speed: %s", line);
    pclose(p);
}

int main(int argc, char **argv)
{
    char dir[] = "/tmp/nu-bench-identity-XXXXXX", path[128], cmd[128];
    mbedtls_entropy_context entropy;
    verify_floor_t vf;
    verify_ours_t vo;
    server_t srv = { 0 };
    nu_mtls_config_t *client = NULL;
    nu_ca_t *ca = NULL;
    nu_svid_t svid;
    nu_err_t err;
    double floor_issue, our_issue, floor_ver, our_ver, median, s_time_ms, cpu_ms;
    int count;

    if (argc > 1)
        g_seconds = atof(argv[1]);
    if (mkdtemp(dir) == NULL)
        return 1;
    snprintf(path, sizeof path, "%s/ca", dir);
    if (nu_ca_create(path, NULL, 0, &err) != NU_OK ||
        nu_ca_load(path, &ca, &err) != NU_OK) {
        fprintf(stderr, "bench_identity: %s\n", err.msg);
        return 1;
    }
    mbedtls_entropy_init(&entropy);
    mbedtls_ctr_drbg_init(&g_drbg);
    mbedtls_ctr_drbg_seed(&g_drbg, mbedtls_entropy_func, &entropy, NULL, 0);

    printf("identity benchmark (%.0f s per measurement)\n", g_seconds);
    {
        double load[3];
        if (getloadavg(load, 3) == 3)
            printf("  load average at start: %.2f\n", load[0]);
    }

    /* Issuance. */
    paired_rates(floor_keygen_sign, NULL, ours_issue, ca, &floor_issue,
                 &our_issue);
    printf("  issuance:   %8.0f SVIDs/s   floor (keygen + ECDSA sign) %8.0f/s"
           "   ratio %.2f\n", our_issue, floor_issue, our_issue / floor_issue);

    /* Validation. */
    mbedtls_ecp_keypair_init(&vf.key);
    mbedtls_mpi_init(&vf.r);
    mbedtls_mpi_init(&vf.s);
    memset(vf.hash, 7, sizeof vf.hash);
    mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, &vf.key,
                        mbedtls_ctr_drbg_random, &g_drbg);
    mbedtls_ecdsa_sign(&vf.key.grp, &vf.r, &vf.s, &vf.key.d, vf.hash, 32,
                       mbedtls_ctr_drbg_random, &g_drbg);
    nu_ca_issue(ca, POD, 0, &svid, NULL);
    vo.cert_pem = svid.cert_pem;
    vo.bundles = nu_bundle_set_new();
    nu_bundle_set_add_pem(vo.bundles, NULL, nu_ca_bundle_pem(ca),
                          strlen(nu_ca_bundle_pem(ca)), NULL);
    paired_rates(floor_verify, &vf, ours_verify, &vo, &floor_ver, &our_ver);
    printf("  validation: %8.0f SVIDs/s   floor (ECDSA verify)        %8.0f/s"
           "   ratio %.2f\n", our_ver, floor_ver, our_ver / floor_ver);
    openssl_speed();

    /* mTLS handshakes. */
    snprintf(path, sizeof path, "%s/server", dir);
    nu_ca_issue(ca, "spiffe://nucleus.local/ns/bench/pod/server", 0, &svid, NULL);
    nu_svid_write_dir(path, &svid, NULL);
    nu_svid_free(&svid);
    snprintf(path, sizeof path, "%s/client", dir);
    nu_ca_issue(ca, "spiffe://nucleus.local/ns/bench/pod/client", 0, &svid, NULL);
    nu_svid_write_dir(path, &svid, NULL);
    nu_svid_free(&svid);

    snprintf(path, sizeof path, "%s/server", dir);
    if (nu_mtls_config_from_dir(NU_MTLS_SERVER, path, NULL, 5000, &srv.cfg,
                                &err) != NU_OK ||
        start_server(&srv) != 0) {
        fprintf(stderr, "bench_identity: cannot start the server\n");
        return 1;
    }
    snprintf(path, sizeof path, "%s/client", dir);
    nu_mtls_config_from_dir(NU_MTLS_CLIENT, path, NULL, 5000, &client, &err);
    nu_mtls_config_set_resumption(client, 0);
    median = our_handshakes(client, srv.port, &count, &cpu_ms);
    s_time_ms = openssl_s_time(srv.port, path, "-new");
    printf("  mTLS full:    median %6.2f ms over %5d handshakes (our client,"
           " %.2f CPU ms for both sides)   openssl s_time -new   %6.2f "
           "ms/connection (same server)\n", median, count, cpu_ms, s_time_ms);
    nu_mtls_config_free(client);

    nu_mtls_config_from_dir(NU_MTLS_CLIENT, path, NULL, 5000, &client, &err);
    median = our_handshakes(client, srv.port, &count, &cpu_ms);
    s_time_ms = openssl_s_time(srv.port, path, "-reuse");
    printf("  mTLS resumed: median %6.2f ms over %5d handshakes (our client,"
           " %.2f CPU ms for both sides)   openssl s_time -reuse %6.2f "
           "ms/connection (same server)\n", median, count, cpu_ms, s_time_ms);

    shutdown(srv.lfd, SHUT_RDWR);
    close(srv.lfd);
    nu_mtls_config_free(client);
    nu_bundle_set_free(vo.bundles);
    nu_ca_free(ca);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : 1;
}
