/*
 * audit_verify.c - offline verification of the chain, the tree and the
 * checkpoints.
 *
 * Algorithm (docs/audit-format.md, section 8), for events in seq order:
 *   1. seq must be the previous seq + 1, starting at 1 (a gap names the
 *      first missing seq);
 *   2. prev_hash must equal the previous event's hash (32 zero bytes for
 *      seq 1);
 *   3. args, when present, must be canonical JSON;
 *   4. hash must equal SHA-256(prev_hash bytes || preimage);
 *   5. a checkpoint event at seq s must cover exactly s - 1 events, name
 *      the log's origin, carry its event's time, have the root of the
 *      first s - 1 leaves and a valid signature by the trusted key;
 *   6. the preimage's leaf hash is added to the tree.
 * The first failing step stops verification and names the seq.  A saved
 * checkpoint (the anchor file, or one given by the operator) adds one
 * more rule: the log must reach its size with its root, which catches a
 * log cut back to an earlier, internally valid prefix.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mbedtls/sha256.h>

#include "audit_private.h"
#include "nucleus/node.h"
#include "nucleus/json.h"

struct nu_audit_verifier {
    char *key_pem;
    char *bundle_pem;
    char origin[128];
    int64_t next_seq;
    uint8_t prev[NU_SHA256_LEN];
    nu_merkle_frontier_t frontier;
    int64_t checkpoints;
    int64_t anchored;
    int64_t last_cp_seq;
    int have_expect;
    int64_t expect_size;
    uint8_t expect_root[NU_SHA256_LEN];
    int failed;
    int64_t bad_seq;
    char reason[256];
};

int nu_audit_verifier_new(const nu_audit_trust_t *trust, const char *origin,
                          nu_audit_verifier_t **out, nu_err_t *err)
{
    nu_audit_verifier_t *v = calloc(1, sizeof *v);

    *out = NULL;
    if (v == NULL)
        return nu_err_set(err, NU_ENOMEM, "audit: out of memory");
    if (trust != NULL && trust->key_pem != NULL)
        v->key_pem = strdup(trust->key_pem);
    if (trust != NULL && trust->bundle_pem != NULL)
        v->bundle_pem = strdup(trust->bundle_pem);
    if (origin != NULL)
        snprintf(v->origin, sizeof v->origin, "%s", origin);
    v->next_seq = 1;
    *out = v;
    return NU_OK;
}

void nu_audit_verifier_free(nu_audit_verifier_t *v)
{
    if (v == NULL)
        return;
    free(v->key_pem);
    free(v->bundle_pem);
    free(v);
}

void nu_audit_verifier_fail(nu_audit_verifier_t *v, int64_t seq,
                            const char *reason)
{
    if (v->failed)
        return;
    v->failed = 1;
    v->bad_seq = seq;
    snprintf(v->reason, sizeof v->reason, "%s", reason);
}

static int nu__fail(nu_audit_verifier_t *v, int64_t seq, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int nu__fail(nu_audit_verifier_t *v, int64_t seq, const char *fmt, ...)
{
    char reason[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    nu_audit_verifier_fail(v, seq, reason);
    return NU_EDENIED;
}

int nu_audit_verifier_resume(nu_audit_verifier_t *v, int64_t first_seq,
                             const char *prev_hash_hex,
                             const uint8_t (*frontier)[NU_SHA256_LEN],
                             size_t nfrontier, nu_err_t *err)
{
    uint64_t size = (uint64_t)first_seq - 1;
    unsigned bits = (unsigned)__builtin_popcountll(size);

    if (first_seq < 1 || nfrontier != bits ||
        nu_hex_decode(prev_hash_hex, v->prev, sizeof v->prev) != 0)
        return nu_err_set(err, NU_EPARSE, "audit: cannot resume at seq "
                          "%" PRId64 ": need %u frontier hashes and a 64-digit "
                          "prev_hash", first_seq, bits);
    memset(&v->frontier, 0, sizeof v->frontier);
    memcpy(v->frontier.hash, frontier, nfrontier * NU_SHA256_LEN);
    v->frontier.count = bits;
    v->frontier.size = size;
    v->next_seq = first_seq;
    return NU_OK;
}

/* Require the log to reach cp->size with cp->root. */
static void nu__expect(nu_audit_verifier_t *v,
                       const nu_audit_checkpoint_info_t *cp)
{
    if (v->have_expect && v->expect_size >= cp->size)
        return;
    v->have_expect = 1;
    v->expect_size = cp->size;
    memcpy(v->expect_root, cp->root, NU_SHA256_LEN);
}

