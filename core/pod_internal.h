/*
 * pod_internal.h - the pod structure shared by pod*.c.
 */
#ifndef NUCLEUS_POD_INTERNAL_H
#define NUCLEUS_POD_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "nucleus/audit.h"
#include "nucleus/identity.h"
#include "nucleus/net.h"
#include "nucleus/pod.h"
#include "nucleus/redact.h"
#include "nucleus/sandbox.h"

/* A budget ledger.  remaining = max - spent - reserved - carved, per
 * dimension; carved is what children hold. */
typedef struct nu_ledger {
    nu_budget_t max;
    nu_budget_t spent;
    nu_budget_t reserved;
    nu_budget_t carved;
} nu_ledger_t;

void nu__ledger_init(nu_ledger_t *l, const nu_budget_t *max);
/* What is left of each dimension (never negative). */
void nu__ledger_remaining(const nu_ledger_t *l, nu_budget_t *out);
/* Spent plus reserved plus carved: what nu_decide compares to the max. */
void nu__ledger_committed(const nu_ledger_t *l, nu_budget_t *out);
/* Reserve cost when it fits in every dimension; returns false otherwise. */
bool nu__ledger_reserve(nu_ledger_t *l, const nu_budget_t *cost);
/* Release a reservation and record actual as spent. */
void nu__ledger_settle(nu_ledger_t *l, const nu_budget_t *reserved,
                       const nu_budget_t *actual);
/* Does amount fit in what is left?  Unlimited dimensions of amount are
 * ignored (they only occur where the ledger is unlimited too). */
bool nu__ledger_fits(const nu_ledger_t *l, const nu_budget_t *amount);
/* Hand amount to a child, and take back the carve plus the child's
 * spending when it closes. */
void nu__ledger_carve(nu_ledger_t *l, const nu_budget_t *amount);
void nu__ledger_uncarve(nu_ledger_t *l, const nu_budget_t *amount,
                        const nu_budget_t *child_spent);
bool nu__budget_valid_charge(double usd, int64_t in, int64_t out);

typedef struct nu_grant {
    char key[NU_APPROVAL_KEY_MAX];
    int remaining;
    int64_t expires;           /* Unix seconds */
    char source[64];
    struct nu_grant *next;
} nu_grant_t;

typedef struct nu_pending {
    char key[NU_APPROVAL_KEY_MAX];
    char operation[32];
    json_t *call;              /* redacted copy */
    char reason[NU_ERR_MAX];
    int64_t time;
    struct nu_pending *next;
} nu_pending_t;

/* Approval records kept in memory for nu_pod_info and the REPL; the audit
 * log keeps them durably. */
#define NU_POD_ID_LEN 20

struct nu_pod {
    pthread_mutex_t lock;
    char id[NU_POD_ID_LEN + 1];
    char *spiffe_id;
    char *workspace;
    char *namespace_;
    char *isolation;           /* the tier, as given at creation ("ns") */
    int workspace_fd;          /* host-side O_PATH fd for path resolution */

    nu_profile_t *profile;
    bool own_profile;
    nu_perm_t effective;
    char profile_digest[NU_SHA256_HEX_LEN + 1];

    nu_sandbox_t *sandbox;
    nu_net_t *net;             /* NULL: loopback only */
    bool drift_recorded;
    nu_redactor_t redactor;
    unsigned exposure;
    nu_ledger_t ledger;

    nu_grant_t *grants;
    nu_pending_t *pending;
    int grants_issued;
    int denials;

    nu_pod_approve_fn approve;
    void *approve_userdata;
    nu_audit_t *audit;

    /* The pod's SVID (pod_svid.c); ca is NULL when the state directory has
     * no CA. */
    nu_ca_t *ca;
    int64_t svid_ttl;
    uint64_t svid_generation;
    time_t svid_not_before, svid_not_after;
    pthread_t svid_thread;
    pthread_mutex_t svid_lock;
    pthread_cond_t svid_cond;
    bool svid_sync;            /* svid_lock and svid_cond are initialized */
    bool svid_running;
    bool svid_stop;

    nu_pod_t *parent;
    nu_pod_t **children;
    size_t nchildren;
    nu_budget_t carved_from_parent;
    bool closed;
};

/* Approval store (pod_approval.c); the pod lock must be held. */
bool nu__approval_consume(nu_pod_t *pod, const char *key, int64_t now,
                          char *source, size_t source_size);
int nu__approval_add_pending(nu_pod_t *pod, const char *key,
                             const char *operation, const json_t *call,
                             const char *reason, int64_t now);
void nu__approval_remove_pending(nu_pod_t *pod, const char *key);
void nu__approval_free_all(nu_pod_t *pod);
bool nu__approval_key_valid(const char *key);

/* Append an audit event for pod, failing closed: returns NU_OK when there
 * is no audit log or the event committed. */
int nu__pod_audit(nu_pod_t *pod, const char *type, const char *tool,
                  const char *operation, const json_t *args,
                  const char *decision, const char *kind, const char *reason,
                  const char *result_digest, int64_t *seq_out, nu_err_t *err);

/* Write the refusals queued by the pod's egress proxy as network_denied
 * events, oldest first.  Does nothing for a pod without egress.  Call with
 * pod->lock held.  A failed append is logged and the refusal is lost. */
void nu__pod_drain_denials(nu_pod_t *pod);

int64_t nu__now(void);

/* Issue the pod's SVID into the pod and start rotating it, when the state
 * directory home (NULL: the default) has a CA; stop and free. */
int nu__pod_svid_start(nu_pod_t *pod, const char *home, int64_t ttl,
                       nu_err_t *err);
void nu__pod_svid_stop(nu_pod_t *pod);

#endif
