/*
 * audit.h - the tamper-evident audit log.
 *
 * Every side effect of a pod is recorded as one event in a SQLite database
 * ($NUCLEUS_HOME/audit.db, WAL mode).  Events form a hash chain and are the
 * leaves of an RFC 6962 Merkle tree whose roots are signed in checkpoints.
 * The byte format, the tree and the verification algorithm are specified in
 * docs/audit-format.md; this header is the contract of the C API.
 *
 * Summary of the format:
 *   preimage(e) = RFC 8785 canonical JSON of the event without "hash"
 *   e.hash      = SHA-256(prev_hash bytes || preimage(e)), genesis prev = 0^32
 *   leaf(e)     = SHA-256(0x00 || preimage(e))
 *   node(l, r)  = SHA-256(0x01 || l || r)
 *   A checkpoint is itself an event (type "checkpoint") written right after
 *   the size-th event; its args carry {origin, size, root_hash, time} and an
 *   ECDSA P-256 signature over their canonical JSON.
 *
 * Thread safety: one nu_audit_t may be shared by any number of threads;
 * appends from several threads are grouped into shared commits.  Several
 * processes may append to the same database; each append reads the chain's
 * tail inside its own write transaction, so the chain never forks.
 */
#ifndef NUCLEUS_AUDIT_H
#define NUCLEUS_AUDIT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "nucleus/digest.h"
#include "nucleus/error.h"

#define NU_AUDIT_SCHEMA_VERSION 1

/* Arguments larger than this (canonical JSON bytes, after redaction) are
 * stored as {"prefix": first NU_AUDIT_ARGS_PREFIX bytes, "sha256": digest
 * of the full canonical text, "size": its length}. */
#define NU_AUDIT_ARGS_MAX 4096
#define NU_AUDIT_ARGS_PREFIX 1024

#define NU_AUDIT_CHECKPOINT_EVERY 10000
#define NU_AUDIT_CHECKPOINT_SECONDS 60

/* Durability of a returned append.  CRASH (the default) survives kill -9 of
 * the process: WAL with synchronous=NORMAL.  POWER also survives power loss
 * and kernel panics: synchronous=FULL, one fsync per commit group. */
typedef enum {
    NU_AUDIT_CRASH = 0,
    NU_AUDIT_POWER = 1
} nu_audit_durability_t;

/*
 * The checkpoint signer.  The default signer uses a local ECDSA P-256 key
 * pair under $NUCLEUS_HOME/audit/; the node's X.509-SVID key can replace it
 * by filling this interface.
 *
 * sign: sign msg (the canonical checkpoint body) with ECDSA P-256 over
 *   SHA-256 and write the DER signature into sig (sig_cap >= 72 bytes),
 *   its length into *sig_len.  Returns NU_OK or a negative NU_E* code with
 *   err filled.  Called with the database write lock held, so it must not
 *   block for long.
 * public_key_pem: the signer's public key (SubjectPublicKeyInfo PEM).
 * cert_chain_pem: optional (NULL): leaf certificate first, then any
 *   intermediates; stored in every checkpoint so that a verifier holding
 *   only the trust bundle can check the signature.
 */
typedef struct nu_audit_signer {
    int (*sign)(void *ctx, const uint8_t *msg, size_t len, uint8_t *sig,
                size_t sig_cap, size_t *sig_len, nu_err_t *err);
    void *ctx;
    const char *public_key_pem;
    const char *cert_chain_pem;
} nu_audit_signer_t;

/* Load the local node key from dir/node.key, creating the pair (node.key
 * mode 0600, node.pub) when it does not exist yet, and fill signer.  A
 * race with another process creating the key is resolved by link(2): one
 * key wins and both use it.  Release with nu_audit_signer_free. */
int nu_audit_local_signer(const char *dir, nu_audit_signer_t *signer,
                          nu_err_t *err);

/* Load a signer from a PEM private key file and an optional certificate
 * chain file (may be NULL). */
