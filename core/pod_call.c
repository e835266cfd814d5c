/*
 * pod_call.c - the tool-call pipeline: the one path from a front end to the
 * executor.
 *
 * Steps 1-8 are nu_profile_eval (decide.h and policy.h).  This file adds
 * what needs session state:
 *
 *   a. symlink-safe resolution: the call's path (or run's cwd) is resolved
 *      inside the workspace on the host.  When it names another file than
 *      the lexical path (a symlink), the call is decided again with the
 *      resolved path, and the stricter decision wins.  A path that
 *      resolves outside the workspace is path_denied.
 *   9. approvals: grant (consumed once) -> approve hook -> callback ->
 *      pending;
 *  10. budget reservation, the "decision" audit event (committed before
 *      anything runs: no audit, no execution), execution, settlement;
 *  11. redaction of the result, exposure update, the "tool_call" audit
 *      event with the result digest.
 *
 * Audit events on the way: "decision" for every call (allow, deny or
 * approval_required), "approval_request", "approval_grant" and
 * "approval_deny" for step 9, "tool_call" after execution, "policy_error"
 * when the check hook failed.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nucleus/executor.h"
#include "nucleus/json.h"
#include "nucleus/log.h"
#include "pod_internal.h"

static void nu__result_deny(nu_call_result_t *out, nu_kind_t kind, int step,
                            const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void nu__result_deny(nu_call_result_t *out, nu_kind_t kind, int step,
                            const char *fmt, ...)
{
    va_list ap;

    out->decision.verdict = NU_DECISION_DENY;
    out->decision.kind = kind;
    out->decision.step = step;
    va_start(ap, fmt);
    vsnprintf(out->decision.reason, sizeof out->decision.reason, fmt, ap);
    va_end(ap);
}

/* The argument that names a file or directory for path resolution. */
static const char *nu__path_arg(const json_t *call)
{
    const char *tool = json_string_value(json_object_get(call, "tool"));

    if (tool == NULL)
        return NULL;
    if (strcmp(tool, "read") == 0 || strcmp(tool, "write") == 0 ||
        strcmp(tool, "edit") == 0 || strcmp(tool, "glob") == 0 ||
        strcmp(tool, "grep") == 0)
        return "path";
    if (strcmp(tool, "run") == 0)
        return "cwd";
    return NULL;
}

/* Order verdicts by strictness: allow < approval_required < deny. */
static int nu__verdict_rank(nu_verdict_t v)
{
    if (v == NU_DECISION_DENY)
        return 2;
    if (v == NU_DECISION_APPROVAL)
        return 1;
    return 0;
}

/*
 * Resolve the call's path inside the workspace and, when it differs from
 * what the agent wrote, decide again on the resolved path.  On return
 * *exec_call is the call to execute (a new reference: the original, or a
 * copy naming the resolved path).
 */
static void nu__resolve_and_recheck(nu_pod_t *pod, const nu_perm_t *perm,
                                    const json_t *call,
                                    const nu_decide_ctx_t *dctx,
                                    const nu_policy_ctx_t *pctx,
                                    nu_call_result_t *out, json_t **exec_call)
{
    const char *key = nu__path_arg(call);
    const char *path = key ? json_string_value(json_object_get(call, key)) : NULL;
    char lexical[NU_PATH_MAX];
    char *rel = NULL;
    nu_decision_t again;
    nu_err_t err;
    int rc;

    *exec_call = json_incref((json_t *)call);
    if (path == NULL)
        return;

    rc = nu_resolve_path(pod->workspace_fd, "/workspace", path, &rel, &err);
    if (rc == NU_EDENIED) {
        nu__result_deny(out, NU_KIND_PATH_DENIED, 5, "%s", err.msg);
        return;
    }
    if (rc != NU_OK)
        return;     /* missing parents and the like: the executor reports */

    if (nu_path_normalize(path, lexical, sizeof lexical) == NU_OK &&
        (strcmp(lexical, rel) == 0 ||
         (lexical[0] == '\0' && strcmp(rel, ".") == 0))) {
        free(rel);
        return;
    }

    json_t *copy = json_deep_copy(call);
    if (copy == NULL || json_object_set_new(copy, key, json_string(rel)) != 0) {
        json_decref(copy);
        free(rel);
        nu__result_deny(out, NU_KIND_INTERNAL, 0, "%s", "out of memory");
        return;
    }
    free(rel);

    (void)perm;
    nu_profile_eval(pod->profile, copy, dctx, pctx, &again, NULL);
    if (nu__verdict_rank(again.verdict) > nu__verdict_rank(out->decision.verdict)) {
        char key_copy[NU_APPROVAL_KEY_MAX];
        memcpy(key_copy, out->decision.approval_key, sizeof key_copy);
        out->decision = again;
        /* The agent names the call it made, so keep that call's key. */
        if (again.verdict == NU_DECISION_APPROVAL && key_copy[0] != '\0')
            memcpy(out->decision.approval_key, key_copy, sizeof key_copy);
        else if (again.verdict == NU_DECISION_APPROVAL)
            nu_approval_key(again.operation, call, out->decision.approval_key);
    }

    json_decref(*exec_call);
    *exec_call = copy;
}

