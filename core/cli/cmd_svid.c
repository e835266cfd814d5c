/*
 * cmd_svid.c - nucleus svid: issue and verify X.509-SVIDs and JWT-SVIDs.
 *
 *   nucleus svid issue --id SPIFFE_ID [--ttl SECONDS] --out DIR
 *   nucleus svid verify CERT.pem --bundle BUNDLE.pem
 *                       [--trust-domain TD | --id SPIFFE_ID] [--key KEY.pem]
 *   nucleus svid jwt --id SPIFFE_ID --aud AUD [--aud AUD...] [--ttl SECONDS]
 *   nucleus svid jwt-verify TOKEN --aud AUD [--bundle BUNDLE.json]
 *                       [--trust-domain TD]
 * Every action accepts --home DIR.  verify and jwt-verify print
 * "ok: <spiffe id>" (exit 0) or "invalid: <reason>" (exit 1).
 *
 * The hidden action "mtls-test" (at the end of this file) drives our mTLS
 * client and server for the interoperability tests and the benchmark.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "cli/commands.h"
#include "nucleus/home.h"
#include "nucleus/identity.h"
#include "nucleus/mtls.h"

static void nu__svid_usage(FILE *out)
{
    fprintf(out,
        "usage: nucleus svid issue --id SPIFFE_ID [--ttl SECONDS] --out DIR\n"
        "       nucleus svid verify CERT.pem --bundle BUNDLE.pem\n"
        "                  [--trust-domain TD | --id SPIFFE_ID] [--key KEY.pem]\n"
        "       nucleus svid jwt --id SPIFFE_ID --aud AUD [--aud AUD...] [--ttl SECONDS]\n"
        "       nucleus svid jwt-verify TOKEN --aud AUD [--bundle BUNDLE.json]\n"
        "                  [--trust-domain TD]\n"
        "\n"
        "  issue         write svid.pem (leaf, then chain), svid.key and bundle.pem\n"
        "                into DIR, signed by the CA of 'nucleus ca init'\n"
        "  verify        check an X.509-SVID against a PEM trust bundle\n"
        "  jwt           print a JWT-SVID (ES256) for one or more audiences\n"
        "  jwt-verify    check a JWT-SVID against the SPIFFE bundle JSON\n"
        "                (default: the local CA's)\n"
        "  --ttl         lifetime in seconds (default %d)\n"
        "  --home        state directory (overrides NUCLEUS_HOME)\n"
        "\n"
        "verify and jwt-verify print 'ok: <spiffe id>' (exit 0) or\n"
        "'invalid: <reason>' (exit 1).\n", NU_SVID_TTL_DEFAULT);
}

enum { NU__MAX_AUD = 16 };

typedef struct nu__svid_opts {
    const char *home, *id, *out, *bundle, *trust_domain, *key;
    const char *aud[NU__MAX_AUD];
    size_t n_aud;
    int64_t ttl;
    const char *arg;            /* the positional CERT.pem or TOKEN */
} nu__svid_opts_t;

static int nu__parse_ttl(const char *text, int64_t *out)
{
    char *end;
    long long v;

    errno = 0;
    v = strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || v <= 0) {
        fprintf(stderr, "nucleus svid: invalid --ttl '%s' (expected a "
                "positive number of seconds)\n", text);
        return -1;
    }
    *out = v;
    return 0;
}

static int nu__svid_parse(int argc, char **argv, nu__svid_opts_t *o)
{
    static const struct option longopts[] = {
        { "home", required_argument, NULL, 'H' },
        { "id", required_argument, NULL, 'i' },
        { "ttl", required_argument, NULL, 'T' },
        { "out", required_argument, NULL, 'o' },
        { "bundle", required_argument, NULL, 'b' },
        { "trust-domain", required_argument, NULL, 't' },
        { "key", required_argument, NULL, 'k' },
        { "aud", required_argument, NULL, 'a' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int c;

    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'H': o->home = optarg; break;
        case 'i': o->id = optarg; break;
        case 'o': o->out = optarg; break;
        case 'b': o->bundle = optarg; break;
        case 't': o->trust_domain = optarg; break;
        case 'k': o->key = optarg; break;
        case 'T':
            if (nu__parse_ttl(optarg, &o->ttl) != 0)
                return NU_EXIT_USAGE;
            break;
        case 'a':
            if (o->n_aud == NU__MAX_AUD) {
                fprintf(stderr, "nucleus svid: too many --aud (at most %d)\n",
                        NU__MAX_AUD);
                return NU_EXIT_USAGE;
            }
            o->aud[o->n_aud++] = optarg;
            break;
        case 'h': nu__svid_usage(stdout); exit(NU_EXIT_OK);
        default:
            fprintf(stderr, "nucleus svid: invalid option '%s' (run 'nucleus "
                    "svid --help')\n", argv[optind - 1]);
            return NU_EXIT_USAGE;
        }
    }
    if (optind < argc)
        o->arg = argv[optind++];
    if (optind < argc) {
        fprintf(stderr, "nucleus svid: unexpected argument '%s'\n",
                argv[optind]);
        return NU_EXIT_USAGE;
    }
    return 0;
}