static int nu__check_checkpoint(nu_audit_verifier_t *v,
                                const nu_audit_record_t *r)
{
    nu_audit_checkpoint_info_t cp;
    nu_audit_trust_t trust = { v->key_pem, v->bundle_pem };
    uint8_t root[NU_SHA256_LEN];
    nu_err_t err = { 0 };
    json_t *args;
    int rc;

    args = r->args != NULL ? json_loads(r->args, 0, NULL) : NULL;
    rc = args != NULL ? nu_audit_checkpoint_parse(args, &cp, &err)
                      : nu_err_set(&err, NU_EPARSE, "checkpoint has no args");
    json_decref(args);
    if (rc != NU_OK)
        return nu__fail(v, r->seq, "%s", err.msg);

    if (cp.size != r->seq - 1)
        rc = nu__fail(v, r->seq, "checkpoint covers %" PRId64 " events but "
                      "sits at seq %" PRId64 " (replayed or moved checkpoint)",
                      cp.size, r->seq);
    else if (v->origin[0] != '\0' && strcmp(cp.origin, v->origin) != 0)
        rc = nu__fail(v, r->seq, "checkpoint origin '%s' is not the log's "
                      "origin '%s'", cp.origin, v->origin);
    else if (r->time == NULL || strcmp(cp.time, r->time) != 0)
        rc = nu__fail(v, r->seq, "checkpoint time differs from its event "
                      "time");
    if (rc != NU_OK)
        goto cleanup;
    if (v->origin[0] == '\0')
        snprintf(v->origin, sizeof v->origin, "%s", cp.origin);

    nu_merkle_frontier_root(&v->frontier, root);
    if ((uint64_t)cp.size != v->frontier.size ||
        memcmp(root, cp.root, NU_SHA256_LEN) != 0) {
        rc = nu__fail(v, r->seq, "checkpoint root does not match the tree of "
                      "the first %" PRId64 " events", cp.size);
        goto cleanup;
    }
    if (nu_audit_checkpoint_check(&cp, &trust, NULL, &err) != NU_OK) {
        rc = nu__fail(v, r->seq, "%s", err.msg);
        goto cleanup;
    }
    v->checkpoints++;
    v->anchored = cp.size;
    v->last_cp_seq = r->seq;

cleanup:
    nu_audit_checkpoint_info_clear(&cp);
    return rc;
}

/* The order-independent half of verifying one event: preimage, args
 * check and both hashes, computed from the event's own prev_hash.  The
 * in-order half (nu__consume) then only compares.  It requires prev_hash
 * to equal the previous event's hash, so hashing with the stored
 * prev_hash gives the same result as hashing with the previous hash. */
typedef struct nu__vitem {
    const nu_audit_record_t *rec;
    const char *problem;        /* precheck failure, NULL if none */
    uint8_t hash[NU_SHA256_LEN];
    uint8_t leaf[NU_SHA256_LEN];
} nu__vitem_t;

static int nu__args_canonical(const char *args)
{
    int fast = nu__audit_is_canonical(args);
    json_t *parsed;

    if (fast >= 0)
        return fast;

    /* RFC 8785 numbers are doubles: a large double such as 1e20 prints as
     * the integer literal 100000000000000000000, which must read back as
     * a double, not fail as an integer out of range. */
    parsed = json_loadb(args, strlen(args), JSON_REJECT_DUPLICATES |
                        JSON_DECODE_INT_AS_REAL | JSON_DECODE_ANY, NULL);
    char *canon = parsed != NULL ? nu_json_canonical(parsed, NULL, NULL)
                                 : NULL;
    int ok = canon != NULL && strcmp(canon, args) == 0;

    free(canon);
    json_decref(parsed);
    return ok;
}

/* Decode 64 lowercase hex digits; nu_hex_decode is general but slower,
 * and this runs once per verified event. */