static int nu__audit_decision(nu_pod_t *pod, const json_t *call,
                              const nu_call_result_t *out, nu_err_t *err)
{
    const nu_decision_t *d = &out->decision;
    const char *tool = json_string_value(json_object_get(call, "tool"));

    return nu__pod_audit(pod, "decision", tool, nu_decision_op_name(d), call,
                         nu_verdict_name(d->verdict),
                         d->kind != NU_KIND_NONE ? nu_kind_name(d->kind) : NULL,
                         d->reason[0] ? d->reason : NULL, NULL, NULL, err);
}

/* Record a pipeline failure in the result and log it. */
static int nu__fail_io(nu_pod_t *pod, nu_call_result_t *out, const nu_err_t *err)
{
    nu_log(NU_LOG_ERROR, "pod", "%s: audit log failed, call not executed: %s",
           pod->id, err->msg);
    nu__result_deny(out, NU_KIND_IO_ERROR, 11,
                    "audit log unavailable, the call was not executed: %.400s",
                    err->msg);
    return NU_EIO;
}

static json_t *nu__approval_request(const nu_call_result_t *out,
                                    const json_t *call)
{
    return json_pack("{s:s, s:s, s:O, s:s}", "operation",
                     nu_decision_op_name(&out->decision), "approval_key",
                     out->decision.approval_key, "call", call, "reason",
                     out->decision.reason);
}

/*
 * Step 9.  Returns true when the call may run.  The pod lock is not held
 * on entry or exit: hooks and callbacks run without it.
 */
static bool nu__resolve_approval(nu_pod_t *pod, const json_t *call,
                                 const nu_decide_ctx_t *dctx,
                                 const nu_policy_ctx_t *pctx,
                                 nu_call_result_t *out, int *rc)
{
    const char *key = out->decision.approval_key;
    nu_approve_t answer = NU_APPROVE_ASK;
    const char *source = "";
    json_t *request;
    nu_err_t err, hook_err;

    pthread_mutex_lock(&pod->lock);
    bool granted = nu__approval_consume(pod, key, dctx->now, out->approved_by,
                                        sizeof out->approved_by);
    pthread_mutex_unlock(&pod->lock);
    if (granted) {
        snprintf(out->approved_by, sizeof out->approved_by, "grant");
        return true;
    }

    request = nu__approval_request(out, call);
    if (request == NULL) {
        nu__result_deny(out, NU_KIND_INTERNAL, 9, "%s", "out of memory");
        return false;
    }
    nu_redact_json(&pod->redactor, request);

    if (nu_profile_has_approve(pod->profile)) {
        if (nu_profile_approve(pod->profile, request, dctx, pctx, &answer,
                               &hook_err) != NU_OK) {
            answer = NU_APPROVE_DENY;
            source = "hook error";
        } else {
            source = "hook";
        }
    }
    if (answer == NU_APPROVE_ASK && pod->approve != NULL) {
        answer = pod->approve(pod, request, pod->approve_userdata);
        source = "callback";
    }

    pthread_mutex_lock(&pod->lock);
    if (answer == NU_APPROVE_APPROVE) {
        json_t *args = json_pack("{s:s, s:i, s:s}", "approval_key", key,
                                 "count", 1, "source", source);
        *rc = nu__pod_audit(pod, "approval_grant", NULL, NULL, args, "approve",
                            NULL, NULL, NULL, NULL, &err);
        json_decref(args);
        snprintf(out->approved_by, sizeof out->approved_by, "%s", source);
        nu__approval_remove_pending(pod, key);
        pod->grants_issued++;
    } else if (answer == NU_APPROVE_DENY) {
        *rc = nu__pod_audit(pod, "approval_deny", NULL, NULL, request, "deny",
                            "approval_denied", NULL, NULL, NULL, &err);
        nu__approval_remove_pending(pod, key);
        pod->denials++;
        out->decision.verdict = NU_DECISION_DENY;
        out->decision.kind = NU_KIND_APPROVAL_DENIED;
        out->decision.step = 9;
        if (strcmp(source, "hook error") == 0)
            snprintf(out->decision.reason, sizeof out->decision.reason,
                     "the approve hook failed: %.400s", hook_err.msg);
        else
            snprintf(out->decision.reason, sizeof out->decision.reason,
                     "approval denied by the %s", source);
    } else {
        *rc = nu__approval_add_pending(pod, key, nu_decision_op_name(&out->decision),
                                       call, out->decision.reason, dctx->now);
        if (*rc == NU_OK)
            *rc = nu__pod_audit(pod, "approval_request", NULL,
                                nu_decision_op_name(&out->decision), request,
                                "approval_required", "approval_required",
                                out->decision.reason, NULL, NULL, &err);
    }
    pthread_mutex_unlock(&pod->lock);
    json_decref(request);

    if (*rc != NU_OK) {
        nu__fail_io(pod, out, &err);
        return false;
    }
    return answer == NU_APPROVE_APPROVE;
}