int nu_audit_file_signer(const char *key_path, const char *chain_path,
                         nu_audit_signer_t *signer, nu_err_t *err);

void nu_audit_signer_free(nu_audit_signer_t *signer);

typedef struct nu_audit_options {
    const char *home;      /* state directory; NULL: nu_home_path rules */
    const char *db_path;   /* overrides home/audit.db when not NULL */
    nu_audit_durability_t durability;
    uint64_t checkpoint_every;    /* events; 0: NU_AUDIT_CHECKPOINT_EVERY */
    unsigned checkpoint_seconds;  /* 0: NU_AUDIT_CHECKPOINT_SECONDS */
    int busy_timeout_ms;          /* wait for other writers; 0: 10000 */
    const nu_audit_signer_t *signer; /* borrowed; NULL: local signer */
    int read_only;                /* open for verify/show/prove only */
} nu_audit_options_t;

typedef struct nu_audit nu_audit_t;

/* Open (creating or migrating) the log.  opts may be NULL for defaults.
 * Returns NU_OK with *out set, or NU_EDB / NU_EIO / NU_ECRYPTO / NU_ENOENT
 * (read_only and no database) with err filled. */
int nu_audit_open(const nu_audit_options_t *opts, nu_audit_t **out,
                  nu_err_t *err);

/* Close the handle.  Appends still in flight must have returned. */
void nu_audit_close(nu_audit_t *a);

/* The log's origin string ("nucleus:" + 32 hex digits), fixed at creation. */
const char *nu_audit_origin(const nu_audit_t *a);

/* One event to append.  Every string may be NULL (the field is then absent
 * from the event); strings must be valid UTF-8.  type is required.  seq,
 * time, prev_hash and hash are assigned by the log. */
typedef struct nu_audit_event {
    const char *pod;
    const char *spiffe_id;
    const char *type;        /* pod_create, tool_call, decision, ... */
    const char *tool;
    const char *operation;
    const json_t *args;      /* any JSON value; redacted and bounded */
    const char *decision;    /* allow, deny, approval_required */
    const char *kind;        /* nu_kind_name() of a denial */
    const char *reason;
    const char *result_digest;  /* 64 lowercase hex digits, see
                                   nu_audit_digest */
    const char *profile_digest;
} nu_audit_event_t;

/* A credential to keep out of the log: every occurrence of value inside a
 * string of args or reason is replaced by "[REDACTED:<name>]".  Values
 * shorter than 4 bytes are still replaced (the caller decides). */
typedef struct nu_audit_redaction {
    const char *name;
    const char *value;
} nu_audit_redaction_t;

/*
 * Append ev, redacting the nred entries of red from args and reason first.
 * Returns NU_OK only after the event's transaction has committed with the
 * configured durability, with its sequence number in *seq_out (may be
 * NULL).  Concurrent callers share commits.  Errors (the event is then not
 * in the log): NU_EINVAL (missing type, invalid UTF-8, a non-hex digest),
 * NU_EIO (disk full, database locked longer than busy_timeout_ms, any
 * SQLite failure), NU_ECRYPTO (a due checkpoint could not be signed).
 * Callers on the tool-call path must fail closed on any error.
 */
int nu_audit_append(nu_audit_t *a, const nu_audit_event_t *ev,
                    const nu_audit_redaction_t *red, size_t nred,
                    int64_t *seq_out, nu_err_t *err);

/* Write a signed checkpoint over every event so far (the pipeline calls it
 * at pod close).  Does nothing when the newest event is already a
 * checkpoint.  *seq_out (may be NULL) gets the checkpoint event's seq, or
 * 0 when nothing was written. */
int nu_audit_checkpoint(nu_audit_t *a, int64_t *seq_out, nu_err_t *err);

/* SHA-256 of result bytes as 64 hex digits (the result_digest field). */
void nu_audit_digest(const void *data, size_t len,
                     char out[NU_SHA256_HEX_LEN + 1]);