/* Print a usage error naming the missing or misplaced option. */
static int nu__usage_error(const char *action, const char *what)
{
    fprintf(stderr, "nucleus svid %s: %s (run 'nucleus svid --help')\n",
            action, what);
    return NU_EXIT_USAGE;
}

static int nu__fail(const nu_err_t *err)
{
    fprintf(stderr, "nucleus: %s\n", err->msg);
    return NU_EXIT_FAIL;
}

static int nu__invalid(const char *reason)
{
    printf("invalid: %s\n", reason);
    return NU_EXIT_FAIL;
}

static int nu__load_ca(const char *home, nu_ca_t **ca, nu_err_t *err)
{
    char dir[4096];
    int rc = nu_home_path(home, "ca", dir, sizeof dir, err);

    return rc == NU_OK ? nu_ca_load(dir, ca, err) : rc;
}

/* ---- issue ------------------------------------------------------------------ */

static int nu__svid_issue(const nu__svid_opts_t *o)
{
    nu_svid_t svid;
    nu_ca_t *ca = NULL;
    nu_err_t err;
    char when[32];
    struct tm tm;

    if (o->id == NULL || o->out == NULL)
        return nu__usage_error("issue", "--id and --out are required");
    if (o->arg != NULL || o->bundle || o->key || o->trust_domain || o->n_aud)
        return nu__usage_error("issue", "only --id, --ttl, --out and --home "
                               "apply");
    if (nu__load_ca(o->home, &ca, &err) != NU_OK)
        return nu__fail(&err);
    if (nu_ca_issue(ca, o->id, o->ttl, &svid, &err) != NU_OK ||
        nu_svid_write_dir(o->out, &svid, &err) != NU_OK) {
        nu_svid_free(&svid);
        nu_ca_free(ca);
        return nu__fail(&err);
    }
    gmtime_r(&svid.not_after, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    printf("issued %s, valid until %s, in %s\n", svid.id.id, when, o->out);
    nu_svid_free(&svid);
    nu_ca_free(ca);
    return NU_EXIT_OK;
}

/* ---- verify ----------------------------------------------------------------- */

/* Load the bundle file into a set keyed by td (NULL: derive it). */
static int nu__load_bundle(const char *path, const char *td,
                           nu_bundle_set_t **out, nu_err_t *err)
{
    nu_bundle_set_t *set = nu_bundle_set_new();
    char *text = NULL;
    size_t len = 0;
    int rc = set != NULL ? nu_identity_read_file(path, &text, &len, err)
                         : nu_err_set(err, NU_ENOMEM, "svid: out of memory");

    if (rc == NU_OK)
        rc = nu_bundle_set_add_pem(set, td, text, len, err);
    if (rc == 0)
        rc = nu_err_set(err, NU_EPARSE, "svid: bundle '%s' holds no "
                        "certificate", path);
    free(text);
    if (rc < 0) {
        nu_bundle_set_free(set);
        return rc;
    }
    *out = set;
    return NU_OK;
}

static int nu__check_key_file(const char *path, mbedtls_x509_crt *leaf,
                              nu_err_t *err)
{
    mbedtls_pk_context key;
    char *text = NULL;
    size_t len = 0;
    int rc = nu_identity_read_file(path, &text, &len, err);

    mbedtls_pk_init(&key);
    if (rc == NU_OK)
        rc = nu_x509_parse_key(text, len, &key, err);
    if (rc == NU_OK)
        rc = nu_svid_check_key(leaf, &key, err);
    if (text != NULL)
        memset(text, 0, len);
    free(text);
    mbedtls_pk_free(&key);
    return rc;
}

static int nu__svid_verify(const nu__svid_opts_t *o)
{
    char td[NU_TRUST_DOMAIN_MAX + 1];
    const char *expected_td = NULL;
    nu_bundle_set_t *bundles = NULL;
    mbedtls_x509_crt chain;
    nu_spiffeid_t want, got;
    char *text = NULL;
    size_t len = 0;
    nu_err_t err;
    int rc, exit_code = NU_EXIT_FAIL;

    if (o->arg == NULL || o->bundle == NULL)
        return nu__usage_error("verify", "CERT.pem and --bundle are required");
    if (o->id != NULL && o->trust_domain != NULL)
        return nu__usage_error("verify", "pass --trust-domain or --id, not "
                               "both");
    if (o->out || o->n_aud || o->ttl)
        return nu__usage_error("verify", "--out, --aud and --ttl do not "
                               "apply");
    if (o->id != NULL) {
        if (nu_spiffeid_parse(o->id, strlen(o->id), &want, &err) != NU_OK)
            return nu__usage_error("verify", err.msg);
        expected_td = want.trust_domain;
    } else if (o->trust_domain != NULL) {
        if (nu_spiffeid_parse_trust_domain(o->trust_domain, td, &err) != NU_OK)
            return nu__usage_error("verify", err.msg);
        expected_td = td;
    }

    mbedtls_x509_crt_init(&chain);
    rc = nu_identity_read_file(o->arg, &text, &len, &err);
    if (rc == NU_OK)
        rc = nu__load_bundle(o->bundle, expected_td, &bundles, &err);
    if (rc != NU_OK) {
        exit_code = rc == NU_EPARSE || rc == NU_EINVAL ? nu__invalid(err.msg)
                                                       : nu__fail(&err);
        goto out;
    }
    if (expected_td == NULL)
        expected_td = nu_bundle_set_only_domain(bundles);

    rc = nu_x509_parse_certs(text, len, &chain, &err);
    if (rc >= 0)
        rc = nu_svid_verify(&chain, bundles, expected_td, &got, &err);
    if (rc == NU_OK && o->id != NULL && strcmp(got.id, want.id) != 0)
        rc = nu_err_set(&err, NU_EDENIED, "svid: SPIFFE ID '%s' is not the "
                        "expected '%s'", got.id, want.id);
    if (rc == NU_OK && o->key != NULL)
        rc = nu__check_key_file(o->key, &chain, &err);
    if (rc != NU_OK) {
        exit_code = nu__invalid(err.msg);
        goto out;
    }
    printf("ok: %s\n", got.id);
    exit_code = NU_EXIT_OK;

out:
    free(text);
    mbedtls_x509_crt_free(&chain);
    nu_bundle_set_free(bundles);
    return exit_code;
}

/* ---- JWT-SVIDs --------------------------------------------------------------- */

static int nu__svid_jwt(const nu__svid_opts_t *o)
{
    nu_ca_t *ca = NULL;
    char *token = NULL;
    nu_err_t err;

    if (o->id == NULL || o->n_aud == 0)
        return nu__usage_error("jwt", "--id and --aud are required");
    if (o->arg || o->out || o->bundle || o->key || o->trust_domain)
        return nu__usage_error("jwt", "only --id, --aud, --ttl and --home "
                               "apply");
    if (nu__load_ca(o->home, &ca, &err) != NU_OK)
        return nu__fail(&err);
    if (nu_jwt_issue(ca, o->id, o->aud, o->n_aud, o->ttl, &token,
                     &err) != NU_OK) {
        nu_ca_free(ca);
        return nu__fail(&err);
    }
    printf("%s\n", token);
    free(token);
    nu_ca_free(ca);
    return NU_EXIT_OK;
}

static int nu__jwt_bundle(const nu__svid_opts_t *o, nu_jwt_bundle_t **out,
                          nu_err_t *err)
{
    char *text = NULL;
    size_t len = 0;
    nu_ca_t *ca = NULL;
    int rc;

    if (o->bundle == NULL) {
        rc = nu__load_ca(o->home, &ca, err);
        if (rc == NU_OK)
            rc = nu_jwt_bundle_from_ca(ca, out, err);
        nu_ca_free(ca);
        return rc;
    }
    rc = nu_identity_read_file(o->bundle, &text, &len, err);
    if (rc == NU_OK)
        rc = nu_jwt_bundle_from_json(text, len, o->trust_domain, out, err);
    free(text);
    return rc;
}

static int nu__svid_jwt_verify(const nu__svid_opts_t *o)
{
    nu_jwt_bundle_t *bundle = NULL;
    nu_spiffeid_t sub;
    nu_err_t err;
    int rc;

    if (o->arg == NULL || o->n_aud != 1)
        return nu__usage_error("jwt-verify", "TOKEN and one --aud are "
                               "required");
    if (o->id || o->out || o->key || o->ttl)
        return nu__usage_error("jwt-verify", "--id, --out, --key and --ttl "
                               "do not apply");
    rc = nu__jwt_bundle(o, &bundle, &err);
    if (rc != NU_OK)
        return rc == NU_EPARSE || rc == NU_EINVAL ? nu__invalid(err.msg)
                                                  : nu__fail(&err);
    rc = nu_jwt_verify(o->arg, bundle, o->aud[0], time(NULL), &sub, &err);
    nu_jwt_bundle_free(bundle);
    if (rc != NU_OK)
        return nu__invalid(err.msg);
    printf("ok: %s\n", sub.id);
    return NU_EXIT_OK;
}

/* ---- mtls-test (hidden) ------------------------------------------------------ */

/*
 *   nucleus svid mtls-test server|client --svid DIR --port PORT
 *                          [--trust-domain TD] [--count N]
 * Loopback only (127.0.0.1).  The server accepts N connections (0: until
 * killed), prints "listening on PORT" first and then "peer: <id>" or
 * "rejected: <reason>" per connection, and sends "hello <peer id>\n".  The
 * client makes N handshakes (default 1), prints "peer: <id>" for the
 * first, sends "ping\n", and ends with the median handshake time.
 */
typedef struct nu__mtls_opts {
    const char *svid, *trust_domain;
    int port, count;
} nu__mtls_opts_t;

/* Parse a decimal number from 0 to max; returns 0, or -1 when invalid. */
static int nu__parse_count(const char *text, long max, int *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || v < 0 || v > max)
        return -1;
    *out = (int)v;
    return 0;
}