/* Drop glob and grep matches that name blocked paths: the sandbox masks
 * their content, and their names are private too. */
static void nu__filter_matches(const nu_perm_t *perm, json_t *result)
{
    json_t *matches = json_object_get(result, "matches");
    size_t i = 0;

    if (!json_is_array(matches))
        return;
    while (i < json_array_size(matches)) {
        json_t *m = json_array_get(matches, i);
        const char *path = json_is_string(m) ? json_string_value(m)
                         : json_string_value(json_object_get(m, "file"));
        char norm[NU_PATH_MAX];

        if (path != NULL && nu_path_normalize(path, norm, sizeof norm) == NU_OK &&
            !nu_perm_check_path(perm, norm, NU_ACCESS_READ, NULL))
            json_array_remove(matches, i);
        else
            i++;
    }
}

/* Streamed output on its way to the caller.  Each stream keeps back the
 * bytes that could be the start of a credential value, so a value split
 * across two chunks is still replaced whole. */
typedef struct nu__hold {
    char *data;
    size_t len;
} nu__hold_t;

typedef struct nu__stream {
    nu_pod_t *pod;
    nu_pod_output_fn fn;
    void *userdata;
    size_t longest;              /* maximum credential value length */
    nu__hold_t hold[2];          /* stdout, stderr */
} nu__stream_t;

static void nu__stream_emit(nu__stream_t *st, const char *name, const char *data,
                            size_t len)
{
    size_t out_len;
    char *red;

    if (len == 0)
        return;
    red = nu_redact_string(&st->pod->redactor, data, len, &out_len);
    if (red != NULL)
        st->fn(name, red, out_len, st->userdata);
    free(red);
}

static void nu__stream_chunk(const char *name, const void *data, size_t len,
                             void *userdata)
{
    nu__stream_t *st = userdata;
    nu__hold_t *h = &st->hold[strcmp(name, "stderr") == 0];
    const nu_redactor_t *r = &st->pod->redactor;
    char *buf = realloc(h->data, h->len + len);
    size_t cut;

    if (buf == NULL)
        return;
    memcpy(buf + h->len, data, len);
    h->data = buf;
    h->len += len;

    /* Emit all but the last longest - 1 bytes, extended past any value
     * that starts before the cut and ends after it. */
    cut = h->len > st->longest - 1 ? h->len - (st->longest - 1) : 0;
    for (size_t i = 0; i < cut; i++)
        for (size_t v = 0; v < r->count; v++) {
            size_t vlen = strlen(r->values[v]);
            if (i + vlen > cut && i + vlen <= h->len &&
                memcmp(h->data + i, r->values[v], vlen) == 0)
                cut = i + vlen;
        }
    nu__stream_emit(st, name, h->data, cut);
    memmove(h->data, h->data + cut, h->len - cut);
    h->len -= cut;
}

static void nu__stream_flush(nu__stream_t *st)
{
    static const char *const names[2] = { "stdout", "stderr" };

    for (int i = 0; i < 2; i++) {
        nu__stream_emit(st, names[i], st->hold[i].data, st->hold[i].len);
        free(st->hold[i].data);
        st->hold[i].data = NULL;
        st->hold[i].len = 0;
    }
}

