/*
 * cmd_serve.c - nucleus serve: run the JSON-RPC daemon.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cli/commands.h"
#include "nucleus/jsonrpc.h"
#include "nucleus/log.h"
#include "nucleus/server.h"

static nu_log_format_t nu__format;

static void nu__serve_usage(FILE *out)
{
    fprintf(out,
        "usage: nucleus serve [--home DIR] [--socket PATH] [--listen HOST:PORT\n"
        "                     --svid DIR --authz FILE [--trust-domain TD]]\n"
        "                     [--allow-uid UID]... [--workspace-root DIR]\n"
        "                     [--profile-dir DIR] [--max-message BYTES]\n"
        "                     [--workers N] [--no-audit] [--log-format text|json]\n"
        "                     [--verbose]\n\n"
        "Serve JSON-RPC 2.0 (one message per line) on a unix socket\n"
        "(default HOME/nucleus.sock, mode 0600; peers: this uid, root and each\n"
        "--allow-uid) and, with --listen, on TCP with mTLS only: clients present\n"
        "an X.509-SVID and the --authz map says what each SPIFFE ID may call.\n"
        "Callers other than root and this uid (TCP clients, --allow-uid peers)\n"
        "may only use workspaces below --workspace-root and built-in profiles\n"
        "or profile files below --profile-dir.\n"
        "--max-message is the largest line accepted (default and maximum\n"
        "16 MiB); --workers the number of calls run at once (default 16).\n"
        "SIGTERM drains and stops; SIGHUP reloads the authorization map.\n");
}

static void nu__timestamp(char *out, size_t size)
{
    struct timespec ts;
    struct tm tm;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, size, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, size - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

/* One line per event on stderr: key=value text, or a JSON object. */
static void nu__log_sink(nu_log_level_t level, const char *area,
                         const char *message, void *userdata)
{
    char when[40];

    (void)userdata;
    nu__timestamp(when, sizeof when);
    if (nu__format == NU_LOG_FORMAT_JSON) {
        json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "time", when, "level",
                              nu_log_level_name(level), "area", area, "msg",
                              message);
        char *text = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
        if (text != NULL)
            fprintf(stderr, "%s\n", text);
        free(text);
        json_decref(o);
        return;
    }
    json_t *quoted = json_string(message);
    char *text = quoted ? json_dumps(quoted, JSON_ENCODE_ANY | JSON_ENSURE_ASCII) : NULL;
    fprintf(stderr, "time=%s level=%s area=%s msg=%s\n", when,
            nu_log_level_name(level), area, text ? text : "\"\"");
    free(text);
    json_decref(quoted);
}

/*
 * Parse option opt's decimal value into [min, max]: no sign, no space, no
 * overflow.  Returns 0, or -1 after printing an error naming the range.
 */
static int nu__serve_number(const char *opt, const char *text, uint64_t min,
                            uint64_t max, uint64_t *out)
{
    unsigned long long v = 0;
    char *end = NULL;

    errno = 0;
    if (text[0] >= '0' && text[0] <= '9')
        v = strtoull(text, &end, 10);
    if (end == NULL || *end != '\0' || errno != 0 || v < min || v > max) {
        fprintf(stderr, "nucleus: serve: invalid %s '%s' (expected %" PRIu64
                " to %" PRIu64 ")\n", opt, text, min, max);
        return -1;
    }
    *out = v;
    return 0;
}

int nu_cmd_serve(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "home", required_argument, NULL, 'H' },
        { "socket", required_argument, NULL, 's' },
        { "listen", required_argument, NULL, 'l' },
        { "svid", required_argument, NULL, 'v' },
        { "authz", required_argument, NULL, 'a' },
        { "trust-domain", required_argument, NULL, 't' },
        { "allow-uid", required_argument, NULL, 'u' },
        { "workspace-root", required_argument, NULL, 'W' },
        { "profile-dir", required_argument, NULL, 'P' },
        { "max-message", required_argument, NULL, 'm' },
        { "workers", required_argument, NULL, 'w' },
        { "no-audit", no_argument, NULL, 'n' },
        { "log-format", required_argument, NULL, 'f' },
        { "verbose", no_argument, NULL, 'V' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    nu_server_options_t opts;
    uid_t uids[64];
    size_t nuids = 0;
    nu_err_t err;
    int c;

    nu_server_options_init(&opts);
    nu_log_set_level(NU_LOG_INFO);
    optind = 1;
    while ((c = getopt_long(argc, argv, "H:s:l:v:a:t:u:W:P:m:w:nf:Vh", longopts, NULL)) != -1) {
        uint64_t value;
        switch (c) {
        case 'H': opts.home = optarg; break;
        case 's': opts.socket_path = optarg; break;
        case 'l': opts.tcp_listen = optarg; break;
        case 'v': opts.svid_dir = optarg; break;
        case 'a': opts.authz_path = optarg; break;
        case 't': opts.trust_domain = optarg; break;
        case 'W': opts.workspace_root = optarg; break;
        case 'P': opts.profile_dir = optarg; break;
        case 'u':
            if (nuids == sizeof uids / sizeof uids[0]) {
                fprintf(stderr, "nucleus: serve: too many --allow-uid (max 64)\n");
                return NU_EXIT_USAGE;
            }
            /* (uid_t)-1 is not a user: chown and setresuid read it as
             * "unchanged". */
            if (nu__serve_number("--allow-uid", optarg, 0, UINT32_MAX - 1,
                                 &value) != 0)
                return NU_EXIT_USAGE;
            uids[nuids++] = (uid_t)value;
            break;
        case 'm':
            if (nu__serve_number("--max-message", optarg, 1024,
                                 NU_RPC_MAX_MESSAGE, &value) != 0)
                return NU_EXIT_USAGE;
            opts.max_message = (size_t)value;
            break;
        case 'w':
            if (nu__serve_number("--workers", optarg, 1, 1024, &value) != 0)
                return NU_EXIT_USAGE;
            opts.workers = (unsigned)value;
            break;
        case 'n': opts.audit = 0; break;
        case 'f':
            if (strcmp(optarg, "json") == 0)
                nu__format = NU_LOG_FORMAT_JSON;
            else if (strcmp(optarg, "text") == 0)
                nu__format = NU_LOG_FORMAT_TEXT;
            else {
                fprintf(stderr, "nucleus: serve: invalid --log-format '%s' "
                                "(text or json)\n", optarg);
                return NU_EXIT_USAGE;
            }
            break;
        case 'V': nu_log_set_level(NU_LOG_DEBUG); break;
        case 'h': nu__serve_usage(stdout); return NU_EXIT_OK;
        default: nu__serve_usage(stderr); return NU_EXIT_USAGE;
        }
    }
    if (optind != argc) {
        nu__serve_usage(stderr);
        return NU_EXIT_USAGE;
    }
    opts.allow_uids = uids;
    opts.nallow_uids = nuids;
    opts.log_format = nu__format;
    nu_log_set_sink(nu__log_sink, NULL);

    if (nu_server_run(&opts, &err) != NU_OK) {
        fprintf(stderr, "nucleus: %s\n", err.msg);
        return NU_EXIT_FAIL;
    }
    return NU_EXIT_OK;
}
