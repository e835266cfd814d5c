/*
 * cmd_replay.c - nucleus replay: decide (or execute) the tool calls of a
 * recorded agent transcript.
 *
 * Input: JSON Lines.  A first line without "tool" is a header and is
 * echoed.  Every other line is one tool call; the keys step, agent_command,
 * agent_tool and applied are transcript metadata and are removed before
 * the call is decided.  Absolute paths under the header's "cwd" are moved
 * onto the workspace: the path and cwd fields become relative to it, and
 * redirection targets in a command string move under /workspace
 * (replay_rebase.c).  A call whose redirection targets cannot be moved
 * safely is rejected as invalid_request, naming the target.
 * NOTE: other absolute paths in command strings (arguments, cd) are kept
 * as recorded.
 *
 * Output: one JSON line per step,
 *   {"step", "tool", "operation", "decision", "kind", "reason", "exit"}
 * (kind and reason when they apply, exit only with --execute and a run),
 * then {"summary": {...counts...}}.
 *
 * Without --execute nothing runs: the exposure a call would add is assumed
 * to happen when the call is allowed (or approved by --approve always).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/replay_rebase.h"
#include "nucleus/display.h"
#include "nucleus/json.h"
#include "nucleus/pod.h"
#include "nucleus/policy.h"

typedef enum { NU_REPLAY_NEVER, NU_REPLAY_ALWAYS, NU_REPLAY_PROMPT } nu_replay_approve_t;

typedef struct nu_replay {
    nu_profile_t *profile;
    nu_pod_t *pod;                 /* --execute only */
    nu_replay_approve_t approve;
    bool egress;
    char *cwd;                     /* the header's cwd, or NULL */
    unsigned exposure;
    long steps, allowed, denied, gated, approved, failed, invalid;
    long by_kind[NU_KIND_COUNT];
} nu_replay_t;

static void nu__replay_usage(FILE *out)
{
    fprintf(out,
        "usage: nucleus replay TRANSCRIPT.jsonl --profile P [--workspace DIR]\n"
        "                      [--execute] [--approve never|always|prompt] "
        "[--egress]\n\n"
        "Decide every tool call of a transcript with profile P and print one "
        "JSON line\nper step and a summary.  --execute also runs the calls in "
        "a pod on DIR\n(required with --execute).  --approve says who answers "
        "approval requests:\nnobody (never, the default), yes to all (always), "
        "or you on the terminal\n(prompt).  --egress decides as if the pod had "
        "network egress.\n");
}

/* Ask on the terminal; anything but y or yes denies. */
static nu_approve_t nu__prompt(const json_t *request)
{
    char *text = json_dumps(request, JSON_COMPACT);
    char *shown = text ? nu_display_escape(text, strlen(text), 0) : NULL;
    char answer[16] = "";
    FILE *tty = fopen("/dev/tty", "r+e");

    free(text);
    if (tty == NULL) {
        free(shown);
        return NU_APPROVE_DENY;
    }
    fprintf(tty, "approval required: %s\napprove? [y/N] ",
            shown ? shown : "(unprintable)");
    fflush(tty);
    free(shown);
    if (fgets(answer, sizeof answer, tty) == NULL)
        answer[0] = '\0';
    fclose(tty);
    return (strcmp(answer, "y\n") == 0 || strcmp(answer, "yes\n") == 0)
         ? NU_APPROVE_APPROVE : NU_APPROVE_DENY;
}

static nu_approve_t nu__replay_callback(nu_pod_t *pod, const json_t *request,
                                        void *userdata)
{
    nu_replay_t *r = userdata;

    (void)pod;
    if (r->approve == NU_REPLAY_ALWAYS)
        return NU_APPROVE_APPROVE;
    if (r->approve == NU_REPLAY_PROMPT)
        return nu__prompt(request);
    return NU_APPROVE_ASK;
}

/* Make path relative to the workspace when it lies under the agent's cwd. */
static void nu__rebase_path(nu_replay_t *r, json_t *call, const char *key)
{
    const char *path = json_string_value(json_object_get(call, key));
    size_t n;

    if (path == NULL || r->cwd == NULL)
        return;
    n = strlen(r->cwd);
    if (strncmp(path, r->cwd, n) != 0 || (path[n] != '/' && path[n] != '\0'))
        return;
    path += n;
    while (*path == '/')
        path++;
    json_object_set_new(call, key, json_string(*path ? path : "."));
}

/* The call without transcript metadata, with paths rebased. */
static json_t *nu__replay_call(nu_replay_t *r, const json_t *line)
{
    json_t *call = json_deep_copy(line);

    if (call == NULL)
        return NULL;
    json_object_del(call, "step");
    json_object_del(call, "agent_command");
    json_object_del(call, "agent_tool");
    json_object_del(call, "applied");
    nu__rebase_path(r, call, "path");
    nu__rebase_path(r, call, "cwd");
    return call;
}