/* Run exec_call in the pod, streaming run output through st when st is
 * not NULL. */
static int nu__sandbox_run(nu_pod_t *pod, const json_t *exec_call,
                           nu__stream_t *st, json_t **result, nu_err_t *err)
{
    const char *tool = json_string_value(json_object_get(exec_call, "tool"));
    nu_frame_t frame = { 0 };
    json_t *request;
    int rc;

    /* The pod streams argv commands without env or stdin; anything else
     * runs unstreamed and its output comes in the result. */
    if (st == NULL || tool == NULL || strcmp(tool, "run") != 0 ||
        json_object_get(exec_call, "env") != NULL ||
        json_object_get(exec_call, "stdin") != NULL)
        return nu_sandbox_tool(pod->sandbox, exec_call, result, err);

    request = json_deep_copy(exec_call);
    if (request == NULL)
        return nu_err_set(err, NU_ENOMEM, "pod: out of memory");
    json_t *command = json_object_get(request, "command");
    if (json_is_string(command)) {
        /* What the executor does with a shell string, spelled as argv. */
        json_object_set_new(request, "argv", json_pack("[s, s, O]", "/bin/sh",
                                                       "-c", command));
        json_object_del(request, "command");
    }
    json_object_set_new(request, "stream", json_true());
    rc = nu_sandbox_call(pod->sandbox, request, NULL, 0, nu__stream_chunk, st,
                         &frame, err);
    json_decref(request);
    nu__stream_flush(st);
    if (rc != NU_OK) {
        *result = json_pack("{s:b, s:s, s:s}", "ok", 0, "kind", "sandbox_error",
                            "error", err->msg);
        return rc;
    }
    json_object_del(frame.json, "id");
    *result = json_incref(frame.json);
    nu_frame_free(&frame);
    return NU_OK;
}

/* For glob and grep, a copy of call whose "exclude" adds the block set;
 * NULL for other tools. */
static json_t *nu__with_exclude(const nu_perm_t *perm, const json_t *call)
{
    const char *tool = json_string_value(json_object_get(call, "tool"));
    json_t *copy, *exclude;

    if (tool == NULL || (strcmp(tool, "glob") != 0 && strcmp(tool, "grep") != 0) ||
        perm->paths.block.count == 0)
        return NULL;
    copy = json_deep_copy(call);
    if (copy == NULL)
        return NULL;
    exclude = json_object_get(copy, "exclude");
    if (!json_is_array(exclude)) {
        exclude = json_array();
        json_object_set_new(copy, "exclude", exclude);
    }
    for (size_t i = 0; i < perm->paths.block.count; i++)
        json_array_append_new(exclude, json_string(perm->paths.block.items[i]));
    return copy;
}