static inline int nu__hex_digit(unsigned char c)
{
    if ((unsigned)(c - '0') < 10)
        return c - '0';
    if ((unsigned)(c - 'a') < 6)
        return c - 'a' + 10;
    return -1;
}

static int nu__hex32(const char *text, uint8_t out[NU_SHA256_LEN])
{
    for (int i = 0; i < NU_SHA256_LEN; i++) {
        int hi = nu__hex_digit((unsigned char)text[2 * i]);
        int lo = hi < 0 ? -1 : nu__hex_digit((unsigned char)text[2 * i + 1]);

        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return text[2 * NU_SHA256_LEN] == '\0' ? 0 : -1;
}

static void nu__prepare_item(nu__vitem_t *it)
{
    const nu_audit_record_t *r = it->rec;
    mbedtls_sha256_context c;
    uint8_t prev[NU_SHA256_LEN];
    char *pre;
    size_t len;

    it->problem = NULL;
    if (r->type == NULL || r->time == NULL) {
        it->problem = "event has no type or time";
        return;
    }
    if (r->args != NULL && !nu__args_canonical(r->args)) {
        it->problem = "args is not canonical JSON";
        return;
    }
    pre = nu_audit_preimage(r, &len, NULL);
    if (pre == NULL) {
        it->problem = "event fields are not valid UTF-8";
        return;
    }
    if (r->prev_hash == NULL || nu__hex32(r->prev_hash, prev) != 0)
        memset(prev, 0, sizeof prev);   /* nu__consume rejects it anyway */

    mbedtls_sha256_init(&c);
    (void)mbedtls_sha256_starts_ret(&c, 0);
    (void)mbedtls_sha256_update_ret(&c, prev, sizeof prev);
    (void)mbedtls_sha256_update_ret(&c, (const unsigned char *)pre, len);
    (void)mbedtls_sha256_finish_ret(&c, it->hash);
    mbedtls_sha256_free(&c);
    nu_merkle_leaf_hash(pre, len, it->leaf);
    free(pre);
}

static int nu__consume(nu_audit_verifier_t *v, const nu__vitem_t *it)
{
    const nu_audit_record_t *r = it->rec;
    char hex[NU_SHA256_HEX_LEN + 1];
    uint8_t root[NU_SHA256_LEN];
    int rc;

    if (v->failed)
        return NU_EDENIED;
    if (r->seq > v->next_seq)
        return nu__fail(v, v->next_seq, "event %" PRId64 " is missing (the "
                        "next event is %" PRId64 ")", v->next_seq, r->seq);
    if (r->seq < v->next_seq)
        return nu__fail(v, r->seq, "event %" PRId64 " appears twice or out of "
                        "order", r->seq);

    /* Hashes are compared as lowercase hex text: another spelling of the
     * same bytes is still an edit. */
    nu_hex_encode(v->prev, sizeof v->prev, hex);
    if (r->prev_hash == NULL || strcmp(r->prev_hash, hex) != 0)
        return nu__fail(v, r->seq, "prev_hash does not match the hash of "
                        "event %" PRId64, r->seq - 1);
    if (it->problem != NULL)
        return nu__fail(v, r->seq, "%s", it->problem);
    nu_hex_encode(it->hash, sizeof it->hash, hex);
    if (r->hash == NULL || strcmp(r->hash, hex) != 0)
        return nu__fail(v, r->seq, "hash does not match the event's contents");

    if (strcmp(r->type, "checkpoint") == 0 &&
        (rc = nu__check_checkpoint(v, r)) != NU_OK)
        return rc;

    nu_merkle_frontier_add(&v->frontier, it->leaf, NULL, NULL);
    memcpy(v->prev, it->hash, sizeof it->hash);
    v->next_seq++;

    if (v->have_expect && (int64_t)v->frontier.size == v->expect_size) {
        nu_merkle_frontier_root(&v->frontier, root);
        if (memcmp(root, v->expect_root, NU_SHA256_LEN) != 0)
            return nu__fail(v, r->seq, "the tree of the first %" PRId64
                            " events does not match the saved checkpoint",
                            v->expect_size);
    }
    return NU_OK;
}

int nu_audit_verifier_add(nu_audit_verifier_t *v, const nu_audit_record_t *r)
{
    nu__vitem_t it = { r, NULL, { 0 }, { 0 } };

    if (v->failed)
        return NU_EDENIED;
    nu__prepare_item(&it);
    return nu__consume(v, &it);
}

int nu_audit_verifier_finish(nu_audit_verifier_t *v, nu_audit_report_t *rep)
{
    memset(rep, 0, sizeof *rep);
    if (!v->failed && v->have_expect &&
        (int64_t)v->frontier.size < v->expect_size)
        nu__fail(v, v->next_seq, "log ends at seq %" PRId64 " but the saved "
                 "checkpoint covers %" PRId64 " events (events deleted or "
                 "truncated)", v->next_seq - 1, v->expect_size);

    rep->events = v->next_seq - 1;
    rep->checkpoints = v->checkpoints;
    rep->anchored = v->anchored;
    rep->unanchored = rep->events - v->last_cp_seq;
    if (v->frontier.size > 0)
        nu_merkle_frontier_root(&v->frontier, rep->root);
    if (v->failed) {
        rep->bad_seq = v->bad_seq;
        snprintf(rep->reason, sizeof rep->reason, "%s", v->reason);
        return NU_EDENIED;
    }
    return NU_OK;
}

/* ---- the anchor file ----------------------------------------------------- */

/* Load a saved checkpoint (JSON object with the checkpoint members) from
 * path and make the verifier require it.  A missing file is not an error
 * when optional is set. */
static int nu__load_anchor(nu_audit_verifier_t *v, const char *path,
                           int optional, nu_err_t *err)
{
    nu_audit_checkpoint_info_t cp;
    nu_audit_trust_t trust = { v->key_pem, v->bundle_pem };
    json_error_t jerr;
    json_t *obj;
    int rc;

    obj = json_load_file(path, 0, &jerr);
    if (obj == NULL) {
        if (optional && access(path, F_OK) != 0)
            return NU_OK;
        return nu_err_set(err, NU_EPARSE, "audit: cannot read checkpoint "
                          "'%s': %s", path, jerr.text);
    }
    rc = nu_audit_checkpoint_parse(obj, &cp, err);
    json_decref(obj);
    if (rc != NU_OK)
        return rc;
    rc = nu_audit_checkpoint_check(&cp, &trust, NULL, err);
    if (rc == NU_OK && v->origin[0] != '\0' &&
        strcmp(cp.origin, v->origin) != 0)
        rc = nu_err_set(err, NU_EDENIED, "saved checkpoint '%s' belongs to "
                        "another log (origin '%s')", path, cp.origin);
    if (rc == NU_OK)
        nu__expect(v, &cp);
    else
        nu__fail(v, cp.size + 1, "saved checkpoint '%s' is invalid: %s",
                 path, err != NULL ? err->msg : "bad signature");
    nu_audit_checkpoint_info_clear(&cp);
    return rc == NU_EDENIED ? NU_OK : rc;
}

int nu__audit_save_anchor(nu_audit_t *a, const char *args_json)
{
    char path[4300], tmp[4400];
    FILE *f;

    snprintf(path, sizeof path, "%s/audit/checkpoint.json", a->home);
    snprintf(tmp, sizeof tmp, "%s.%ld.%lx", path, (long)getpid(),
             (unsigned long)pthread_self());
    f = fopen(tmp, "we");
    if (f == NULL)
        return NU_EIO;
    fputs(args_json, f);
    fputc('\n', f);
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        unlink(tmp);
        return NU_EIO;
    }
    return NU_OK;
}

