/*
 * pod.h - pods and the tool-call pipeline.
 *
 * A pod is one isolated execution environment (a sandbox, see sandbox.h)
 * plus its session state: the effective permission, the exposure legs the
 * session has touched, the budget ledger, granted and pending approvals,
 * and its children.  nu_pod_call is the only way a front end (the Lua API,
 * the REPL, replay, the daemon, MCP, nucleus exec) reaches the executor.
 *
 * nu_pod_call runs the pipeline in this order; the first step that does
 * not pass decides:
 *    1-7  nu_decide: request shape, classification, time and budget,
 *         capability, path/command/network rules, static obligations, the
 *         dynamic trifecta gate (decide.h);
 *    8    the profile's check hook (policy.h), which may only tighten;
 *    9    approval resolution: a matching unexpired grant is consumed
 *         (exactly one unit), else the profile's approve hook, else the
 *         pod's approval callback; "ask" from all of them leaves the call
 *         pending with its approval key;
 *   10    budget reservation, execution inside the pod, settlement;
 *   11    exposure update, audit record of the decision and result digest.
 * Paths are resolved inside the workspace before step 5 (symlinks
 * followed only while they stay inside), so a link "notes.txt -> .env" is
 * judged as ".env".
 *
 * Threads.  Every function may be called from any thread.  Calls to one
 * pod are serialized by the pod's lock around steps 9-11; budget charges
 * never overspend under concurrency.
 *
 * Identity.  When the state directory has a CA, the pod's X.509-SVID for
 * its SPIFFE ID is placed at /run/nucleus/svid/{svid.pem, svid.key,
 * bundle.pem} inside the pod and rotated at half of its lifetime
 * (core/pod_svid.c).
 *
 * Credentials.  Values of opts.credentials are injected into run
 * environments only.  Every string the pipeline returns, logs or audits
 * has each credential value replaced by "[REDACTED:NAME]".
 */
#ifndef NUCLEUS_POD_H
#define NUCLEUS_POD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "nucleus/decide.h"
#include "nucleus/error.h"
#include "nucleus/lattice.h"
#include "nucleus/policy.h"

typedef struct nu_pod nu_pod_t;
typedef struct nu_audit nu_audit_t;

/* An orchestrator's approval callback; it returns the same values as the
 * approve hook. */
typedef nu_approve_t (*nu_pod_approve_fn)(nu_pod_t *pod,
                                          const json_t *request,
                                          void *userdata);

/* Maximum and default lifetime of an approval grant, seconds. */
#define NU_APPROVAL_TTL_MAX 300

/* One credential: injected as NAME=value into run environments.  Values
 * shorter than NU_CREDENTIAL_MIN bytes are rejected. */
#define NU_CREDENTIAL_MIN 8
typedef struct nu_credential {
    const char *name;
    const char *value;
} nu_credential_t;

typedef struct nu_pod_options {
    /* The profile: a loaded profile (borrowed; must outlive the pod) or a
     * name or file for nu_profile_load.  One of them is required. */
    nu_profile_t *profile;
    const char *profile_name;

    const char *workspace;      /* host directory; required */
    const char *isolation;      /* "ns" (default), "oci:crun", "oci:runc",
                                 * "oci:PATH" or "vm" (sandbox.h) */
    const char *namespace_;     /* pod namespace for the SPIFFE ID; "default" */
    const char *trust_domain;   /* "nucleus.local" when NULL */

    /* Optional extra restriction met with the profile (attenuation at
     * creation); NULL for none. */
    const nu_perm_t *restrict_to;

    const nu_credential_t *credentials;
    size_t ncredentials;

    uint32_t timeout_ms;        /* default run timeout; 0 = executor default */
    uint64_t memory_bytes;      /* pod memory limit; 0 = sandbox default */
    uint32_t pids;              /* process limit; 0 = sandbox default */
    uint64_t file_size_bytes;   /* largest file written; 0 = sandbox default */

    /* Extra environment of every command, "NAME=value", NULL-terminated;
     * may be NULL.  Not secret: use credentials for secrets. */
    const char *const *env;

    nu_pod_approve_fn approve;  /* orchestrator callback; may be NULL */
    void *approve_userdata;

    nu_audit_t *audit;          /* borrowed; NULL = no audit log */

    /* State directory whose CA issues the pod's X.509-SVID (NULL: the
     * default, see home.h).  Without a CA the pod has no SVID. */
    const char *home;
    int64_t svid_ttl;           /* seconds; 0 = the CA's default (1 h) */
} nu_pod_options_t;

void nu_pod_options_init(nu_pod_options_t *opts);

/* Create a pod and start its sandbox.  Returns NU_OK with *out set, or
 * NU_EINVAL / NU_ENOENT (bad options, unknown profile), NU_EPOLICY (the
 * profile failed to load), NU_ESANDBOX / NU_ENOTSUP (isolation failed),
 * NU_EIO (the audit log rejected the pod_create event). */
int nu_pod_create(const nu_pod_options_t *opts, nu_pod_t **out,
                  nu_err_t *err);