/* ---- reading ---------------------------------------------------------- */

/* One stored event; strings are owned by the record (NULL when absent).
 * args is canonical JSON text. */
typedef struct nu_audit_record {
    int64_t seq;
    char *time;
    char *pod;
    char *spiffe_id;
    char *type;
    char *tool;
    char *operation;
    char *args;
    char *decision;
    char *kind;
    char *reason;
    char *result_digest;
    char *profile_digest;
    char *prev_hash;   /* 64 hex digits */
    char *hash;        /* 64 hex digits */
} nu_audit_record_t;

void nu_audit_record_clear(nu_audit_record_t *r);

/*
 * Build the event preimage: RFC 8785 canonical JSON of r's fields except
 * hash, members in code-unit order, absent (NULL) fields omitted, args
 * inserted as its JSON value.  The writer and every verifier use this one
 * function.  Returns a malloc'd string (length in *len), or NULL with err
 * filled when args is not canonical JSON or a string is not UTF-8.
 */
char *nu_audit_preimage(const nu_audit_record_t *r, size_t *len,
                        nu_err_t *err);

/* Parse a canonical event line (as exported) into r.  Returns NU_OK or
 * NU_EPARSE. */
int nu_audit_record_from_json(const json_t *obj, nu_audit_record_t *r,
                              nu_err_t *err);

/* Return the event as a JSON object including hash (new reference). */
json_t *nu_audit_record_to_json(const nu_audit_record_t *r, nu_err_t *err);

/* Call fn for each event with seq >= since (and pod equal to pod when pod
 * is not NULL) in seq order; fn returns non-zero to stop.  Returns NU_OK,
 * the value fn stopped with, or NU_EDB / NU_EIO when SQLite fails. */
typedef int (*nu_audit_record_fn)(const nu_audit_record_t *r, void *ud);
int nu_audit_scan(nu_audit_t *a, int64_t since, const char *pod,
                  nu_audit_record_fn fn, void *ud, nu_err_t *err);

/* Number of events (the newest seq). */
int nu_audit_size(nu_audit_t *a, int64_t *size, nu_err_t *err);

/* ---- verification ----------------------------------------------------- */

/* What a verifier trusts for checkpoint signatures: a public key (PEM), a
 * trust bundle (PEM certificates; checkpoints must then carry a chain that
 * leads to it), or both NULL for the local node key next to the log. */
typedef struct nu_audit_trust {
    const char *key_pem;
    const char *bundle_pem;
} nu_audit_trust_t;

typedef struct nu_audit_report {
    int64_t events;
    int64_t checkpoints;
    uint8_t root[NU_SHA256_LEN];   /* tree root over all events */
    int64_t anchored;              /* size of the newest checkpoint */
    int64_t unanchored;            /* events after the newest checkpoint
                                      event */
    int64_t bad_seq;               /* first bad seq on failure, else 0 */
    char reason[256];
} nu_audit_report_t;

/* Incremental verifier: feed events in order, then finish.  Used for the
 * database and for exported files alike. */
typedef struct nu_audit_verifier nu_audit_verifier_t;

int nu_audit_verifier_new(const nu_audit_trust_t *trust, const char *origin,
                          nu_audit_verifier_t **out, nu_err_t *err);

/* Start the verifier after an exported prefix: first_seq is the first
 * event to come, prev_hash_hex the hash of the event before it, and
 * frontier the hashes of the maximal perfect subtrees covering the first
 * first_seq - 1 leaves, largest first. */
int nu_audit_verifier_resume(nu_audit_verifier_t *v, int64_t first_seq,
                             const char *prev_hash_hex,
                             const uint8_t (*frontier)[NU_SHA256_LEN],
                             size_t nfrontier, nu_err_t *err);

/* Returns NU_OK, or NU_EDENIED after the first bad event (the report
 * then holds bad_seq and reason; later calls keep returning NU_EDENIED). */