static int nu__mtls_parse(int argc, char **argv, nu__mtls_opts_t *o)
{
    static const struct option longopts[] = {
        { "svid", required_argument, NULL, 's' },
        { "port", required_argument, NULL, 'p' },
        { "trust-domain", required_argument, NULL, 't' },
        { "count", required_argument, NULL, 'n' },
        { NULL, 0, NULL, 0 },
    };
    int c;

    o->port = -1;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 's': o->svid = optarg; break;
        case 't': o->trust_domain = optarg; break;
        case 'p':
            if (nu__parse_count(optarg, 65535, &o->port) != 0)
                return nu__usage_error("mtls-test", "invalid --port (expected "
                                       "0 to 65535)");
            break;
        case 'n':
            if (nu__parse_count(optarg, 1000000, &o->count) != 0)
                return nu__usage_error("mtls-test", "invalid --count (expected "
                                       "0 to 1000000)");
            break;
        default:
            fprintf(stderr, "nucleus svid mtls-test: invalid option '%s'\n",
                    argv[optind - 1]);
            return NU_EXIT_USAGE;
        }
    }
    if (o->svid == NULL || o->port < 0 || optind != argc)
        return nu__usage_error("mtls-test", "--svid DIR and --port PORT are "
                               "required");
    return 0;
}

