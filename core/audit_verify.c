/*
 * audit_verify.c - offline verification of the chain, the tree and the
 * checkpoints.
 *
 * Algorithm (docs/audit-format.md, "Verifying"), for events in seq order:
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit_private.h"
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

static int nu__check_args(nu_audit_verifier_t *v, const nu_audit_record_t *r)
{
    size_t len = strlen(r->args);
    json_t *parsed = nu_json_parse(r->args, len, NULL);
    char *canon = parsed != NULL ? nu_json_canonical(parsed, NULL, NULL)
                                 : NULL;
    int ok = canon != NULL && strcmp(canon, r->args) == 0;

    free(canon);
    json_decref(parsed);
    if (!ok)
        return nu__fail(v, r->seq, "args is not canonical JSON");
    return NU_OK;
}

int nu_audit_verifier_add(nu_audit_verifier_t *v, const nu_audit_record_t *r)
{
    uint8_t prev[NU_SHA256_LEN], hash[NU_SHA256_LEN], leaf[NU_SHA256_LEN];
    char hex[NU_SHA256_HEX_LEN + 1];
    uint8_t *buf;
    char *pre;
    size_t len;
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
    memcpy(prev, v->prev, sizeof prev);
    if (r->type == NULL || r->time == NULL)
        return nu__fail(v, r->seq, "event has no type or time");
    if (r->args != NULL && (rc = nu__check_args(v, r)) != NU_OK)
        return rc;

    pre = nu_audit_preimage(r, &len, NULL);
    if (pre == NULL)
        return nu__fail(v, r->seq, "event fields are not valid UTF-8");
    buf = malloc(NU_SHA256_LEN + len);
    if (buf == NULL) {
        free(pre);
        return nu__fail(v, r->seq, "out of memory");
    }
    memcpy(buf, prev, NU_SHA256_LEN);
    memcpy(buf + NU_SHA256_LEN, pre, len);
    nu_sha256(buf, NU_SHA256_LEN + len, hash);
    free(buf);
    nu_merkle_leaf_hash(pre, len, leaf);
    free(pre);

    nu_hex_encode(hash, sizeof hash, hex);
    if (r->hash == NULL || strcmp(r->hash, hex) != 0)
        return nu__fail(v, r->seq, "hash does not match the event's contents");

    if (strcmp(r->type, "checkpoint") == 0 &&
        (rc = nu__check_checkpoint(v, r)) != NU_OK)
        return rc;

    nu_merkle_frontier_add(&v->frontier, leaf, NULL, NULL);
    memcpy(v->prev, hash, sizeof hash);
    v->next_seq++;

    if (v->have_expect && (int64_t)v->frontier.size == v->expect_size) {
        nu_merkle_frontier_root(&v->frontier, leaf);
        if (memcmp(leaf, v->expect_root, NU_SHA256_LEN) != 0)
            return nu__fail(v, r->seq, "the tree of the first %" PRId64
                            " events does not match the saved checkpoint",
                            v->expect_size);
    }
    return NU_OK;
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

static int nu__resolve_trust(const char *home, const nu_audit_trust_t *trust,
                             nu_audit_trust_t *out, char **owned,
                             nu_err_t *err)
{
    *owned = NULL;
    if (trust != NULL && (trust->key_pem != NULL || trust->bundle_pem != NULL)) {
        *out = *trust;
        return NU_OK;
    }
    *owned = nu_audit_local_public_key(home, err);
    if (*owned == NULL)
        return nu_err_set(err, NU_EINVAL, "audit: cannot verify: no trusted "
                          "key (the node key '%s/audit/node.pub' is missing; "
                          "pass --key PEM or --bundle PEM)", home);
    out->key_pem = *owned;
    out->bundle_pem = NULL;
    return NU_OK;
}

int nu_audit_verify_anchor(nu_audit_t *a, const nu_audit_trust_t *trust,
                        const char *anchor_path, nu_audit_report_t *rep,
                        nu_err_t *err)
{
    nu_audit_verifier_t *v = NULL;
    nu_audit_trust_t t = { 0 };
    sqlite3_stmt *st = NULL;
    char *owned = NULL, path[4300];
    int rc, step = SQLITE_DONE;

    rc = nu__resolve_trust(a->home, trust, &t, &owned, err);
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
    while (st != NULL && (step = sqlite3_step(st)) == SQLITE_ROW) {
        nu_audit_record_t r;

        nu__audit_row(st, &r);
        rc = nu_audit_verifier_add(v, &r);
        nu_audit_record_clear(&r);
        if (rc != NU_OK)
            break;
    }
    if (st != NULL && rc == NU_OK && step != SQLITE_DONE) {
        char reason[256];
        nu_audit_report_t partial;

        nu_audit_verifier_finish(v, &partial);
        snprintf(reason, sizeof reason, "database is damaged: %s",
                 sqlite3_errmsg(a->db));
        nu_audit_verifier_fail(v, partial.events + 1, reason);
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&a->db_mu);

    rc = nu_audit_verifier_finish(v, rep);

cleanup:
    nu_audit_verifier_free(v);
    free(owned);
    return rc;
}

int nu_audit_verify(nu_audit_t *a, const nu_audit_trust_t *trust,
                    nu_audit_report_t *rep, nu_err_t *err)
{
    return nu_audit_verify_anchor(a, trust, NULL, rep, err);
}