int nu_audit_verifier_add(nu_audit_verifier_t *v, const nu_audit_record_t *r);

/* Finish: fill report.  Returns NU_OK when everything verified,
 * NU_EDENIED otherwise. */
int nu_audit_verifier_finish(nu_audit_verifier_t *v, nu_audit_report_t *rep);

void nu_audit_verifier_free(nu_audit_verifier_t *v);

/* Mark the verifier failed at seq with reason (for a source error such as
 * a corrupt database page). */
void nu_audit_verifier_fail(nu_audit_verifier_t *v, int64_t seq,
                            const char *reason);

/* Verify the whole database.  Returns NU_OK (report filled), NU_EDENIED
 * (report holds the first bad seq and the reason) or another code when the
 * database cannot be read at all. */
int nu_audit_verify(nu_audit_t *a, const nu_audit_trust_t *trust,
                    nu_audit_report_t *rep, nu_err_t *err);

/* Like nu_audit_verify, and also require the log to reach the signed
 * checkpoint saved in checkpoint_path (its args object as JSON) with the
 * same root.  checkpoint_path NULL uses $home/audit/checkpoint.json, which
 * the writer refreshes after every checkpoint, when it exists.  This
 * catches a log cut back to an earlier, internally valid prefix. */
int nu_audit_verify_anchor(nu_audit_t *a, const nu_audit_trust_t *trust,
                           const char *checkpoint_path,
                           nu_audit_report_t *rep, nu_err_t *err);

/* The local node public key PEM for the database's home (malloc'd), or
 * NULL with err filled. */
char *nu_audit_local_public_key(const char *home, nu_err_t *err);

/* ---- checkpoints and proofs ------------------------------------------- */

/* A parsed checkpoint (the args of a checkpoint event). */
typedef struct nu_audit_checkpoint_info {
    char origin[128];
    int64_t size;
    uint8_t root[NU_SHA256_LEN];
    char time[40];
    uint8_t sig[80];
    size_t sig_len;
    char key_id[NU_SHA256_HEX_LEN + 1];
    char *cert_chain;       /* malloc'd or NULL */
} nu_audit_checkpoint_info_t;

int nu_audit_checkpoint_parse(const json_t *args,
                              nu_audit_checkpoint_info_t *cp, nu_err_t *err);
void nu_audit_checkpoint_info_clear(nu_audit_checkpoint_info_t *cp);

/* Check cp's signature against trust (key or bundle).  default_key_pem is
 * used when trust has neither.  Returns NU_OK, NU_EDENIED (bad signature,
 * untrusted chain, wrong key) or NU_EINVAL (no key at all). */
int nu_audit_checkpoint_check(const nu_audit_checkpoint_info_t *cp,
                              const nu_audit_trust_t *trust,
                              const char *default_key_pem, nu_err_t *err);

/* Root of the first size events, from the stored tree nodes. */
int nu_audit_root(nu_audit_t *a, int64_t size, uint8_t root[NU_SHA256_LEN],
                  nu_err_t *err);

/* Inclusion proof of event seq against the newest checkpoint, as a JSON
 * object (new reference; format in docs/audit-format.md). */
json_t *nu_audit_prove_inclusion(nu_audit_t *a, int64_t seq, nu_err_t *err);

/* Consistency proof between tree sizes from and to (to = 0: the newest
 * checkpoint's size). */
json_t *nu_audit_prove_consistency(nu_audit_t *a, int64_t from, int64_t to,
                                   nu_err_t *err);

/* Verify a proof object offline.  Writes a one-line summary into summary.
 * Returns NU_OK or NU_EDENIED with err filled. */
int nu_audit_check_proof(const json_t *proof, const nu_audit_trust_t *trust,
                         char *summary, size_t size, nu_err_t *err);