/* Steps 10 and 11 for an allowed call.  The pod lock is not held. */
static int nu__execute(nu_pod_t *pod, const nu_perm_t *perm,
                       const json_t *call, const json_t *exec_call,
                       nu__stream_t *st, nu_call_result_t *out)
{
    const char *tool_for_cost = json_string_value(json_object_get(call, "tool"));
    nu_budget_t cost = { nu_profile_cost(pod->profile, tool_for_cost), 0, 0, 1 };
    char digest[NU_SHA256_HEX_LEN + 1];
    json_t *result = NULL;
    nu_err_t err;
    int rc;

    /* web_fetch goes through the pod's egress proxy; a pod without egress
     * cannot fetch, whatever the policy allows. */
    const char *tool_name = json_string_value(json_object_get(call, "tool"));
    if (tool_name != NULL && strcmp(tool_name, "web_fetch") == 0 &&
        pod->net == NULL) {
        nu__result_deny(out, NU_KIND_NETWORK_DENIED, 10, "%s",
                        "web_fetch: this pod has no network egress (only "
                        "loopback)");
        pthread_mutex_lock(&pod->lock);
        int arc = nu__audit_decision(pod, call, out, &err);
        pthread_mutex_unlock(&pod->lock);
        return arc == NU_OK ? NU_OK : nu__fail_io(pod, out, &err);
    }

    /* Reserve and record the decision before anything runs. */
    pthread_mutex_lock(&pod->lock);
    if (!nu__ledger_reserve(&pod->ledger, &cost)) {
        pthread_mutex_unlock(&pod->lock);
        nu__result_deny(out, NU_KIND_BUDGET_EXHAUSTED, 10, "%s",
                        "the pod's tool-call or USD budget is exhausted");
        return NU_OK;
    }
    rc = nu__audit_decision(pod, call, out, &err);
    if (rc != NU_OK) {
        nu__ledger_settle(&pod->ledger, &cost, &(nu_budget_t){ 0, 0, 0, 0 });
        pthread_mutex_unlock(&pod->lock);
        return nu__fail_io(pod, out, &err);
    }
    pthread_mutex_unlock(&pod->lock);

    /* Searches must not open blocked files that appeared after the pod's
     * masks were laid down: hand the block set to the walk. */
    json_t *search = nu__with_exclude(perm, exec_call);
    if (tool_name != NULL && strcmp(tool_name, "web_fetch") == 0)
        rc = nu_net_fetch_pod(pod->net, exec_call, &result, &err);
    else
        rc = nu__sandbox_run(pod, search ? search : exec_call, st, &result, &err);
    json_decref(search);
    out->executed = true;

    /* Settle, redact, update the exposure and record the result. */
    pthread_mutex_lock(&pod->lock);
    nu__ledger_settle(&pod->ledger, &cost, &cost);

    if (result == NULL) {
        pthread_mutex_unlock(&pod->lock);
        nu__result_deny(out, NU_KIND_SANDBOX_ERROR, 10, "%s",
                        rc != NU_OK ? err.msg : "no result from the pod");
        out->decision.verdict = NU_DECISION_ALLOW;
        return rc != NU_OK ? rc : NU_ESANDBOX;
    }
    nu_redact_json(&pod->redactor, result);
    nu__filter_matches(perm, result);

    bool ok = json_is_true(json_object_get(result, "ok"));
    if (ok)
        pod->exposure |= out->decision.legs;
    else {
        int kind = nu_kind_parse(json_string_value(json_object_get(result, "kind"))
                                 ? json_string_value(json_object_get(result, "kind"))
                                 : "internal");
        out->decision.kind = kind > 0 ? (nu_kind_t)kind : NU_KIND_INTERNAL;
        const char *msg = json_string_value(json_object_get(result, "error"));
        snprintf(out->decision.reason, sizeof out->decision.reason, "%s",
                 msg ? msg : "the tool failed");
    }

    size_t len;
    char *text = nu_json_canonical(result, &len, NULL);
    nu_sha256_hex(text ? text : "", text ? len : 0, digest);
    free(text);

    const char *tool = json_string_value(json_object_get(call, "tool"));
    rc = nu__pod_audit(pod, "tool_call", tool, nu_decision_op_name(&out->decision),
                       call, "allow",
                       ok ? NULL : nu_kind_name(out->decision.kind),
                       ok ? NULL : out->decision.reason, digest,
                       &out->audit_seq, &err);
    pthread_mutex_unlock(&pod->lock);

    if (rc != NU_OK) {
        /* Executed but not recorded: withhold the result. */
        json_decref(result);
        nu__fail_io(pod, out, &err);
        out->executed = true;
        return NU_EIO;
    }
    out->result = result;
    return NU_OK;
}

