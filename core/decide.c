/*
 * decide.c - pipeline steps 2-7: classification, time, budget,
 * capabilities, rules, obligations and the trifecta gate.
 *
 * Step 1 (request shape) lives in decide_validate.c and URL parsing in
 * decide_url.c; docs/pipeline.md explains each rule for operators.
 *
 * Rules this file enforces:
 *   - A run call needs run_bash plus every operation the classifier found
 *     (git push also needs git_push, curl also needs web_fetch).
 *   - Classifier flags are never allowed silently (docs/pipeline.md has
 *     the table): PARSE_ERROR and TOO_COMPLEX always deny; DYNAMIC_PROGRAM
 *     and SHELL_EVAL deny under a finite command allow list and need
 *     approval under allow = TOP; INLINE_CODE, EXEC_OPTION and
 *     DANGEROUS_ENV deny under a finite allow list, need approval when
 *     run_bash is low_risk, and pass when run_bash is always.
 *   - Redirect targets are path checks: ">" and ">>" as writes, "<" as a
 *     read, relative to cwd.  Outside the workspace only /tmp (private to
 *     the pod) and the /dev/null, /dev/std* and /dev/fd/N devices pass.
 *   - Within step 5 a deny always wins over a gate, whichever rule
 *     raised the gate first.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "decide_internal.h"
#include "nucleus/glob.h"

/* Decision state: inputs, the validated request and the analysis. */
typedef struct nu__decide {
    const nu_perm_t *perm;
    const json_t *call;
    const nu_decide_ctx_t *ctx;
    nu_decision_t *out;
    nu__request_t req;
    char path[NU_PATH_MAX + 1];      /* normalized req.path */
    int path_rc;                     /* nu_path_normalize result for it */
    char cwd[NU_PATH_MAX + 1];       /* normalized req.cwd (run) */
    int cwd_rc;
    nu_cmd_analysis_t cmd;
    bool have_cmd;
    bool gated;                      /* step 5 raised a gate */
    char gate_reason[NU_ERR_MAX];
} nu__decide_t;

/* Step outcomes. */
#define NU__NEXT 0
#define NU__DECIDED 1

static const char *const nu__verdict_names[] = {"allow", "deny",
                                                "approval_required"};

const char *nu_decision_op_name(const nu_decision_t *d)
{
    if (d->step == 1 && d->kind == NU_KIND_INVALID_REQUEST && d->ops == 0)
        return "invalid";
    return nu_op_name(d->operation);
}

const char *nu_verdict_name(nu_verdict_t verdict)
{
    if ((int)verdict < 0 || verdict > NU_DECISION_APPROVAL)
        return "unknown";
    return nu__verdict_names[verdict];
}

/* Keep a reason on one line: names and paths quoted in it come from the
 * request and may hold control characters, which become '?'. */
