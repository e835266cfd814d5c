/*
 * cmd_exec.c - nucleus exec: run one command in a new pod.
 *
 *   nucleus exec [--profile P] [--workspace DIR] [--timeout S]
 *                [--memory BYTES] [--pids N] [--file-size BYTES]
 *                [--env NAME=VALUE]... [--approve]
 *                -- CMD [ARG...]
 *
 * Steps: create a pod with the profile (its block and write_block globs
 * masked in the workspace), send the run call through the tool-call
 * pipeline (nu_pod_call_stream: the lattice, the check hook, approvals by
 * the approve hook, the audit log), print its output as the command writes
 * it, and close the pod.  With --approve, an approval that the profile's
 * approve hook left open is granted and reported on stderr, and a denial
 * stays a denial.  Exit status:
 *   the command's own, or 128+N when signal N killed it;
 *   124 when it timed out;
 *   125 when Nucleus itself failed, usage errors included (as timeout(1)
 *       and env(1) do), so that a failure is not read as the command's 2;
 *   126 when the policy denied the call or required an approval that no
 *       hook granted;
 *   127 when the command was not found.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/base64.h>

#include "cli/commands.h"
#include "nucleus/audit.h"
#include "nucleus/decide.h"
#include "nucleus/log.h"
#include "nucleus/pod.h"
#include "nucleus/policy.h"

#define NU__EXIT_TIMEOUT 124
#define NU__EXIT_NUCLEUS 125
#define NU__EXIT_DENIED 126
#define NU__EXIT_NOT_FOUND 127
#define NU__MAX_ENV 64

typedef struct nu__exec_args {
    const char *profile;
    const char *workspace;
    uint32_t timeout_ms;
    uint64_t memory;
    uint32_t pids;
    uint64_t file_size;
    const char *env[NU__MAX_ENV + 1];
    size_t nenv;
    bool no_audit;
    bool approve;
    const char *isolation;
    char **argv;
    int argc;
} nu__exec_args_t;

static void nu__exec_usage(FILE *out)
{
    fprintf(out,
        "usage: nucleus exec [OPTIONS] -- CMD [ARG...]\n\n"
        "Run one command in a new pod, checked by a profile.\n\n"
        "  --profile P       profile file or built-in name (default: "
        "default)\n"
        "  --workspace DIR   directory mounted at /workspace (default: the "
        "current directory)\n"
        "  --timeout S       wall-clock limit in seconds, 1 to 86400 "
        "(default: 120)\n"
        "  --memory BYTES    memory limit, 16M to 16T; K, M, G, T suffixes "
        "(default: 2G)\n"
        "  --pids N          process limit, 1 to 1000000 (default: 1024)\n"
        "  --file-size BYTES largest file a process may write, 1 to 16T "
        "(default: 4G)\n"
        "  --env NAME=VALUE  add an environment variable (repeatable)\n"
        "  --no-audit        do not record the call in the audit log\n"
        "  --approve         grant the approvals this command needs (the "
        "profile's\n"
        "                    approve hook is asked first; each grant is "
        "printed on stderr)\n"
        "  --isolation TIER  ns (default), oci:crun, oci:runc, oci:PATH, vm or\n"
        "                    firecracker\n\n"
        "Output: the first 1 MiB of stdout and of stderr is shown; the rest "
        "is dropped,\nwith a note on stderr.  The cap is fixed, so write "
        "large output to a file in\nthe workspace instead.\n\n"
        "exit status: the command's; 124 timeout, 125 Nucleus failed or bad "
        "usage, 126 denied, 127 not found\n");
}

/* Ranges of the size options.  --memory starts at 16 MiB because the pod
 * init failed to start with 1 MiB (4 MiB was enough for a Debug build);
 * --memory and --file-size stop at 16 TiB. */
#define NU__MEMORY_MIN (UINT64_C(16) << 20)
#define NU__SIZE_MAX_BYTES (UINT64_C(16) << 40)

/*
 * Parse a decimal count with no sign, space or suffix into [min, max].
 * Returns 0, or -1 for anything else, an overflowing number included.
 */