static int nu__loopback_socket(int port, int listening, nu_err_t *err)
{
    struct sockaddr_in addr = { .sin_family = AF_INET,
                                .sin_port = htons((uint16_t)port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return nu_err_errno(err, errno, "mtls-test: cannot create socket");
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (listening) {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, (struct sockaddr *)&addr, sizeof addr) == 0 &&
            listen(fd, 64) == 0)
            return fd;
        nu_err_errno(err, errno, "mtls-test: cannot listen on 127.0.0.1:%d",
                     port);
    } else {
        if (connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0)
            return fd;
        nu_err_errno(err, errno, "mtls-test: cannot connect to 127.0.0.1:%d",
                     port);
    }
    close(fd);
    return err->code;
}

static int nu__mtls_server(const nu__mtls_opts_t *o, nu_mtls_config_t *cfg)
{
    struct sockaddr_in addr;
    socklen_t addr_len = sizeof addr;
    nu_err_t err;
    int lfd = nu__loopback_socket(o->port, 1, &err), failures = 0;

    if (lfd < 0)
        return nu__fail(&err);
    getsockname(lfd, (struct sockaddr *)&addr, &addr_len);
    printf("listening on %d\n", ntohs(addr.sin_port));
    fflush(stdout);

    for (int served = 0; o->count == 0 || served < o->count; served++) {
        nu_mtls_conn_t *conn = NULL;
        char line[NU_SPIFFEID_MAX + 16];
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

        if (fd < 0) {
            if (errno == EINTR)
                continue;
            close(lfd);
            nu_err_errno(&err, errno, "mtls-test: cannot accept");
            return nu__fail(&err);
        }
        if (nu_mtls_handshake(cfg, fd, &conn, &err) != NU_OK) {
            printf("rejected: %s\n", err.msg);
            failures++;
        } else {
            printf("peer: %s\n", nu_mtls_peer_id(conn)->id);
            snprintf(line, sizeof line, "hello %s\n", nu_mtls_peer_id(conn)->id);
            nu_mtls_write(conn, line, strlen(line), &err);
            nu_mtls_close(conn);
        }
        fflush(stdout);
        close(fd);
    }
    close(lfd);
    return failures == 0 ? NU_EXIT_OK : NU_EXIT_FAIL;
}