static int nu__pod_call(nu_pod_t *pod, const json_t *call, nu__stream_t *st,
                        nu_call_result_t *out)
{
    nu_decide_ctx_t dctx = { 0 };
    nu_policy_ctx_t pctx = { 0 };
    json_t *exec_call = NULL;
    nu_perm_t perm;
    nu_err_t err;
    int rc = NU_OK;

    memset(out, 0, sizeof *out);
    nu__result_deny(out, NU_KIND_INTERNAL, 0, "%s", "the call was not decided");

    /* Snapshot the session: the permission and what has been spent. */
    pthread_mutex_lock(&pod->lock);
    if (pod->closed) {
        pthread_mutex_unlock(&pod->lock);
        nu__result_deny(out, NU_KIND_INVALID_REQUEST, 1, "pod %s is closed",
                        pod->id);
        return NU_OK;
    }
    /* Refusals by the proxy since the last call precede this call's
     * events in the log. */
    nu__pod_drain_denials(pod);
    if (pod->net != NULL && nu_net_drifted(pod->net)) {
        /* The watcher killed the pod when its filter changed, or when it
         * could no longer read the filter back. */
        bool unchecked = nu_net_check_failed(pod->net);
        const char *reason = unchecked
            ? "its packet filter could not be read back"
            : "its packet filter changed";
        if (!pod->drift_recorded &&
            nu__pod_audit(pod, unchecked ? "network_check_failed"
                                         : "network_drift",
                          NULL, NULL, NULL, "deny", "sandbox_error", reason,
                          NULL, NULL, &err) == NU_OK)
            pod->drift_recorded = true;
        pthread_mutex_unlock(&pod->lock);
        nu__result_deny(out, NU_KIND_SANDBOX_ERROR, 10, "pod %s was killed "
                        "because %s", pod->id, reason);
        return NU_OK;
    }
    rc = nu_perm_copy(&perm, &pod->effective);
    dctx.exposure = pod->exposure;
    dctx.egress = nu_pod_has_egress(pod);
    dctx.now = nu__now();
    nu__ledger_committed(&pod->ledger, &dctx.spent);
    pthread_mutex_unlock(&pod->lock);
    if (rc != NU_OK)
        return rc;

    /* Steps 1-8, then the symlink-safe re-check. */
    pctx.pod_id = pod->id;
    pctx.spiffe_id = pod->spiffe_id;
    pctx.perm = &perm;
    nu_profile_eval(pod->profile, call, &dctx, &pctx, &out->decision,
                    &out->hook_allow_attempt);
    if (out->decision.verdict != NU_DECISION_DENY)
        nu__resolve_and_recheck(pod, &perm, call, &dctx, &pctx, out, &exec_call);

    if (out->decision.kind == NU_KIND_POLICY_ERROR) {
        pthread_mutex_lock(&pod->lock);
        rc = nu__pod_audit(pod, "policy_error", NULL, NULL, call, "deny",
                           "policy_error", out->decision.reason, NULL, NULL, &err);
        pthread_mutex_unlock(&pod->lock);
        if (rc != NU_OK)
            goto io_fail;
    }

    /* Denials are recorded and end here. */
    if (out->decision.verdict == NU_DECISION_DENY) {
        pthread_mutex_lock(&pod->lock);
        rc = nu__audit_decision(pod, call, out, &err);
        pthread_mutex_unlock(&pod->lock);
        if (rc != NU_OK)
            goto io_fail;
        goto done;
    }

    /* Step 9. */
    if (out->decision.verdict == NU_DECISION_APPROVAL) {
        if (!nu__resolve_approval(pod, call, &dctx, &pctx, out, &rc))
            goto done;
        out->decision.verdict = NU_DECISION_ALLOW;
        out->decision.kind = NU_KIND_NONE;
    }

    /* Steps 10 and 11. */
    rc = nu__execute(pod, &perm, call, exec_call, st, out);
    goto done;

io_fail:
    rc = nu__fail_io(pod, out, &err);
done:
    /* Refusals caused by this call (a tool that ran curl, say) follow
     * its events. */
    pthread_mutex_lock(&pod->lock);
    nu__pod_drain_denials(pod);
    pthread_mutex_unlock(&pod->lock);
    json_decref(exec_call);
    nu_perm_free(&perm);
    return rc;
}

int nu_pod_call(nu_pod_t *pod, const json_t *call, nu_call_result_t *out)
{
    return nu__pod_call(pod, call, NULL, out);
}

int nu_pod_call_stream(nu_pod_t *pod, const json_t *call,
                       nu_pod_output_fn on_output, void *userdata,
                       nu_call_result_t *out)
{
    nu__stream_t st = { .pod = pod, .fn = on_output, .userdata = userdata,
                        .longest = 1 };

    if (on_output == NULL)
        return nu__pod_call(pod, call, NULL, out);
    for (size_t i = 0; i < pod->redactor.count; i++)
        if (strlen(pod->redactor.values[i]) > st.longest)
            st.longest = strlen(pod->redactor.values[i]);
    return nu__pod_call(pod, call, &st, out);
}

void nu_call_result_clear(nu_call_result_t *r)
{
    json_decref(r->result);
    r->result = NULL;
}

json_t *nu_call_result_to_json(const nu_call_result_t *r)
{
    json_t *o = nu_decision_to_json(&r->decision);

    if (o == NULL)
        return NULL;
    if (r->executed && r->decision.verdict == NU_DECISION_ALLOW &&
        r->decision.kind != NU_KIND_NONE) {
        json_object_set_new(o, "kind", json_string(nu_kind_name(r->decision.kind)));
        json_object_set_new(o, "reason", json_string(r->decision.reason));
    }
    if (r->approved_by[0] != '\0')
        json_object_set_new(o, "approved_by", json_string(r->approved_by));
    if (r->result != NULL)
        json_object_set(o, "result", r->result);
    return o;
}
