/*
 * audit_private.h - declarations shared by the core/audit*.c files only.
 */
#ifndef NUCLEUS_AUDIT_PRIVATE_H
#define NUCLEUS_AUDIT_PRIVATE_H

#include <pthread.h>
#include <stdint.h>

#include <mbedtls/pk.h>
#include <sqlite3.h>

#include "nucleus/audit.h"

/* Node key in the tree table: the index of the node's last leaf times 64
 * plus its level.  Every node that a new leaf completes then gets a key
 * above all existing ones, so an append touches only the table's last
 * page instead of one page per level. */
#define NU__AUDIT_NODE(level, index) \
    ((int64_t)((((((uint64_t)(index) + 1) << (level)) - 1) << 6) | \
               (uint64_t)(level)))

typedef struct nu__audit_job nu__audit_job_t;

struct nu_audit {
    sqlite3 *db;
    pthread_mutex_t db_mu;     /* serializes every use of db */
    char path[4200];
    char home[4096];
    char origin[128];
    char key_id[NU_SHA256_HEX_LEN + 1];
    nu_audit_options_t opts;
    nu_audit_signer_t own_signer;   /* the local signer, when used */
    const nu_audit_signer_t *signer;

    /* Group commit: appenders queue jobs; one of them leads a batch. */
    pthread_mutex_t mu;
    pthread_cond_t queued_cv;  /* signalled when an appender queues */
    int inside;                /* threads inside append or checkpoint */
    int queued;                /* jobs in the queue */
    int gathering;             /* a leader waits in nu__gather */
    int gather_self;           /* its own job is already done (0 or 1) */
    nu__audit_job_t *queue_head;
    nu__audit_job_t *queue_tail;
    int leader_active;

    /* Tail of the chain as of our last commit; reloaded whenever another
     * writer has appended since. */
    int cache_valid;
    int64_t size;
    char last_hash[NU_SHA256_HEX_LEN + 1];
    nu_merkle_frontier_t frontier;
    int64_t last_cp_seq;
    int64_t oldest_unanchored;   /* epoch seconds of event last_cp_seq+1 */
    char *anchor;                /* newest checkpoint args of the batch */
    sqlite3_stmt *insert_event;  /* prepared once, used by leaders */
    sqlite3_stmt *insert_node;
    sqlite3_stmt *select_tail;
};

/* Canonical checkpoint body that the signature covers. */
char *nu__audit_checkpoint_body(const char *origin, int64_t size,
                                const uint8_t root[NU_SHA256_LEN],
                                const char *time, size_t *len, nu_err_t *err);

int nu__audit_key_id(mbedtls_pk_context *pk, char out[NU_SHA256_HEX_LEN + 1]);
int nu__audit_key_id_pem(const char *pem, char out[NU_SHA256_HEX_LEN + 1]);

/* 1 when s is valid UTF-8 (RFC 3629), else 0. */
int nu__audit_utf8_valid(const char *s);

/* 1 when text is RFC 8785 canonical JSON, 0 when it is not, -1 when it
 * contains a non-integer number and only a full round trip can tell. */
int nu__audit_is_canonical(const char *text);

/* Fill r from the current row of a "SELECT <columns>" statement. */
#define NU__AUDIT_COLUMNS \
    "seq, time, pod, spiffe_id, type, tool, operation, args, decision, " \
    "kind, reason, result_digest, profile_digest, prev_hash, hash"
int nu__audit_row(sqlite3_stmt *st, nu_audit_record_t *r);

/* Tree node source over the tree table (ctx is the nu_audit_t). */
int nu__audit_node(void *ctx, unsigned level, uint64_t index,
                   uint8_t out[NU_SHA256_LEN], nu_err_t *err);

/* Convert an SQLite failure into NU_EIO / NU_EDB with the message. */
int nu__audit_db_err(nu_err_t *err, sqlite3 *db, const char *what);

/* Newest checkpoint event's args (new reference) and seq, or NULL and
 * *seq = 0 when there is none. */
json_t *nu__audit_latest_checkpoint(nu_audit_t *a, int64_t *seq,
                                    nu_err_t *err);

/* Parse an RFC 3339 UTC time to epoch seconds; -1 when malformed. */
int64_t nu__audit_parse_time(const char *s);

/* Save checkpoint args as $home/audit/checkpoint.json (atomic rename),
 * the anchor that lets verify detect a log cut back to a valid prefix. */
int nu__audit_save_anchor(nu_audit_t *a, const char *args_json);


#endif