static int nu__cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

static int nu__mtls_client(const nu__mtls_opts_t *o, nu_mtls_config_t *cfg)
{
    int count = o->count > 0 ? o->count : 1;
    double *ms = calloc((size_t)count, sizeof *ms);
    nu_err_t err;
    int rc = NU_EXIT_OK;

    if (ms == NULL)
        return NU_EXIT_FAIL;
    for (int i = 0; i < count; i++) {
        struct timespec t0, t1;
        nu_mtls_conn_t *conn = NULL;
        int fd;

        clock_gettime(CLOCK_MONOTONIC, &t0);
        fd = nu__loopback_socket(o->port, 0, &err);
        if (fd < 0 || nu_mtls_handshake(cfg, fd, &conn, &err) != NU_OK) {
            printf("rejected: %s\n", err.msg);
            if (fd >= 0)
                close(fd);
            rc = NU_EXIT_FAIL;
            break;
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        ms[i] = (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
                (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
        if (i == 0)
            printf("peer: %s (%s)\n", nu_mtls_peer_id(conn)->id,
                   nu_mtls_ciphersuite(conn));
        nu_mtls_write(conn, "ping\n", 5, &err);
        nu_mtls_close(conn);
        close(fd);
    }
    if (rc == NU_EXIT_OK) {
        qsort(ms, (size_t)count, sizeof *ms, nu__cmp_double);
        printf("handshakes: %d, median %.3f ms\n", count, ms[count / 2]);
    }
    free(ms);
    return rc;
}

static int nu__svid_mtls_test(int argc, char **argv)
{
    nu__mtls_opts_t opts = { 0 };
    nu_mtls_config_t *cfg = NULL;
    nu_mtls_role_t role;
    nu_err_t err;
    int rc;

    if (argc < 2 || (strcmp(argv[1], "server") != 0 &&
                     strcmp(argv[1], "client") != 0))
        return nu__usage_error("mtls-test", "expected 'server' or 'client'");
    role = strcmp(argv[1], "server") == 0 ? NU_MTLS_SERVER : NU_MTLS_CLIENT;
    rc = nu__mtls_parse(argc - 1, argv + 1, &opts);
    if (rc != 0)
        return rc;
    if (nu_mtls_config_from_dir(role, opts.svid, opts.trust_domain, 10000,
                                &cfg, &err) != NU_OK)
        return nu__fail(&err);
    rc = role == NU_MTLS_SERVER ? nu__mtls_server(&opts, cfg)
                                : nu__mtls_client(&opts, cfg);
    nu_mtls_config_free(cfg);
    return rc;
}

int nu_cmd_svid(int argc, char **argv)
{
    nu__svid_opts_t opts = { 0 };
    const char *action;
    int rc;

    if (argc < 2) {
        nu__svid_usage(stderr);
        return NU_EXIT_USAGE;
    }
    action = argv[1];
    if (strcmp(action, "--help") == 0 || strcmp(action, "-h") == 0) {
        nu__svid_usage(stdout);
        return NU_EXIT_OK;
    }
    if (strcmp(action, "mtls-test") == 0)
        return nu__svid_mtls_test(argc - 1, argv + 1);

    rc = nu__svid_parse(argc - 1, argv + 1, &opts);
    if (rc != 0)
        return rc;
    if (strcmp(action, "issue") == 0)
        return nu__svid_issue(&opts);
    if (strcmp(action, "verify") == 0)
        return nu__svid_verify(&opts);
    if (strcmp(action, "jwt") == 0)
        return nu__svid_jwt(&opts);
    if (strcmp(action, "jwt-verify") == 0)
        return nu__svid_jwt_verify(&opts);
    fprintf(stderr, "nucleus svid: unknown action '%s' (expected issue, "
            "verify, jwt or jwt-verify)\n", action);
    return NU_EXIT_USAGE;
}