/* The outcome of one tool call. */
typedef struct nu_call_result {
    nu_decision_t decision;   /* verdict, kind, reason, step, approval key */
    bool executed;            /* the executor ran the call */
    json_t *result;           /* executor result (redacted), or NULL */
    char approved_by[16];     /* "", "grant", "hook", "callback" */
    bool hook_allow_attempt;  /* check hook tried to widen */
    int64_t audit_seq;        /* seq of the call's audit event, 0 if none */
} nu_call_result_t;

/* Run one tool call through the pipeline.  *out is always filled; release
 * it with nu_call_result_clear.  out->decision.verdict is ALLOW only when
 * the call executed; an execution failure (timeout, not found, ...) keeps
 * verdict ALLOW with executed true and the result's "ok" false and "kind"
 * set, and decision.kind set to the same kind.  Returns NU_OK, or a
 * negative code for a pipeline failure, in which case the verdict is deny
 * with kind internal, io_error or sandbox_error. */
int nu_pod_call(nu_pod_t *pod, const json_t *call, nu_call_result_t *out);

void nu_call_result_clear(nu_call_result_t *r);

/* Run a call like nu_pod_call, and for run calls hand stdout and stderr to
 * on_output while the command runs (stream is "stdout" or "stderr").  The
 * result then has no stdout/stderr fields.  Streamed output is redacted
 * like results, because bytes that could begin a credential value are
 * held back until the next chunk shows whether they do.  Other tools
 * behave as with nu_pod_call. */
typedef void (*nu_pod_output_fn)(const char *stream, const void *data,
                                 size_t len, void *userdata);
int nu_pod_call_stream(nu_pod_t *pod, const json_t *call,
                       nu_pod_output_fn on_output, void *userdata,
                       nu_call_result_t *out);

/* Grant approval for key: count uses (>= 1), valid for ttl_s seconds
 * (1..NU_APPROVAL_TTL_MAX; 0 selects the maximum).  source names the
 * approver for the record ("orchestrator", "daemon:<spiffe id>", ...).
 * Returns NU_OK, or NU_EINVAL for a malformed key or out-of-range count. */
int nu_pod_grant(nu_pod_t *pod, const char *key, int count, int ttl_s,
                 const char *source, nu_err_t *err);

/* Deny a pending approval: it is removed and recorded. */
int nu_pod_deny(nu_pod_t *pod, const char *key, const char *source,
                nu_err_t *err);

/* Pending approvals as a JSON array of {approval_key, operation, call,
 * reason, time} (new reference; calls are redacted). */
json_t *nu_pod_pending(nu_pod_t *pod);

/* Report model usage: every value must be finite and >= 0.  Returns
 * NU_OK, NU_EINVAL (negative, NaN or infinite: kind invalid_request) or
 * NU_ELIMIT (the charge would exceed a budget maximum: nothing is
 * charged, kind budget_exhausted). */
int nu_pod_charge(nu_pod_t *pod, double usd, int64_t input_tokens,
                  int64_t output_tokens, nu_err_t *err);

/* effective = effective & p.  Never widens. */
int nu_pod_attenuate(nu_pod_t *pod, const nu_perm_t *p, nu_err_t *err);

/* Create a child pod: requires manage_pods; child permission = effective &
 * requested (clamped, or NU_EDENIED when strict and requested exceeds
 * it); the child's budget is carved out of the parent's remaining budget
 * and the unspent part returns when the child closes.  opts->workspace may
 * be NULL to share the parent's, or name a directory beneath it
 * (NU_EDENIED otherwise).  The child runs on the parent's isolation
 * tier: opts->isolation may be NULL, and must name the same tier unless the
 * parent's is "ns" (NU_EDENIED otherwise).  Closing the parent closes its
 * children. */
int nu_pod_spawn(nu_pod_t *parent, const nu_pod_options_t *opts,
                 const nu_perm_t *requested, bool strict, nu_pod_t **child,
                 nu_err_t *err);

/* Close the pod (and its children): kill the sandbox, write pod_close and
 * a checkpoint to the audit log, free everything. */
void nu_pod_close(nu_pod_t *pod);

/* --- introspection ---------------------------------------------------- */

const char *nu_pod_id(const nu_pod_t *pod);
const char *nu_pod_spiffe_id(const nu_pod_t *pod);
unsigned nu_pod_exposure(nu_pod_t *pod);
bool nu_pod_has_egress(nu_pod_t *pod);

/* A copy of the effective permission (caller frees with nu_perm_free). */
int nu_pod_effective(nu_pod_t *pod, nu_perm_t *out);

/* Budget maxima and spending so far. */
void nu_pod_budget(nu_pod_t *pod, nu_budget_t *max, nu_budget_t *spent);

/* {id, spiffe_id, profile, workspace, exposure, budget{max, spent},
 * pending, children, closed} (new reference). */
json_t *nu_pod_info(nu_pod_t *pod);

/* Replace every credential value in s with "[REDACTED:NAME]".  Returns a
 * malloc'd string (a copy of s when nothing matched), or NULL on ENOMEM. */
char *nu_pod_redact(nu_pod_t *pod, const char *s, size_t len, size_t *out_len);

/* The call result as a JSON object for front ends:
 * {"decision", "operation", "kind"?, "reason"?, "approval_key"?,
 *  "result"?} (new reference). */
json_t *nu_call_result_to_json(const nu_call_result_t *r);

#endif