/* ---- verifying the database ---------------------------------------------- */

/*
 * Rows are read in chunks.  A helper thread computes the order-independent
 * half (preimages and hashes) of the second half of each chunk while this
 * thread does the first half.  This thread then checks the chunk in order.
 * Hashing dominates verification, so two cores nearly halve its time.
 */
#define NU__VCHUNK 2048

typedef struct nu__vpool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    nu__vitem_t *items;
    size_t begin;
    size_t end;
    int has_work;
    int quit;
} nu__vpool_t;

static void nu__prepare_range(nu__vitem_t *items, size_t begin, size_t end)
{
    for (size_t i = begin; i < end; i++)
        nu__prepare_item(&items[i]);
}

static void *nu__vhelper(void *arg)
{
    nu__vpool_t *p = arg;

    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->has_work && !p->quit)
            pthread_cond_wait(&p->cv, &p->mu);
        if (p->quit)
            break;
        pthread_mutex_unlock(&p->mu);
        nu__prepare_range(p->items, p->begin, p->end);
        pthread_mutex_lock(&p->mu);
        p->has_work = 0;
        pthread_cond_broadcast(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* Text of one chunk of rows, copied into one growing buffer: the record
 * fields first hold offset + 1 into it (0 for NULL) and become pointers
 * once the chunk is complete, which saves 15 allocations per event. */
typedef struct nu__textbuf {
    char *data;
    size_t len;
    size_t cap;
} nu__textbuf_t;

static void nu__rec_slots(nu_audit_record_t *r, char **slots[14])
{
    char **all[14] = { &r->time, &r->pod, &r->spiffe_id, &r->type, &r->tool,
                       &r->operation, &r->args, &r->decision, &r->kind,
                       &r->reason, &r->result_digest, &r->profile_digest,
                       &r->prev_hash, &r->hash };

    memcpy(slots, all, sizeof all);
}

static int nu__read_row(sqlite3_stmt *st, nu_audit_record_t *r,
                        nu__textbuf_t *tb)
{
    char **slots[14];

    nu__rec_slots(r, slots);
    r->seq = sqlite3_column_int64(st, 0);
    for (int i = 0; i < 14; i++) {
        const unsigned char *text = sqlite3_column_text(st, i + 1);
        size_t n = (size_t)sqlite3_column_bytes(st, i + 1);

        if (text == NULL) {
            *slots[i] = NULL;
            continue;
        }
        if (tb->len + n + 1 > tb->cap) {
            size_t cap = tb->cap ? tb->cap * 2 : 1 << 20;
            char *data;

            while (cap < tb->len + n + 1)
                cap *= 2;
            if ((data = realloc(tb->data, cap)) == NULL)
                return -1;
            tb->data = data;
            tb->cap = cap;
        }
        memcpy(tb->data + tb->len, text, n + 1);
        *slots[i] = (char *)(uintptr_t)(tb->len + 1);
        tb->len += n + 1;
    }
    return 0;
}

static void nu__fix_row(nu_audit_record_t *r, nu__textbuf_t *tb)
{
    char **slots[14];

    nu__rec_slots(r, slots);
    for (int i = 0; i < 14; i++)
        if (*slots[i] != NULL)
            *slots[i] = tb->data + ((uintptr_t)*slots[i] - 1);
}

/* Verify every row of st; returns the last sqlite3_step result. */
static int nu__verify_rows(nu_audit_verifier_t *v, sqlite3_stmt *st)
{
    nu_audit_record_t *recs = calloc(NU__VCHUNK, sizeof *recs);
    nu__vitem_t *items = calloc(NU__VCHUNK, sizeof *items);
    nu__vpool_t pool = { .items = items };
    nu__textbuf_t tb = { 0 };
    pthread_t tid;
    int step = SQLITE_ROW, helper = 0;

    if (recs == NULL || items == NULL) {
        nu_audit_verifier_fail(v, v->next_seq, "out of memory");
        goto cleanup;
    }
    pthread_mutex_init(&pool.mu, NULL);
    pthread_cond_init(&pool.cv, NULL);
    helper = pthread_create(&tid, NULL, nu__vhelper, &pool) == 0;

    while (step == SQLITE_ROW && !v->failed) {
        size_t n = 0, half;

        tb.len = 0;
        while (n < NU__VCHUNK && (step = sqlite3_step(st)) == SQLITE_ROW) {
            if (nu__read_row(st, &recs[n], &tb) != 0) {
                nu_audit_verifier_fail(v, v->next_seq, "out of memory");
                break;
            }
            items[n].rec = &recs[n];
            n++;
        }
        for (size_t i = 0; i < n; i++)
            nu__fix_row(&recs[i], &tb);
        half = helper ? n / 2 : n;
        if (helper) {
            pthread_mutex_lock(&pool.mu);
            pool.begin = half;
            pool.end = n;
            pool.has_work = 1;
            pthread_cond_broadcast(&pool.cv);
            pthread_mutex_unlock(&pool.mu);
        }
        nu__prepare_range(items, 0, half);
        if (helper) {
            pthread_mutex_lock(&pool.mu);
            while (pool.has_work)
                pthread_cond_wait(&pool.cv, &pool.mu);
            pthread_mutex_unlock(&pool.mu);
        }
        for (size_t i = 0; i < n && !v->failed; i++)
            nu__consume(v, &items[i]);
    }

    if (helper) {
        pthread_mutex_lock(&pool.mu);
        pool.quit = 1;
        pthread_cond_broadcast(&pool.cv);
        pthread_mutex_unlock(&pool.mu);
        pthread_join(tid, NULL);
    }
    pthread_cond_destroy(&pool.cv);
    pthread_mutex_destroy(&pool.mu);

cleanup:
    free(tb.data);
    free(recs);
    free(items);
    return v->failed ? SQLITE_DONE : step;
}


static int nu__resolve_trust(const char *home, const nu_audit_trust_t *trust,
                             nu_audit_trust_t *out, char **owned,
                             nu_err_t *err)
{
    owned[0] = owned[1] = NULL;
    if (trust != NULL && (trust->key_pem != NULL || trust->bundle_pem != NULL)) {
        *out = *trust;
        return NU_OK;
    }
    /* Defaults: the local node key, and the CA bundle of the same state
     * directory for checkpoints signed by the node SVID. */
    *owned = nu_audit_local_public_key(home, NULL);
    owned[1] = nu_node_bundle(home);
    if (*owned == NULL && owned[1] == NULL)
        return nu_err_set(err, NU_EINVAL, "audit: cannot verify: no trusted "
                          "key (the node key '%s/audit/node.pub' is missing "
                          "and there is no CA; pass --key PEM or --bundle "
                          "PEM)", home);
    out->key_pem = owned[0];
    out->bundle_pem = owned[1];
    return NU_OK;
}

/* NOTE: the tree table is a cache for proofs and is not compared with the
 * recomputed tree here; a damaged node makes the proofs that use it fail
 * their check instead. */
int nu_audit_verify_anchor(nu_audit_t *a, const nu_audit_trust_t *trust,
                        const char *anchor_path, nu_audit_report_t *rep,
                        nu_err_t *err)
{
    nu_audit_verifier_t *v = NULL;
    nu_audit_trust_t t = { 0 };
    sqlite3_stmt *st = NULL;
    char *owned[2] = { NULL, NULL }, path[4300];
    int rc, step = SQLITE_DONE;

    rc = nu__resolve_trust(a->home, trust, &t, owned, err);
    if (rc == NU_OK)
        rc = nu_audit_verifier_new(&t, a->origin, &v, err);
    if (rc != NU_OK)
        goto cleanup;

    snprintf(path, sizeof path, "%s/audit/checkpoint.json", a->home);
    rc = nu__load_anchor(v, anchor_path != NULL ? anchor_path : path,
                         anchor_path == NULL, err);
    if (rc != NU_OK)
        goto cleanup;

    pthread_mutex_lock(&a->db_mu);
    if (sqlite3_prepare_v2(a->db, "SELECT " NU__AUDIT_COLUMNS " FROM events "
                           "ORDER BY seq", -1, &st, NULL) != SQLITE_OK) {
        char reason[256];

        snprintf(reason, sizeof reason, "cannot read the events table: %s",
                 sqlite3_errmsg(a->db));
        nu_audit_verifier_fail(v, 1, reason);
    }
    if (st != NULL)
        step = nu__verify_rows(v, st);
    if (st != NULL && step != SQLITE_DONE && !v->failed) {
        char reason[256];

        snprintf(reason, sizeof reason, "database is damaged: %s",
                 sqlite3_errmsg(a->db));
        nu_audit_verifier_fail(v, v->next_seq, reason);
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&a->db_mu);

    rc = nu_audit_verifier_finish(v, rep);

cleanup:
    nu_audit_verifier_free(v);
    free(owned[0]);
    free(owned[1]);
    return rc;
}

int nu_audit_verify(nu_audit_t *a, const nu_audit_trust_t *trust,
                    nu_audit_report_t *rep, nu_err_t *err)
{
    return nu_audit_verify_anchor(a, trust, NULL, rep, err);
}