static int nu__parse_count(const char *text, uint64_t min, uint64_t max,
                           uint64_t *out)
{
    char *end;
    unsigned long long v;

    if (text[0] < '0' || text[0] > '9')
        return -1;
    errno = 0;
    v = strtoull(text, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/*
 * Parse a size such as "512M" (K, M, G and T are powers of 1024) into
 * [min, max] bytes.  Returns 0, or -1 when the text is not a size or the
 * value overflows or falls outside the range.
 */
static int nu__parse_size(const char *text, uint64_t min, uint64_t max,
                          uint64_t *out)
{
    static const char suffixes[] = "KMGT";
    char digits[32];
    size_t len = strlen(text);
    unsigned shift = 0;
    uint64_t v;

    if (len == 0 || len >= sizeof digits)
        return -1;
    memcpy(digits, text, len + 1);
    for (unsigned i = 0; suffixes[i] != '\0'; i++) {
        if (toupper((unsigned char)digits[len - 1]) == suffixes[i]) {
            shift = 10 * (i + 1);
            digits[len - 1] = '\0';
            break;
        }
    }

    if (nu__parse_count(digits, 0, UINT64_MAX, &v) != 0)
        return -1;
    if (v > (max >> shift))
        return -1;
    v <<= shift;
    if (v < min)
        return -1;
    *out = v;
    return 0;
}

static int nu__parse_exec_args(int argc, char **argv, nu__exec_args_t *a)
{
    static const struct option options[] = {
        { "profile", required_argument, NULL, 'p' },
        { "workspace", required_argument, NULL, 'w' },
        { "timeout", required_argument, NULL, 't' },
        { "memory", required_argument, NULL, 'm' },
        { "pids", required_argument, NULL, 'n' },
        { "file-size", required_argument, NULL, 'f' },
        { "env", required_argument, NULL, 'e' },
        { "no-audit", no_argument, NULL, 'A' },
        { "isolation", required_argument, NULL, 'i' },
        { "approve", no_argument, NULL, 'a' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    uint64_t value;
    int c;

    memset(a, 0, sizeof *a);
    a->profile = "default";
    a->timeout_ms = 120000;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+h", options, NULL)) != -1) {
        switch (c) {
        case 'p': a->profile = optarg; break;
        case 'w': a->workspace = optarg; break;
        case 't':
            if (nu__parse_count(optarg, 1, 86400, &value) != 0) {
                fprintf(stderr, "nucleus exec: invalid --timeout '%s': give "
                        "whole seconds from 1 to 86400\n", optarg);
                return NU__EXIT_NUCLEUS;
            }
            a->timeout_ms = (uint32_t)value * 1000;
            break;
        case 'm':
            if (nu__parse_size(optarg, NU__MEMORY_MIN, NU__SIZE_MAX_BYTES,
                               &a->memory) != 0) {
                fprintf(stderr, "nucleus exec: invalid --memory '%s': give "
                        "bytes from 16M to 16T, optionally with a K, M, G or "
                        "T suffix\n", optarg);
                return NU__EXIT_NUCLEUS;
            }
            break;
        case 'n':
            if (nu__parse_count(optarg, 1, 1000000, &value) != 0) {
                fprintf(stderr, "nucleus exec: invalid --pids '%s': give a "
                        "count from 1 to 1000000\n", optarg);
                return NU__EXIT_NUCLEUS;
            }
            a->pids = (uint32_t)value;
            break;
        case 'f':
            if (nu__parse_size(optarg, 1, NU__SIZE_MAX_BYTES,
                               &a->file_size) != 0) {
                fprintf(stderr, "nucleus exec: invalid --file-size '%s': "
                        "give bytes from 1 to 16T, optionally with a K, M, G "
                        "or T suffix\n", optarg);
                return NU__EXIT_NUCLEUS;
            }
            break;
        case 'e':
            if (strchr(optarg, '=') == NULL || a->nenv == NU__MAX_ENV) {
                fprintf(stderr, "nucleus exec: invalid --env '%s': give "
                        "NAME=VALUE (at most %d)\n", optarg, NU__MAX_ENV);
                return NU__EXIT_NUCLEUS;
            }
            a->env[a->nenv++] = optarg;
            break;
        case 'A':
            a->no_audit = true;
            break;
        case 'i':
            a->isolation = optarg;
            break;
        case 'a':
            a->approve = true;
            break;
        case 'h':
            nu__exec_usage(stdout);
            return NU_EXIT_OK;
        default:
            nu__exec_usage(stderr);
            return NU__EXIT_NUCLEUS;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "nucleus exec: missing command (put it after "
                "'--')\n");
        return NU__EXIT_NUCLEUS;
    }
    a->argv = argv + optind;
    a->argc = argc - optind;
    return -1;  /* go on */
}

/* Write one streamed chunk to our stdout or stderr as it arrives. */
static void nu__exec_output(const char *stream, const void *data, size_t len,
                            void *userdata)
{
    FILE *out = strcmp(stream, "stderr") == 0 ? stderr : stdout;

    (void)userdata;
    fwrite(data, 1, len, out);
    fflush(out);
}

/* Write a result field (utf-8 or base64) to out. */
static void nu__print_stream(const json_t *result, const char *field,
                             FILE *out)
{
    char key[64];
    const char *text = json_string_value(json_object_get(result, field));
    const char *encoding;
    size_t len;

    if (text == NULL)
        return;
    snprintf(key, sizeof key, "%s_encoding", field);
    encoding = json_string_value(json_object_get(result, key));
    len = strlen(text);

    if (encoding != NULL && strcmp(encoding, "base64") == 0) {
        unsigned char *raw = malloc(len);
        size_t n = 0;
        if (raw != NULL && mbedtls_base64_decode(raw, len, &n,
                                                 (const unsigned char *)text,
                                                 len) == 0)
            fwrite(raw, 1, n, out);
        free(raw);
    } else {
        fwrite(text, 1, len, out);
    }
    fflush(out);
}

/* Print a note on stderr for each output stream cut at the output cap. */
static void nu__exec_note_truncation(const json_t *result)
{
    static const char *const streams[] = { "stdout", "stderr" };
    char key[32];

    for (size_t i = 0; i < sizeof streams / sizeof streams[0]; i++) {
        snprintf(key, sizeof key, "%s_truncated", streams[i]);
        if (!json_is_true(json_object_get(result, key)))
            continue;
        fprintf(stderr, "nucleus exec: %s truncated: the pod keeps the first "
                "1 MiB of each stream and dropped the rest (write large "
                "output to a file in the workspace)\n", streams[i]);
    }
}

/* Map the run result to the exit status. */
static int nu__exec_status(const json_t *result)
{
    const char *kind = json_string_value(json_object_get(result, "kind"));
    const char *error = json_string_value(json_object_get(result, "error"));
    json_t *code = json_object_get(result, "exit_code");
    json_t *sig = json_object_get(result, "signal");

    if (json_is_true(json_object_get(result, "timed_out")) ||
        (kind != NULL && strcmp(kind, "timeout") == 0)) {
        fprintf(stderr, "nucleus exec: %s\n", error != NULL ? error :
                "the command timed out");
        return NU__EXIT_TIMEOUT;
    }
    if (kind != NULL && strcmp(kind, "not_found") == 0) {
        fprintf(stderr, "nucleus exec: %s\n", error != NULL ? error :
                "command not found");
        return NU__EXIT_NOT_FOUND;
    }
    if (json_is_integer(sig) && json_integer_value(sig) > 0)
        return 128 + (int)json_integer_value(sig);
    if (json_is_integer(code))
        return (int)json_integer_value(code);
    fprintf(stderr, "nucleus exec: %s\n", error != NULL ? error :
            "the pod returned no exit status");
    return NU__EXIT_NUCLEUS;
}

/* Grant what the profile's approve hook left open (--approve), and print
 * each grant on stderr, because the operator may not expect the command
 * to need approval. */
static nu_approve_t nu__exec_approve(nu_pod_t *pod, const json_t *request,
                                     void *userdata)
{
    (void)pod;
    (void)userdata;
    fprintf(stderr, "nucleus exec: --approve GRANTED an approval for "
            "operation '%s': %s (approval key %s)\n",
            json_string_value(json_object_get(request, "operation")),
            json_string_value(json_object_get(request, "reason")),
            json_string_value(json_object_get(request, "approval_key")));
    return NU_APPROVE_APPROVE;
}

/* Report a call the pipeline did not run and return the exit status. */
static int nu__exec_not_run(const nu_call_result_t *r)
{
    const nu_decision_t *d = &r->decision;

    if (d->verdict == NU_DECISION_APPROVAL) {
        fprintf(stderr, "nucleus exec: denied (approval_required): %s "
                "(approval key %s); pass --approve to grant it for this "
                "command, or use a profile whose approve hook grants it\n",
                d->reason, d->approval_key);
        return NU__EXIT_DENIED;
    }
    if (d->kind == NU_KIND_IO_ERROR || d->kind == NU_KIND_INTERNAL ||
        d->kind == NU_KIND_SANDBOX_ERROR) {
        fprintf(stderr, "nucleus exec: %s\n", d->reason);
        return NU__EXIT_NUCLEUS;
    }
    fprintf(stderr, "nucleus exec: denied (%s): %s\n", nu_kind_name(d->kind),
            d->reason);
    return NU__EXIT_DENIED;
}

static int nu__exec_in_pod(const nu__exec_args_t *a, nu_profile_t *profile,
                           nu_audit_t *audit, json_t *call)
{
    nu_pod_options_t opts;
    nu_pod_t *pod = NULL;
    nu_call_result_t r;
    char cwd[PATH_MAX];
    nu_err_t err = { 0 };
    int status;

    nu_pod_options_init(&opts);
    if (a->workspace == NULL && getcwd(cwd, sizeof cwd) == NULL) {
        fprintf(stderr, "nucleus exec: cannot read the current directory: "
                "%s (pass --workspace)\n", strerror(errno));
        return NU__EXIT_NUCLEUS;
    }
    opts.profile = profile;
    opts.workspace = a->workspace != NULL ? a->workspace : cwd;
    opts.memory_bytes = a->memory;
    opts.pids = a->pids;
    opts.file_size_bytes = a->file_size;
    opts.timeout_ms = a->timeout_ms;
    /* --env goes into the call, where the decision checks it for
     * variables such as LD_PRELOAD or PATH and the audit log records it. */
    opts.audit = audit;
    opts.namespace_ = "exec";
    opts.isolation = a->isolation;
    if (a->approve)
        opts.approve = nu__exec_approve;

    if (nu_pod_create(&opts, &pod, &err) != NU_OK) {
        fprintf(stderr, "nucleus exec: %s\n", err.msg);
        return NU__EXIT_NUCLEUS;
    }

    nu_pod_call_stream(pod, call, nu__exec_output, NULL, &r);
    if (r.decision.verdict != NU_DECISION_ALLOW || r.result == NULL) {
        status = nu__exec_not_run(&r);
    } else {
        nu__print_stream(r.result, "stdout", stdout);
        nu__print_stream(r.result, "stderr", stderr);
        nu__exec_note_truncation(r.result);
        status = nu__exec_status(r.result);
    }
    nu_call_result_clear(&r);
    nu_pod_close(pod);
    return status;
}

int nu_cmd_exec(int argc, char **argv)
{
    nu__exec_args_t args;
    nu_profile_t *profile = NULL;
    nu_audit_t *audit = NULL;
    json_t *call = NULL;
    nu_err_t err = { 0 };
    int status;

    status = nu__parse_exec_args(argc, argv, &args);
    if (status >= 0)
        return status;

    if (nu_profile_load(&profile, args.profile, NULL, &err) != NU_OK) {
        fprintf(stderr, "nucleus exec: cannot load profile '%s': %s\n",
                args.profile, err.msg);
        return NU__EXIT_NUCLEUS;
    }

    call = json_pack("{s:s,s:[]}", "tool", "run", "argv");
    for (int i = 0; call != NULL && i < args.argc; i++)
        json_array_append_new(json_object_get(call, "argv"),
                              json_string(args.argv[i]));
    if (call != NULL)
        json_object_set_new(call, "timeout",
                            json_integer(args.timeout_ms / 1000));
    if (call != NULL && args.nenv > 0) {
        json_t *env = json_object();
        for (size_t i = 0; i < args.nenv; i++) {
            const char *eq = strchr(args.env[i], '=');
            char name[256];
            size_t n = (size_t)(eq - args.env[i]);
            if (n == 0 || n >= sizeof name)
                continue;
            memcpy(name, args.env[i], n);
            name[n] = '\0';
            json_object_set_new(env, name, json_string(eq + 1));
        }
        json_object_set_new(call, "env", env);
    }
    if (call == NULL) {
        fprintf(stderr, "nucleus exec: out of memory\n");
        status = NU__EXIT_NUCLEUS;
        goto out;
    }

    if (!args.no_audit && nu_audit_open(NULL, &audit, &err) != NU_OK) {
        fprintf(stderr, "nucleus exec: %s (or pass --no-audit)\n", err.msg);
        status = NU__EXIT_NUCLEUS;
        goto out;
    }
    status = nu__exec_in_pod(&args, profile, audit, call);

out:
    json_decref(call);
    nu_audit_close(audit);
    nu_profile_free(profile);
    return status;
}