/* Write the export of events since..last (see docs/audit-format.md) to
 * out; since below 1 means 1.  Returns NU_OK (since one past the last
 * event gives an export with no events), NU_ERANGE when since is further
 * past the end (the message names the last seq), NU_EIO or NU_EDB. */
int nu_audit_export(nu_audit_t *a, const char *pod, int64_t since, FILE *out,
                    nu_err_t *err);

/* Verify an export file. */
int nu_audit_verify_export(FILE *in, const nu_audit_trust_t *trust,
                           const char *default_key_pem,
                           nu_audit_report_t *rep, nu_err_t *err);

/* ---- Merkle tree (RFC 6962 / RFC 9162 section 2.1) --------------------- */

/* Node source: write the hash of the perfect subtree at level (0 = leaf)
 * and index (its leftmost leaf is index << level). */
typedef int (*nu_merkle_node_fn)(void *ctx, unsigned level, uint64_t index,
                                 uint8_t out[NU_SHA256_LEN], nu_err_t *err);

#define NU_MERKLE_MAX_PATH 128

void nu_merkle_leaf_hash(const void *data, size_t len,
                         uint8_t out[NU_SHA256_LEN]);
void nu_merkle_node_hash(const uint8_t left[NU_SHA256_LEN],
                         const uint8_t right[NU_SHA256_LEN],
                         uint8_t out[NU_SHA256_LEN]);

/* MTH(D[begin:end]) from perfect subtrees; end > begin. */
int nu_merkle_subtree(nu_merkle_node_fn get, void *ctx, uint64_t begin,
                      uint64_t end, uint8_t out[NU_SHA256_LEN], nu_err_t *err);

/* PATH(index, D[0:size]) and PROOF(m, D[0:n]); path holds
 * NU_MERKLE_MAX_PATH entries, *len gets the count. */
int nu_merkle_inclusion(nu_merkle_node_fn get, void *ctx, uint64_t index,
                        uint64_t size, uint8_t (*path)[NU_SHA256_LEN],
                        size_t *len, nu_err_t *err);
int nu_merkle_consistency(nu_merkle_node_fn get, void *ctx, uint64_t m,
                          uint64_t n, uint8_t (*path)[NU_SHA256_LEN],
                          size_t *len, nu_err_t *err);

/* RFC 9162 section 2.1.3.2 and 2.1.4.2 verification.  Return 1 when the
 * proof is valid, 0 otherwise. */
int nu_merkle_verify_inclusion(const uint8_t leaf[NU_SHA256_LEN],
                               uint64_t index, uint64_t size,
                               const uint8_t (*path)[NU_SHA256_LEN],
                               size_t len, const uint8_t root[NU_SHA256_LEN]);
int nu_merkle_verify_consistency(uint64_t m, uint64_t n,
                                 const uint8_t old_root[NU_SHA256_LEN],
                                 const uint8_t new_root[NU_SHA256_LEN],
                                 const uint8_t (*path)[NU_SHA256_LEN],
                                 size_t len);

/* Compact range: the maximal perfect subtrees covering the first size
 * leaves, largest first (one per set bit of size). */
typedef struct nu_merkle_frontier {
    uint64_t size;
    uint8_t hash[64][NU_SHA256_LEN];
    unsigned count;
} nu_merkle_frontier_t;

/* Add one leaf hash; calls emit (may be NULL) for every perfect node
 * completed, leaf included, so that a store can save it. */
typedef int (*nu_merkle_emit_fn)(void *ctx, unsigned level, uint64_t index,
                                 const uint8_t hash[NU_SHA256_LEN]);
int nu_merkle_frontier_add(nu_merkle_frontier_t *f,
                           const uint8_t leaf[NU_SHA256_LEN],
                           nu_merkle_emit_fn emit, void *ctx);

/* Root of the leaves added so far (size > 0). */
void nu_merkle_frontier_root(const nu_merkle_frontier_t *f,
                             uint8_t out[NU_SHA256_LEN]);

#endif
