/*
 * decide.h - the static decision of a tool call (pipeline steps 1-7).
 *
 * nu_decide is a pure function: given a normalized permission, one tool
 * call and the session context, it returns allow, deny (with a kind) or
 * approval_required (with the approval key), and the legs the call adds
 * to the exposure.  It reads no files, touches no state and runs nothing,
 * so the policy engine ("nucleus policy eval", which adds the Lua check
 * hook as step 8) and the pod pipeline call the same code.
 *
 * Steps, in order; the first one that does not pass decides:
 *   1 request shape and sizes            invalid_request
 *   2 classification (tool -> operation; shell analysis for run)
 *   3 time window, budget                time_expired, budget_exhausted
 *   4 capability levels                  capability_denied
 *   5 path, command and network rules    path_denied, command_denied,
 *                                        network_denied (or a gate)
 *   6 static obligations (profile and nu) approval_required
 *   7 dynamic trifecta gate              approval_required, "trifecta"
 * Within step 5 every rule is checked: a deny wins over a gate raised by
 * an earlier rule of the same step.  docs/pipeline.md describes each
 * rule, the classifier flags and the exposure legs in detail.
 */
#ifndef NUCLEUS_DECIDE_H
#define NUCLEUS_DECIDE_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "nucleus/digest.h"
#include "nucleus/error.h"
#include "nucleus/lattice.h"

/* Request limits checked by step 1. */
#define NU_DECIDE_MAX_CONTENT (16u * 1024 * 1024) /* write content, stdin, body */
#define NU_DECIDE_MAX_STRING (1024u * 1024)       /* edit old/new, command, patterns */
#define NU_DECIDE_MAX_ARGV 4096                   /* argv entries */
#define NU_DECIDE_MAX_ARGV_BYTES (1024u * 1024)   /* sum of argv lengths */
#define NU_DECIDE_MAX_ENV 256                     /* env entries */
#define NU_DECIDE_MAX_HEADERS 64                  /* web_fetch headers */
#define NU_DECIDE_MAX_URL 8192                    /* URL bytes */
#define NU_DECIDE_MAX_TIMEOUT 86400               /* run timeout, seconds */

/* Approval key: "<operation>:<64 hex digits>" plus NUL. */
#define NU_APPROVAL_KEY_MAX 96

typedef enum {
    NU_DECISION_ALLOW = 0,
    NU_DECISION_DENY = 1,
    NU_DECISION_APPROVAL = 2   /* approval_required */
} nu_verdict_t;

/* Session context of one decision.  A zeroed context is a fresh session:
 * no exposure, no egress, nothing spent, time 0. */
typedef struct nu_decide_ctx {
    unsigned exposure;         /* NU_LEG_* bits the session has touched */
    bool egress;               /* the pod has network egress */
    nu_budget_t spent;         /* consumption so far, against perm->budget */
    int64_t now;               /* Unix seconds */
    /* Optional path labels (globs as in paths.allow; NULL for none).  A
     * read of a public path does not set private; a read of an untrusted
     * path sets untrusted instead of private. */
    const nu_strset_t *public_paths;
    const nu_strset_t *untrusted_paths;
} nu_decide_ctx_t;

/* The result.  Fixed size and self-contained: nothing to free. */
typedef struct nu_decision {
    nu_verdict_t verdict;
    nu_kind_t kind;            /* NU_KIND_NONE when allowed, else the kind */
    int step;                  /* 1-7: the step that decided; 0 = all passed */
    nu_op_t operation;         /* the call's operation (run: classified) */
    nu_opset_t ops;            /* every operation the call needs */
    char reason[NU_ERR_MAX];   /* one line naming the rule; "" when allowed */
    char approval_key[NU_APPROVAL_KEY_MAX]; /* set when approval_required */
    unsigned legs;             /* NU_LEG_* bits this call adds */
    /* Command analysis for run calls (zero otherwise). */
    unsigned cmd_flags;        /* union of NU_CMDF_* */
    size_t cmd_count;          /* simple commands */
    char cmd_summary[512];     /* "git push origin main [git_push]; ..." */
} nu_decision_t;

/* Decide a tool call.  perm must be normalized (nu_perm_normalize);
 * call is the request object ({"tool": "read", "path": ...}).
 *
 * Returns NU_OK whenever *out holds a decision, including deny and
 * approval_required.  Returns NU_ENOMEM or NU_EINTERNAL when the decision
 * could not be computed; *out is then a deny of kind "internal", so a
 * caller that ignores the code still fails closed. */
int nu_decide(const nu_perm_t *perm, const json_t *call,
              const nu_decide_ctx_t *ctx, nu_decision_t *out);

/* Compute the approval key of a call: the operation name, ":", and the
 * SHA-256 (hex) of the call's RFC 8785 canonical JSON.  Key order in the
 * call does not change the key; any other difference does.  out holds
 * NU_APPROVAL_KEY_MAX bytes.  Returns NU_OK, or the error of
 * nu_json_canonical (NU_EINVAL, NU_ERANGE, NU_ENOMEM). */
int nu_approval_key(nu_op_t op, const json_t *call,
                    char out[NU_APPROVAL_KEY_MAX]);

/* The operation name to report for a decision: nu_op_name(d->operation),
 * or "invalid" when step 1 rejected the call before a known tool could be
 * read from it (no "tool", a non-string one, or an unknown name). */
const char *nu_decision_op_name(const nu_decision_t *d);

const char *nu_verdict_name(nu_verdict_t verdict); /* "allow", "deny", "approval_required" */

/* --- URLs ------------------------------------------------------------- */

/* A parsed http(s) URL with its host in canonical form: DNS names
 * lowercased without a trailing dot; IPv4 in dotted decimal whatever the
 * input encoding (2130706433, 0177.1, 0x7f.0.0.1); IPv6 as inet_ntop
 * prints it, without brackets; IPv4-mapped IPv6 (::ffff:a.b.c.d) as the
 * IPv4 address. */
#define NU_URL_HOST_MAX 256
typedef struct nu_url {
    bool https;
    char host[NU_URL_HOST_MAX];
    int port;                  /* explicit, or 80 / 443 */
    bool ip;                   /* host is an IP literal */
} nu_url_t;

/* Parse url.  Rejects other schemes, credentials (user@), empty or
 * non-ASCII hosts (IDNA is not supported), percent-encoded hosts, bad
 * ports, control characters and backslashes.  Returns NU_OK or NU_EINVAL
 * with err set ("url: cannot parse '...': <detail>"). */
int nu_url_parse(const char *url, nu_url_t *out, nu_err_t *err);

#endif