static void nu__count(nu_replay_t *r, const nu_decision_t *d, bool approved)
{
    r->steps++;
    if (d->kind > 0 && d->kind < NU_KIND_COUNT)
        r->by_kind[d->kind]++;
    if (d->verdict == NU_DECISION_ALLOW)
        r->allowed++;
    else if (d->verdict == NU_DECISION_APPROVAL)
        r->gated++;
    else
        r->denied++;
    if (approved)
        r->approved++;
    if (d->kind == NU_KIND_INVALID_REQUEST)
        r->invalid++;
}

static void nu__print_step(json_t *step)
{
    char *text = json_dumps(step, JSON_COMPACT | JSON_ENSURE_ASCII);

    if (text != NULL) {
        puts(text);
        free(text);
    }
}

/* Decide one call without running it. */
static void nu__replay_dry(nu_replay_t *r, const json_t *call, json_t *step)
{
    nu_decide_ctx_t ctx = { .exposure = r->exposure, .egress = r->egress,
                            .now = (int64_t)time(NULL) };
    nu_decision_t d;
    bool approved = false;

    nu_profile_eval(r->profile, call, &ctx, NULL, &d, NULL);
    if (d.verdict == NU_DECISION_APPROVAL && r->approve != NU_REPLAY_NEVER) {
        json_t *req = json_pack("{s:s, s:s, s:O, s:s}", "operation",
                                nu_decision_op_name(&d), "approval_key",
                                d.approval_key, "call", call, "reason", d.reason);
        approved = req != NULL &&
                   nu__replay_callback(NULL, req, r) == NU_APPROVE_APPROVE;
        json_decref(req);
    }
    if (d.verdict == NU_DECISION_ALLOW || approved)
        r->exposure |= d.legs;

    json_t *j = nu_decision_to_json(&d);
    json_object_update(step, j);
    json_decref(j);
    if (approved)
        json_object_set_new(step, "approved", json_true());
    nu__count(r, &d, approved);
}

/* Report a call that replay cannot run as recorded, as a step 1 denial. */
static void nu__replay_reject(nu_replay_t *r, const char *reason,
                              json_t *step)
{
    nu_decision_t d;

    memset(&d, 0, sizeof d);
    d.verdict = NU_DECISION_DENY;
    d.kind = NU_KIND_INVALID_REQUEST;
    d.step = 1;
    d.operation = NU_OP_RUN_BASH;
    d.ops = NU_OPSET(NU_OP_RUN_BASH);
    snprintf(d.reason, sizeof d.reason, "%s", reason);

    json_t *j = nu_decision_to_json(&d);
    json_object_update(step, j);
    json_decref(j);
    nu__count(r, &d, false);
}

static void nu__replay_exec(nu_replay_t *r, const json_t *call, bool applied,
                            json_t *step)
{
    nu_call_result_t res;

    if (!applied) {
        /* The agent's framework rejected this edit: decide, do not run. */
        nu__replay_dry(r, call, step);
        json_object_set_new(step, "applied", json_false());
        return;
    }

    nu_pod_call(r->pod, call, &res);
    json_t *j = nu_call_result_to_json(&res);
    json_object_del(j, "result");
    json_object_update(step, j);
    json_decref(j);

    if (res.result != NULL && json_object_get(res.result, "exit_code") != NULL)
        json_object_set(step, "exit", json_object_get(res.result, "exit_code"));
    if (res.executed && !json_is_true(json_object_get(res.result, "ok")))
        r->failed++;
    nu__count(r, &res.decision, res.approved_by[0] != '\0');
    nu_call_result_clear(&res);
}

static void nu__print_summary(const nu_replay_t *r)
{
    json_t *kinds = json_object();

    for (int k = 1; k < NU_KIND_COUNT; k++)
        if (r->by_kind[k] > 0)
            json_object_set_new(kinds, nu_kind_name((nu_kind_t)k),
                                json_integer(r->by_kind[k]));
    json_t *summary = json_pack("{s:{s:I, s:I, s:I, s:I, s:I, s:I, s:o}}",
                                "summary", "steps", (json_int_t)r->steps,
                                "allow", (json_int_t)r->allowed,
                                "deny", (json_int_t)r->denied,
                                "approval_required", (json_int_t)r->gated,
                                "approved", (json_int_t)r->approved,
                                "failed", (json_int_t)r->failed,
                                "kinds", kinds);
    nu__print_step(summary);
    json_decref(summary);
}