static void nu__one_line(char *reason)
{
    for (unsigned char *p = (unsigned char *)reason; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            *p = '?';
}

static int nu__deny(nu__decide_t *d, int step, nu_kind_t kind,
                    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int nu__deny(nu__decide_t *d, int step, nu_kind_t kind,
                    const char *fmt, ...)
{
    va_list ap;

    d->out->verdict = NU_DECISION_DENY;
    d->out->kind = kind;
    d->out->step = step;
    va_start(ap, fmt);
    vsnprintf(d->out->reason, sizeof d->out->reason, fmt, ap);
    va_end(ap);
    nu__one_line(d->out->reason);
    return NU__DECIDED;
}

/* Decide approval_required with the call's key, whose prefix is op: the
 * operation the reason is about (run_bash for a flagged command, even
 * when the command is a curl whose call operation is web_fetch).  A key
 * that cannot be computed turns the gate into a deny (fail closed). */
static int nu__gate(nu__decide_t *d, int step, nu_op_t op, const char *reason)
{
    int rc = nu_approval_key(op, d->call, d->out->approval_key);
    if (rc != NU_OK)
        return nu__deny(d, step, NU_KIND_INTERNAL,
                        "decide: cannot compute the approval key: %s",
                        nu_strerror(rc));

    d->out->verdict = NU_DECISION_APPROVAL;
    d->out->kind = NU_KIND_APPROVAL_REQUIRED;
    d->out->step = step;
    snprintf(d->out->reason, sizeof d->out->reason, "%s", reason);
    nu__one_line(d->out->reason);
    return NU__DECIDED;
}

/* Remember the first gate of step 5; a later deny in step 5 still wins. */
static void nu__gate_later(nu__decide_t *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void nu__gate_later(nu__decide_t *d, const char *fmt, ...)
{
    va_list ap;

    if (d->gated)
        return;
    d->gated = true;
    va_start(ap, fmt);
    vsnprintf(d->gate_reason, sizeof d->gate_reason, fmt, ap);
    va_end(ap);
}

/* --- step 2: classification ------------------------------------------ */

static const char *nu__flag_name(unsigned flag)
{
    switch (flag) {
    case NU_CMDF_DYNAMIC_PROGRAM: return "dynamic_program";
    case NU_CMDF_SHELL_EVAL: return "shell_eval";
    case NU_CMDF_INLINE_CODE: return "inline_code";
    case NU_CMDF_EXEC_OPTION: return "exec_option";
    case NU_CMDF_DANGEROUS_ENV: return "dangerous_env";
    case NU_CMDF_NETWORK: return "network";
    case NU_CMDF_TOO_COMPLEX: return "too_complex";
    case NU_CMDF_PARSE_ERROR: return "parse_error";
    case NU_CMDF_BACKGROUND: return "background";
    }
    return "unknown";
}

static void nu__append(char *buf, size_t size, size_t *len, const char *s)
{
    if (*len + 1 >= size)
        return;
    int n = snprintf(buf + *len, size - *len, "%s", s);
    if (n < 0 || (size_t)n >= size - *len) {
        *len = size - 1;
        if (size >= 4)
            memcpy(buf + size - 4, "...", 4);
        return;
    }
    *len += (size_t)n;
}

/* One line per command for :explain, "prog args [op, flag, ...]; ...". */
static void nu__summarize(nu__decide_t *d)
{
    char *buf = d->out->cmd_summary;
    size_t size = sizeof d->out->cmd_summary;
    size_t len = 0;
    char word[48];

    buf[0] = '\0';
    for (size_t i = 0; i < d->cmd.ncmds; i++) {
        const nu_simple_cmd_t *c = &d->cmd.cmds[i];
        if (i > 0)
            nu__append(buf, size, &len, "; ");
        for (int a = 0; a < c->argc && a < 8; a++) {
            snprintf(word, sizeof word, "%s%.40s", a ? " " : "", c->argv[a]);
            nu__append(buf, size, &len, word);
        }
        if (c->argc > 8)
            nu__append(buf, size, &len, " ...");
        nu__append(buf, size, &len, " [");
        nu__append(buf, size, &len, nu_op_name(c->operation));
        for (unsigned bit = 1; bit <= NU_CMDF_BACKGROUND; bit <<= 1) {
            if (c->flags & bit) {
                nu__append(buf, size, &len, ", ");
                nu__append(buf, size, &len, nu__flag_name(bit));
            }
        }
        nu__append(buf, size, &len, "]");
    }
    if (d->cmd.ncmds == 0 && d->cmd.flags != 0)
        nu__append(buf, size, &len, d->cmd.reason);
    nu__one_line(buf);
}

static int nu__classify_run(nu__decide_t *d)
{
    int rc;

    if (d->req.command != NULL) {
        rc = nu_classify_shell(d->req.command, &d->cmd);
    } else {
        size_t argc = json_array_size(d->req.argv);
        char *argv[NU_DECIDE_MAX_ARGV + 1];
        for (size_t i = 0; i < argc; i++)
            argv[i] = (char *)json_string_value(json_array_get(d->req.argv, i));
        argv[argc] = NULL;
        rc = nu_classify_argv((int)argc, argv, &d->cmd);
    }
    if (rc != NU_OK)
        return rc;
    d->have_cmd = true;

    d->out->operation = d->cmd.operation;
    d->out->ops = d->cmd.ops | NU_OPSET(NU_OP_RUN_BASH) |
                  NU_OPSET(d->cmd.operation);
    d->out->cmd_flags = d->cmd.flags;
    d->out->cmd_count = d->cmd.ncmds;
    nu__summarize(d);
    return NU_OK;
}

static bool nu__labelled(const nu_strset_t *labels, const char *path)
{
    if (labels == NULL)
        return false;
    if (labels->top)
        return true;
    for (size_t i = 0; i < labels->count; i++)
        if (nu_glob_match_path(labels->items[i], path))
            return true;
    return false;
}

/* Does every destination the pod can reach belong to network.trusted? */
static bool nu__egress_only_trusted(const nu_perm_t *p)
{
    const nu_strset_t *sets[] = {&p->network.allow, &p->network.domains};

    if (p->network.trusted.top)
        return true;
    for (size_t s = 0; s < 2; s++) {
        if (sets[s]->top)
            return false;
        for (size_t i = 0; i < sets[s]->count; i++)
            if (!nu_strset_contains(&p->network.trusted, sets[s]->items[i]))
                return false;
    }
    return true;
}

/* The exposure legs this call adds (docs/pipeline.md, "Exposure"). */
static unsigned nu__legs(const nu__decide_t *d)
{
    const nu_decide_ctx_t *ctx = d->ctx;

    switch (d->req.tool) {
    case NU__TOOL_READ:
    case NU__TOOL_GLOB:
    case NU__TOOL_GREP:
        if (d->path_rc != NU_OK)
            return NU_LEG_PRIVATE;
        if (nu__labelled(ctx->untrusted_paths, d->path))
            return NU_LEG_UNTRUSTED;
        if (nu__labelled(ctx->public_paths, d->path))
            return 0;
        return NU_LEG_PRIVATE;
    case NU__TOOL_WRITE:
    case NU__TOOL_EDIT:
        return 0;
    case NU__TOOL_RUN: {
        unsigned legs = NU_LEG_PRIVATE;
        bool trusted_only = ctx->egress && nu__egress_only_trusted(d->perm);
        if (ctx->egress && !trusted_only)
            legs |= NU_LEG_UNTRUSTED | NU_LEG_EXFIL;
        /* git push and PR creation exist to send data out, so they are
         * exfiltration operations even in a pod without egress (the
         * design lists them unconditionally, and a push may go through
         * a later egress grant).  Egress that reaches only trusted
         * destinations is the exception: sending there is not
         * exfiltration. */
        if ((d->out->ops & (NU_OPSET(NU_OP_GIT_PUSH) | NU_OPSET(NU_OP_CREATE_PR))) &&
            !trusted_only)
            legs |= NU_LEG_EXFIL;
        return legs;
    }
    case NU__TOOL_WEB_FETCH:
        if (nu_perm_host_trusted(d->perm, d->req.url.host))
            return 0;
        return NU_LEG_UNTRUSTED | NU_LEG_EXFIL;
    }
    return NU_LEGS_ALL;
}

static const nu_op_t nu__tool_ops[] = {
    [NU__TOOL_READ] = NU_OP_READ_FILES,
    [NU__TOOL_WRITE] = NU_OP_WRITE_FILES,
    [NU__TOOL_EDIT] = NU_OP_EDIT_FILES,
    [NU__TOOL_GLOB] = NU_OP_GLOB_SEARCH,
    [NU__TOOL_GREP] = NU_OP_GREP_SEARCH,
    [NU__TOOL_RUN] = NU_OP_RUN_BASH,
    [NU__TOOL_WEB_FETCH] = NU_OP_WEB_FETCH,
};

/* Normalize a path argument; an absent or empty one is the workspace
 * root. */
static int nu__normalize(const char *path, char *out, size_t size)
{
    if (path[0] == '\0') {
        out[0] = '\0';
        return NU_OK;
    }
    return nu_path_normalize(path, out, size);
}

static int nu__step2_classify(nu__decide_t *d)
{
    d->out->operation = nu__tool_ops[d->req.tool];
    d->out->ops = NU_OPSET(d->out->operation);

    d->path_rc = nu__normalize(d->req.path, d->path, sizeof d->path);
    if (d->req.tool == NU__TOOL_RUN) {
        d->cwd_rc = nu__normalize(d->req.cwd, d->cwd, sizeof d->cwd);
        int rc = nu__classify_run(d);
        if (rc != NU_OK)
            return rc;
    }

    d->out->legs = nu__legs(d);
    return NU__NEXT;
}

/* --- step 3: time window and budget ----------------------------------- */

static int nu__step3_time_budget(nu__decide_t *d)
{
    const nu_timewin_t *t = &d->perm->time;
    const nu_budget_t *max = &d->perm->budget;
    const nu_budget_t *spent = &d->ctx->spent;
    int64_t now = d->ctx->now;

    /* NOTE: an unresolved ttl is ignored here; the pod resolves it into
     * not_after when it starts (nu_perm_resolve_time). */
    if (now < t->not_before)
        return nu__deny(d, 3, NU_KIND_TIME_EXPIRED,
                        "time: permission not valid before %lld (now %lld)",
                        (long long)t->not_before, (long long)now);
    if (now >= t->not_after)
        return nu__deny(d, 3, NU_KIND_TIME_EXPIRED,
                        "time: permission expired at %lld (now %lld)",
                        (long long)t->not_after, (long long)now);

    if (spent->tool_calls >= max->tool_calls)
        return nu__deny(d, 3, NU_KIND_BUDGET_EXHAUSTED,
                        "budget: %lld of %lld tool calls used",
                        (long long)spent->tool_calls,
                        (long long)max->tool_calls);
    if (spent->usd >= max->usd)
        return nu__deny(d, 3, NU_KIND_BUDGET_EXHAUSTED,
                        "budget: %.4f of %.4f USD spent", spent->usd,
                        max->usd);
    if (spent->input_tokens >= max->input_tokens)
        return nu__deny(d, 3, NU_KIND_BUDGET_EXHAUSTED,
                        "budget: %lld of %lld input tokens used",
                        (long long)spent->input_tokens,
                        (long long)max->input_tokens);
    if (spent->output_tokens >= max->output_tokens)
        return nu__deny(d, 3, NU_KIND_BUDGET_EXHAUSTED,
                        "budget: %lld of %lld output tokens used",
                        (long long)spent->output_tokens,
                        (long long)max->output_tokens);
    return NU__NEXT;
}

/* --- step 4: capabilities --------------------------------------------- */

static int nu__step4_capabilities(nu__decide_t *d)
{
    for (int op = 0; op < NU_OP_COUNT; op++) {
        if (!(d->out->ops & NU_OPSET(op)))
            continue;
        if (d->perm->caps[op] < NU_LOW_RISK)
            return nu__deny(d, 4, NU_KIND_CAPABILITY_DENIED,
                            "capability: operation '%s' is not granted "
                            "(level 'never')",
                            nu_op_name((nu_op_t)op));
    }
    return NU__NEXT;
}

/* --- step 5: paths ----------------------------------------------------- */

static int nu__deny_path_rc(nu__decide_t *d, const char *what,
                            const char *path, int rc)
{
    if (rc == NU_EPERM)
        return nu__deny(d, 5, NU_KIND_PATH_DENIED,
                        "path: %s '%.200s' is outside the workspace", what,
                        path);
    return nu__deny(d, 5, NU_KIND_PATH_DENIED,
                    "path: cannot resolve %s '%.200s': %s", what, path,
                    nu_strerror(rc));
}

/* Check a normalized path; "what" names it in the reason. */
static int nu__check_path(nu__decide_t *d, const char *what, const char *path,
                          nu_access_t access)
{
    const char *rule = NULL;

    if (nu_perm_check_path(d->perm, path, access, &rule))
        return NU__NEXT;
    if (rule != NULL)
        return nu__deny(d, 5, NU_KIND_PATH_DENIED,
                        "path: %s '%.200s' matches %s pattern '%.100s'", what,
                        *path ? path : ".",
                        access == NU_ACCESS_WRITE &&
                                nu_strset_contains(&d->perm->paths.write_block,
                                                   rule)
                            ? "write_block"
                            : "block",
                        rule);
    return nu__deny(d, 5, NU_KIND_PATH_DENIED,
                    "path: %s '%.200s' matches no allow pattern", what,
                    *path ? path : ".");
}

/* A glob pattern may not climb out of its root or name an absolute path
 * outside the workspace. */
static int nu__check_pattern(nu__decide_t *d, const char *what,
                             const char *pattern)
{
    char norm[NU_PATH_MAX + 1];
    const char *p = pattern;

    if (pattern == NULL)
        return NU__NEXT;
    if (pattern[0] == '/') {
        int rc = nu_path_normalize(pattern, norm, sizeof norm);
        if (rc != NU_OK)
            return nu__deny_path_rc(d, what, pattern, rc);
    }
    while (*p) {
        size_t len = strcspn(p, "/");
        if (len == 2 && p[0] == '.' && p[1] == '.')
            return nu__deny(d, 5, NU_KIND_PATH_DENIED,
                            "path: %s '%.200s' contains '..' (search below "
                            "the root instead)",
                            what, pattern);
        p += len;
        if (*p == '/')
            p++;
    }
    return NU__NEXT;
}

static int nu__step5_file_tool(nu__decide_t *d)
{
    nu_access_t access = NU_ACCESS_READ;
    int rc;

    if (d->req.tool == NU__TOOL_WRITE || d->req.tool == NU__TOOL_EDIT)
        access = NU_ACCESS_WRITE;
    if (d->path_rc != NU_OK)
        return nu__deny_path_rc(d, "path", d->req.path, d->path_rc);

    rc = nu__check_path(d, "path", d->path, access);
    if (rc != NU__NEXT)
        return rc;

    /* Glob and grep check their root only.  The executor filters matches
     * below it when the caller passes the block set as "exclude". */
    if (d->req.tool == NU__TOOL_GLOB)
        return nu__check_pattern(d, "pattern", d->req.pattern);
    if (d->req.tool == NU__TOOL_GREP)
        return nu__check_pattern(d, "glob", d->req.pattern);
    return NU__NEXT;
}

/* --- step 5: network ---------------------------------------------------- */

static int nu__check_host(nu__decide_t *d, const nu_url_t *url)
{
    if (nu_perm_check_host(d->perm, url->host, url->port))
        return NU__NEXT;
    return nu__deny(d, 5, NU_KIND_NETWORK_DENIED,
                    "network: host '%s' port %d is not in the network "
                    "allowlist",
                    url->host, url->port);
}

/* Loopback inside a pod is the pod's own network namespace. */
static bool nu__loopback(const nu_url_t *url)
{
    return strcmp(url->host, "localhost") == 0 ||
           strncmp(url->host, "127.", 4) == 0 || strcmp(url->host, "::1") == 0;
}

/* URLs on the command line of a network command (curl, wget, ...). */
static int nu__check_cmd_urls(nu__decide_t *d, const nu_simple_cmd_t *c)
{
    nu_url_t url;
    nu_err_t err;

    for (int a = 1; a < c->argc; a++) {
        const char *arg = c->argv[a];
        if (strncasecmp(arg, "http://", 7) != 0 &&
            strncasecmp(arg, "https://", 8) != 0)
            continue;
        if (nu_url_parse(arg, &url, &err) != NU_OK)
            return nu__deny(d, 5, NU_KIND_NETWORK_DENIED, "network: %s",
                            err.msg);
        if (nu__loopback(&url))
            continue;
        int rc = nu__check_host(d, &url);
        if (rc != NU__NEXT)
            return rc;
    }
    return NU__NEXT;
}

/* --- step 5: commands --------------------------------------------------- */

static bool nu__device_ok(const char *target)
{
    static const char *const devices[] = {"/dev/null", "/dev/stdin",
                                          "/dev/stdout", "/dev/stderr", NULL};

    for (size_t i = 0; devices[i] != NULL; i++)
        if (strcmp(target, devices[i]) == 0)
            return true;
    if (strncmp(target, "/dev/fd/", 8) == 0 && target[8] != '\0' &&
        strspn(target + 8, "0123456789") == strlen(target + 8))
        return true;
    return false;
}

static bool nu__private_tmp(const char *target)
{
    if (strncmp(target, "/tmp/", 5) != 0)
        return false;
    for (const char *p = target + 4; (p = strstr(p, "/..")) != NULL; p += 3)
        if (p[3] == '/' || p[3] == '\0')
            return false;
    return true;
}

static int nu__check_redirect(nu__decide_t *d, const nu_redirect_t *r)
{
    char joined[2 * NU_PATH_MAX + 2];
    char norm[NU_PATH_MAX + 1];
    const char *what = r->write ? "redirect target" : "redirect source";

    if (r->dynamic)
        return nu__deny(d, 5, NU_KIND_PATH_DENIED,
                        "path: cannot check %s '%.200s': it contains an "
                        "expansion (write a literal file name)",
                        what, r->target);
    if (nu__device_ok(r->target) || nu__private_tmp(r->target))
        return NU__NEXT;

    if (r->target[0] == '/' || d->cwd[0] == '\0')
        snprintf(joined, sizeof joined, "%s", r->target);
    else
        snprintf(joined, sizeof joined, "%s/%s", d->cwd, r->target);
    int rc = nu_path_normalize(joined, norm, sizeof norm);
    if (rc != NU_OK)
        return nu__deny_path_rc(d, what, r->target, rc);
    return nu__check_path(d, what, norm,
                          r->write ? NU_ACCESS_WRITE : NU_ACCESS_READ);
}

static int nu__check_flags(nu__decide_t *d, const nu_simple_cmd_t *c)
{
    bool finite = !d->perm->commands.allow.top;
    bool always = d->perm->caps[NU_OP_RUN_BASH] >= NU_ALWAYS;
    const char *prog = c->argc > 0 ? c->argv[0] : "";
    unsigned unresolved = c->flags & (NU_CMDF_DYNAMIC_PROGRAM |
                                      NU_CMDF_SHELL_EVAL);
    unsigned risky = c->flags & (NU_CMDF_INLINE_CODE | NU_CMDF_EXEC_OPTION |
                                 NU_CMDF_DANGEROUS_ENV);

    for (unsigned bit = 1; bit <= NU_CMDF_DANGEROUS_ENV; bit <<= 1) {
        if (!((unresolved | risky) & bit))
            continue;
        if (finite)
            return nu__deny(d, 5, NU_KIND_COMMAND_DENIED,
                            "command: '%.100s' is flagged %s, which a finite "
                            "command allow list does not permit",
                            prog, nu__flag_name(bit));
        if ((unresolved & bit) || !always)
            nu__gate_later(d,
                           "command: '%.100s' is flagged %s and needs "
                           "approval",
                           prog, nu__flag_name(bit));
    }
    return NU__NEXT;
}

/* Does a shell or interpreter run its program from standard input?  That
 * is the case when no argument other than options (or "-") names a
 * script file.
 * NOTE: an option that takes a separate value ("python -W ignore") is
 * taken for a script name, so such a command is not flagged. */
static unsigned nu__stdin_program_flag(const nu_simple_cmd_t *c)
{
    static const char *const shells[] = {"sh", "bash", "dash", "zsh", "ksh",
                                         "mksh", "ash", "fish", NULL};
    static const char *const interpreters[] = {
        "python", "node", "nodejs", "perl", "ruby", "php", "lua", "Rscript",
        "deno", "bun", "tclsh", "awk", NULL};
    const char *base;
    unsigned flag = 0;

    if (c->argc < 1)
        return 0;
    base = strrchr(c->argv[0], '/');
    base = base ? base + 1 : c->argv[0];

    for (size_t i = 0; shells[i] != NULL; i++)
        if (strcmp(base, shells[i]) == 0)
            flag = NU_CMDF_SHELL_EVAL;
    for (size_t i = 0; flag == 0 && interpreters[i] != NULL; i++)
        if (strncmp(base, interpreters[i], strlen(interpreters[i])) == 0 &&
            strspn(base + strlen(interpreters[i]), "0123456789.") ==
                strlen(base + strlen(interpreters[i])))
            flag = NU_CMDF_INLINE_CODE;
    if (flag == 0)
        return 0;

    for (int a = 1; a < c->argc; a++)
        if (c->argv[a][0] != '-' || strcmp(c->argv[a], "--") == 0)
            return 0;
    return flag;
}

/* A call's stdin feeds the first command.  When that command runs its
 * program from stdin, the program is code no rule has seen, so it gets the
 * flag the same code would get on the command line: SHELL_EVAL for a
 * shell, INLINE_CODE for an interpreter. */
static int nu__check_stdin_program(nu__decide_t *d)
{
    const json_t *in = json_object_get(d->call, "stdin");
    nu_simple_cmd_t probe;

    if (!json_is_string(in) || json_string_length(in) == 0 ||
        d->cmd.ncmds == 0)
        return NU__NEXT;

    probe = d->cmd.cmds[0];
    probe.flags = nu__stdin_program_flag(&d->cmd.cmds[0]);
    if (probe.flags == 0)
        return NU__NEXT;
    d->out->cmd_flags |= probe.flags;
    return nu__check_flags(d, &probe);
}

static int nu__check_simple(nu__decide_t *d, const nu_simple_cmd_t *c)
{
    const char *rule = NULL;
    int rc;

    if (c->argc > 0 && !nu_perm_check_command(d->perm, c->argc, c->argv,
                                              &rule)) {
        if (rule != NULL)
            return nu__deny(d, 5, NU_KIND_COMMAND_DENIED,
                            "command: '%.100s' matches block rule '%.100s'",
                            c->argv[0], rule);
        return nu__deny(d, 5, NU_KIND_COMMAND_DENIED,
                        "command: '%.100s' matches no allow rule",
                        c->argv[0]);
    }

    rc = nu__check_flags(d, c);
    if (rc != NU__NEXT)
        return rc;

    for (size_t i = 0; i < c->nredirects; i++) {
        rc = nu__check_redirect(d, &c->redirects[i]);
        if (rc != NU__NEXT)
            return rc;
    }

    if (c->operation == NU_OP_WEB_FETCH || (c->flags & NU_CMDF_NETWORK))
        return nu__check_cmd_urls(d, c);
    return NU__NEXT;
}

/* The call's env object sets variables for every command, just as
 * "env NAME=value prog" would, so it gets the same dangerous-variable
 * check.  The classifier analyzes "env NAME=value ... true", and a
 * DANGEROUS_ENV flag there is handled as on a command (see
 * nu__check_flags). */
static int nu__check_call_env(nu__decide_t *d)
{
    char *argv[NU_DECIDE_MAX_ENV + 3];
    char *assign[NU_DECIDE_MAX_ENV];
    nu_cmd_analysis_t env_cmd;
    const char *key;
    const json_t *value;
    size_t n = 0;
    int rc = NU__NEXT;

    if (d->req.env == NULL || json_object_size(d->req.env) == 0)
        return NU__NEXT;

    argv[0] = "env";
    json_object_foreach((json_t *)d->req.env, key, value) {
        if (asprintf(&assign[n], "%s=%s", key, json_string_value(value)) < 0)
            goto nomem;
        argv[1 + n] = assign[n];
        n++;
    }
    argv[1 + n] = "true";
    argv[2 + n] = NULL;

    if (nu_classify_argv((int)n + 2, argv, &env_cmd) != NU_OK)
        goto nomem;
    if (env_cmd.flags & NU_CMDF_DANGEROUS_ENV) {
        if (!d->perm->commands.allow.top)
            rc = nu__deny(d, 5, NU_KIND_COMMAND_DENIED,
                          "command: the env object is flagged dangerous_env "
                          "(%s), which a finite command allow list does not "
                          "permit",
                          env_cmd.reason);
        else if (d->perm->caps[NU_OP_RUN_BASH] < NU_ALWAYS)
            nu__gate_later(d,
                           "command: the env object is flagged dangerous_env "
                           "(%s) and needs approval",
                           env_cmd.reason);
    }
    nu_cmd_analysis_free(&env_cmd);
    goto cleanup;

nomem:
    rc = nu__deny(d, 5, NU_KIND_INTERNAL,
                  "decide: cannot check the env object: out of memory");
cleanup:
    for (size_t i = 0; i < n; i++)
        free(assign[i]);
    return rc;
}

static int nu__step5_run(nu__decide_t *d)
{
    int rc;

    if (d->cmd.flags & NU_CMDF_PARSE_ERROR)
        return nu__deny(d, 5, NU_KIND_COMMAND_DENIED,
                        "command: cannot parse the shell string: %s",
                        d->cmd.reason[0] ? d->cmd.reason : "invalid syntax");
    if (d->cmd.flags & NU_CMDF_TOO_COMPLEX)
        return nu__deny(d, 5, NU_KIND_COMMAND_DENIED,
                        "command: cannot analyze the shell string: %s",
                        d->cmd.reason[0] ? d->cmd.reason
                                         : "over the parser's limits");

    if (d->cwd_rc != NU_OK)
        return nu__deny_path_rc(d, "cwd", d->req.cwd, d->cwd_rc);
    rc = nu__check_path(d, "cwd", d->cwd, NU_ACCESS_READ);
    if (rc != NU__NEXT)
        return rc;
    rc = nu__check_call_env(d);
    if (rc != NU__NEXT)
        return rc;
    rc = nu__check_stdin_program(d);
    if (rc != NU__NEXT)
        return rc;

    for (size_t i = 0; i < d->cmd.ncmds; i++) {
        rc = nu__check_simple(d, &d->cmd.cmds[i]);
        if (rc != NU__NEXT)
            return rc;
    }

    if (d->gated)
        return nu__gate(d, 5, NU_OP_RUN_BASH, d->gate_reason);
    return NU__NEXT;
}

static int nu__step5_rules(nu__decide_t *d)
{
    switch (d->req.tool) {
    case NU__TOOL_RUN:
        return nu__step5_run(d);
    case NU__TOOL_WEB_FETCH:
        return nu__check_host(d, &d->req.url);
    default:
        return nu__step5_file_tool(d);
    }
}

/* --- steps 6 and 7: obligations and the trifecta gate ----------------- */

static int nu__step6_obligations(nu__decide_t *d)
{
    nu_opset_t due = d->out->ops & d->perm->obligations;
    char reason[NU_ERR_MAX];
    int op;

    if (due == 0)
        return NU__NEXT;

    /* Name the call's own operation when it is due, else the first one. */
    op = d->out->operation;
    if (!(due & NU_OPSET(op)))
        for (op = 0; !(due & NU_OPSET(op)); op++)
            ;
    snprintf(reason, sizeof reason,
             "obligation: operation '%s' requires approval",
             nu_op_name((nu_op_t)op));
    return nu__gate(d, 6, (nu_op_t)op, reason);
}

static int nu__step7_trifecta(nu__decide_t *d)
{
    unsigned legs = d->out->legs;
    unsigned seen = d->ctx->exposure | legs;
    char reason[NU_ERR_MAX];

    if (!(legs & NU_LEG_EXFIL))
        return NU__NEXT;
    if ((seen & (NU_LEG_PRIVATE | NU_LEG_UNTRUSTED)) !=
        (NU_LEG_PRIVATE | NU_LEG_UNTRUSTED))
        return NU__NEXT;

    snprintf(reason, sizeof reason,
             "trifecta: the session has read private data and untrusted "
             "content%s, and '%s' can send data out",
             (d->ctx->exposure & (NU_LEG_PRIVATE | NU_LEG_UNTRUSTED)) ==
                     (NU_LEG_PRIVATE | NU_LEG_UNTRUSTED)
                 ? ""
                 : " (this call completes the set)",
             nu_op_name(d->out->operation));
    return nu__gate(d, 7, d->out->operation, reason);
}

/* --- the pipeline ------------------------------------------------------ */

int nu_decide(const nu_perm_t *perm, const json_t *call,
              const nu_decide_ctx_t *ctx, nu_decision_t *out)
{
    static const nu_decide_ctx_t fresh;
    static int (*const steps[])(nu__decide_t *) = {
        nu__step3_time_budget, nu__step4_capabilities, nu__step5_rules,
        nu__step6_obligations, nu__step7_trifecta};
    char invalid[NU_ERR_MAX];
    nu__decide_t d;
    int rc = NU_OK;

    memset(out, 0, sizeof *out);
    out->verdict = NU_DECISION_ALLOW;
    out->kind = NU_KIND_NONE;
    memset(&d, 0, sizeof d);
    d.perm = perm;
    d.call = call;
    d.ctx = ctx ? ctx : &fresh;
    d.out = out;

    if (perm == NULL) {
        rc = NU_EINVAL;
        goto cleanup;
    }

    if (nu__decide_validate(call, &d.req, invalid, sizeof invalid) != NU_OK) {
        /* ops stays empty unless the tool is known, which is how
         * nu_decision_op_name distinguishes "invalid" from an operation. */
        if (d.req.tool_known) {
            out->operation = nu__tool_ops[d.req.tool];
            out->ops = NU_OPSET(out->operation);
        }
        nu__deny(&d, 1, NU_KIND_INVALID_REQUEST, "%s", invalid);
        goto cleanup;
    }

    rc = nu__step2_classify(&d);
    if (rc < 0)
        goto cleanup;

    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        if (steps[i](&d) == NU__DECIDED)
            goto cleanup;
    }

cleanup:
    if (rc < 0) {
        out->verdict = NU_DECISION_DENY;
        out->kind = NU_KIND_INTERNAL;
        out->step = 2;
        out->approval_key[0] = '\0';
        snprintf(out->reason, sizeof out->reason,
                 "decide: cannot decide the call: %s", nu_strerror(rc));
    }
    if (d.have_cmd)
        nu_cmd_analysis_free(&d.cmd);
    return rc;
}