static int nu__replay_file(nu_replay_t *r, FILE *in, const char *name,
                           bool execute)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long lineno = 0;

    while ((len = getline(&line, &cap, in)) > 0) {
        nu_err_t err;
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (len == 0)
            continue;

        json_t *obj = nu_json_parse(line, (size_t)len, &err);
        if (!json_is_object(obj)) {
            fprintf(stderr, "nucleus: replay: %s:%ld: %s\n", name, lineno,
                    obj ? "not a JSON object" : err.msg);
            json_decref(obj);
            free(line);
            return NU_EXIT_FAIL;
        }

        if (json_object_get(obj, "tool") == NULL) {
            if (lineno == 1) {
                const char *cwd = json_string_value(json_object_get(obj, "cwd"));
                r->cwd = cwd ? strdup(cwd) : NULL;
                nu__print_step(obj);
            }
            json_decref(obj);
            continue;
        }

        json_t *step_no = json_object_get(obj, "step");
        json_t *step = json_pack("{s:O?, s:O}", "step", step_no, "tool",
                                 json_object_get(obj, "tool"));
        json_t *call = nu__replay_call(r, obj);
        bool applied = !json_is_false(json_object_get(obj, "applied"));

        char reason[NU_ERR_MAX];

        if (step_no == NULL)
            json_object_set_new(step, "step", json_integer(r->steps + 1));
        if (call != NULL &&
            nu__replay_rebase_redirects(r->cwd, call, reason,
                                        sizeof reason) != 0)
            nu__replay_reject(r, reason, step);
        else if (execute)
            nu__replay_exec(r, call, applied, step);
        else
            nu__replay_dry(r, call, step);
        nu__print_step(step);

        json_decref(step);
        json_decref(call);
        json_decref(obj);
    }
    free(line);
    return NU_EXIT_OK;
}

int nu_cmd_replay(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "profile", required_argument, NULL, 'p' },
        { "workspace", required_argument, NULL, 'w' },
        { "execute", no_argument, NULL, 'x' },
        { "approve", required_argument, NULL, 'a' },
        { "egress", no_argument, NULL, 'e' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    nu_replay_t r = { 0 };
    const char *profile = NULL, *workspace = NULL;
    bool execute = false;
    nu_err_t err;
    int c, code;

    optind = 1;
    while ((c = getopt_long(argc, argv, "p:w:xa:eh", longopts, NULL)) != -1) {
        switch (c) {
        case 'p': profile = optarg; break;
        case 'w': workspace = optarg; break;
        case 'x': execute = true; break;
        case 'e': r.egress = true; break;
        case 'a':
            if (strcmp(optarg, "never") == 0)
                r.approve = NU_REPLAY_NEVER;
            else if (strcmp(optarg, "always") == 0)
                r.approve = NU_REPLAY_ALWAYS;
            else if (strcmp(optarg, "prompt") == 0)
                r.approve = NU_REPLAY_PROMPT;
            else {
                fprintf(stderr, "nucleus: replay: invalid --approve '%s' "
                                "(expected never, always or prompt)\n", optarg);
                return NU_EXIT_USAGE;
            }
            break;
        case 'h': nu__replay_usage(stdout); return NU_EXIT_OK;
        default: nu__replay_usage(stderr); return NU_EXIT_USAGE;
        }
    }
    if (optind != argc - 1 || profile == NULL || (execute && workspace == NULL)) {
        nu__replay_usage(stderr);
        return NU_EXIT_USAGE;
    }

    FILE *in = strcmp(argv[optind], "-") == 0 ? stdin : fopen(argv[optind], "re");
    if (in == NULL) {
        fprintf(stderr, "nucleus: replay: cannot open '%s': %s\n", argv[optind],
                strerror(errno));
        return NU_EXIT_FAIL;
    }

    if (nu_profile_load(&r.profile, profile, NULL, &err) != NU_OK) {
        fprintf(stderr, "nucleus: replay: %s\n", err.msg);
        fclose(in);
        return NU_EXIT_FAIL;
    }

    if (execute) {
        nu_pod_options_t opts;
        nu_pod_options_init(&opts);
        opts.profile = r.profile;
        opts.workspace = workspace;
        opts.approve = nu__replay_callback;
        opts.approve_userdata = &r;
        if (nu_pod_create(&opts, &r.pod, &err) != NU_OK) {
            fprintf(stderr, "nucleus: replay: %s\n", err.msg);
            nu_profile_free(r.profile);
            fclose(in);
            return NU_EXIT_FAIL;
        }
    }

    code = nu__replay_file(&r, in, argv[optind], execute);
    if (code == NU_EXIT_OK)
        nu__print_summary(&r);

    if (in != stdin)
        fclose(in);
    nu_pod_close(r.pod);
    nu_profile_free(r.profile);
    free(r.cwd);
    return code;
}
