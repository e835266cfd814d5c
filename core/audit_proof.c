/*
 * audit_proof.c - inclusion and consistency proofs against checkpoints.
 *
 * Proof objects (JSON; docs/audit-format.md, "Proofs"):
 *   inclusion:   {"type": "inclusion", "leaf_index": i, "tree_size": n,
 *                 "event": {...event with hash...}, "path": [hex, ...],
 *                 "checkpoint": {...checkpoint args...}}
 *   consistency: {"type": "consistency", "from": m, "to": n,
 *                 "old_root": hex, "new_root": hex, "path": [hex, ...],
 *                 "checkpoint": {...checkpoint of size n...},
 *                 "old_checkpoint": {...} when a checkpoint of size m
 *                 exists}
 * Path hashes are in RFC 6962 order (leaf side first).  Nodes come from
 * the tree table, so a proof costs O(log^2 n) indexed lookups.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit_private.h"
#include "nucleus/json.h"

static json_t *nu__checkpoint_at(nu_audit_t *a, int64_t size, nu_err_t *err)
{
    sqlite3_stmt *st = NULL;
    json_t *args = NULL;

    if (sqlite3_prepare_v2(a->db, "SELECT args FROM events WHERE seq = ? AND "
                           "type = 'checkpoint'", -1, &st, NULL) != SQLITE_OK) {
        nu__audit_db_err(err, a->db, "read a checkpoint");
        return NULL;
    }
    sqlite3_bind_int64(st, 1, size + 1);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0) != NULL)
        args = json_loads((const char *)sqlite3_column_text(st, 0), 0, NULL);
    sqlite3_finalize(st);
    return args;
}

json_t *nu__audit_latest_checkpoint(nu_audit_t *a, int64_t *seq,
                                    nu_err_t *err)
{
    sqlite3_stmt *st = NULL;
    json_t *args = NULL;

    *seq = 0;
    if (sqlite3_prepare_v2(a->db, "SELECT seq, args FROM events WHERE type = "
                           "'checkpoint' ORDER BY seq DESC LIMIT 1", -1, &st,
                           NULL) != SQLITE_OK) {
        nu__audit_db_err(err, a->db, "find the newest checkpoint");
        return NULL;
    }
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 1) != NULL) {
        *seq = sqlite3_column_int64(st, 0);
        args = json_loads((const char *)sqlite3_column_text(st, 1), 0, NULL);
    }
    sqlite3_finalize(st);
    if (args == NULL)
        nu_err_set(err, NU_ENOENT, "audit: no checkpoint yet (one is written "
                   "every %d events, at pod close, or by 'nucleus audit "
                   "checkpoint')", NU_AUDIT_CHECKPOINT_EVERY);
    return args;
}

int nu_audit_root(nu_audit_t *a, int64_t size, uint8_t root[NU_SHA256_LEN],
                  nu_err_t *err)
{
    int rc;

    pthread_mutex_lock(&a->db_mu);
    rc = nu_merkle_subtree(nu__audit_node, a, 0, (uint64_t)size, root, err);
    pthread_mutex_unlock(&a->db_mu);
    return rc;
}

static json_t *nu__path_json(const uint8_t (*path)[NU_SHA256_LEN], size_t len)
{
    json_t *arr = json_array();
    char hex[NU_SHA256_HEX_LEN + 1];

    for (size_t i = 0; arr != NULL && i < len; i++) {
        nu_hex_encode(path[i], NU_SHA256_LEN, hex);
        json_array_append_new(arr, json_string(hex));
    }
    return arr;
}

static int nu__read_event(nu_audit_t *a, int64_t seq, nu_audit_record_t *r,
                          nu_err_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc = NU_OK;

    if (sqlite3_prepare_v2(a->db, "SELECT " NU__AUDIT_COLUMNS " FROM events "
                           "WHERE seq = ?", -1, &st, NULL) != SQLITE_OK)
        return nu__audit_db_err(err, a->db, "read an event");
    sqlite3_bind_int64(st, 1, seq);
    if (sqlite3_step(st) == SQLITE_ROW)
        nu__audit_row(st, r);
    else
        rc = nu_err_set(err, NU_ENOENT, "audit: event %" PRId64 " not found",
                        seq);
    sqlite3_finalize(st);
    return rc;
}

json_t *nu_audit_prove_inclusion(nu_audit_t *a, int64_t seq, nu_err_t *err)
{
    uint8_t path[NU_MERKLE_MAX_PATH][NU_SHA256_LEN];
    nu_audit_record_t r = { 0 };
    json_t *cp, *event = NULL, *proof = NULL;
    int64_t cp_seq, size;
    size_t len = 0;

    pthread_mutex_lock(&a->db_mu);
    cp = nu__audit_latest_checkpoint(a, &cp_seq, err);
    if (cp == NULL)
        goto cleanup;
    size = cp_seq - 1;
    if (seq < 1 || seq > size) {
        nu_err_set(err, NU_ERANGE, "audit: cannot prove event %" PRId64 ": "
                   "the newest checkpoint covers events 1 to %" PRId64
                   " (write a checkpoint first)", seq, size);
        goto cleanup;
    }
    if (nu__read_event(a, seq, &r, err) != NU_OK ||
        nu_merkle_inclusion(nu__audit_node, a, (uint64_t)seq - 1,
                            (uint64_t)size, path, &len, err) != NU_OK)
        goto cleanup;
    event = nu_audit_record_to_json(&r, err);
    if (event == NULL)
        goto cleanup;

    proof = json_pack("{s:s, s:I, s:I, s:O, s:o, s:O}", "type", "inclusion",
                      "leaf_index", (json_int_t)(seq - 1), "tree_size",
                      (json_int_t)size, "event", event, "path",
                      nu__path_json(path, len), "checkpoint", cp);
    if (proof == NULL)
        nu_err_set(err, NU_ENOMEM, "audit: cannot build the proof");

cleanup:
    pthread_mutex_unlock(&a->db_mu);
    nu_audit_record_clear(&r);
    json_decref(event);
    json_decref(cp);
    return proof;
}

json_t *nu_audit_prove_consistency(nu_audit_t *a, int64_t from, int64_t to,
                                   nu_err_t *err)
{
    uint8_t path[NU_MERKLE_MAX_PATH][NU_SHA256_LEN];
    uint8_t old_root[NU_SHA256_LEN], new_root[NU_SHA256_LEN];
    char old_hex[NU_SHA256_HEX_LEN + 1], new_hex[NU_SHA256_HEX_LEN + 1];
    json_t *cp = NULL, *old_cp = NULL, *proof = NULL;
    int64_t cp_seq;
    size_t len = 0;

    pthread_mutex_lock(&a->db_mu);
    if (to == 0) {
        cp = nu__audit_latest_checkpoint(a, &cp_seq, err);
        to = cp_seq - 1;
    } else if ((cp = nu__checkpoint_at(a, to, err)) == NULL) {
        nu_err_set(err, NU_ENOENT, "audit: cannot prove consistency to size "
                   "%" PRId64 ": no checkpoint covers exactly that many "
                   "events (omit --to for the newest checkpoint)", to);
    }
    if (cp == NULL)
        goto cleanup;
    if (from < 1 || from > to) {
        nu_err_set(err, NU_ERANGE, "audit: cannot prove consistency from "
                   "size %" PRId64 " to %" PRId64 ": need 1 <= from <= to",
                   from, to);
        goto cleanup;
    }
    if (nu_merkle_consistency(nu__audit_node, a, (uint64_t)from,
                              (uint64_t)to, path, &len, err) != NU_OK ||
        nu_merkle_subtree(nu__audit_node, a, 0, (uint64_t)from, old_root,
                          err) != NU_OK ||
        nu_merkle_subtree(nu__audit_node, a, 0, (uint64_t)to, new_root,
                          err) != NU_OK)
        goto cleanup;
    nu_hex_encode(old_root, sizeof old_root, old_hex);
    nu_hex_encode(new_root, sizeof new_root, new_hex);
    old_cp = nu__checkpoint_at(a, from, NULL);

    proof = json_pack("{s:s, s:I, s:I, s:s, s:s, s:o, s:O}", "type",
                      "consistency", "from", (json_int_t)from, "to",
                      (json_int_t)to, "old_root", old_hex, "new_root",
                      new_hex, "path", nu__path_json(path, len),
                      "checkpoint", cp);
    if (proof != NULL && old_cp != NULL)
        json_object_set(proof, "old_checkpoint", old_cp);
    if (proof == NULL)
        nu_err_set(err, NU_ENOMEM, "audit: cannot build the proof");

cleanup:
    pthread_mutex_unlock(&a->db_mu);
    json_decref(cp);
    json_decref(old_cp);
    return proof;
}

/* ---- checking proofs offline ------------------------------------------- */

static int nu__path_parse(const json_t *arr, uint8_t (*path)[NU_SHA256_LEN],
                          size_t *len, nu_err_t *err)
{
    size_t i;
    json_t *item;

    if (!json_is_array(arr) || json_array_size(arr) > NU_MERKLE_MAX_PATH)
        return nu_err_set(err, NU_EPARSE, "proof: 'path' must be an array of "
                          "at most %d hashes", NU_MERKLE_MAX_PATH);
    json_array_foreach(arr, i, item) {
        const char *hex = json_string_value(item);

        if (hex == NULL || nu_hex_decode(hex, path[i], NU_SHA256_LEN) != 0)
            return nu_err_set(err, NU_EPARSE, "proof: path entry %zu is not "
                              "64 hex digits", i);
    }
    *len = json_array_size(arr);
    return NU_OK;
}

static int nu__signed_checkpoint(const json_t *obj, const char *member,
                                 const nu_audit_trust_t *trust,
                                 nu_audit_checkpoint_info_t *cp,
                                 nu_err_t *err)
{
    int rc;

    rc = nu_audit_checkpoint_parse(json_object_get(obj, member), cp, err);
    if (rc != NU_OK)
        return nu_err_set(err, NU_EDENIED, "proof: invalid '%s': %s", member,
                          err != NULL ? err->msg : "");
    rc = nu_audit_checkpoint_check(cp, trust, NULL, err);
    if (rc != NU_OK)
        nu_audit_checkpoint_info_clear(cp);
    return rc;
}

static int nu__check_inclusion(const json_t *proof,
                               const nu_audit_trust_t *trust, char *summary,
                               size_t size, nu_err_t *err)
{
    uint8_t path[NU_MERKLE_MAX_PATH][NU_SHA256_LEN];
    uint8_t leaf[NU_SHA256_LEN], hash[NU_SHA256_LEN], prev[NU_SHA256_LEN];
    nu_audit_checkpoint_info_t cp = { 0 };
    nu_audit_record_t r = { 0 };
    json_int_t index, tree_size;
    uint8_t *buf = NULL;
    char *pre = NULL;
    size_t len = 0, plen = 0;
    int rc;

    index = json_integer_value(json_object_get(proof, "leaf_index"));
    tree_size = json_integer_value(json_object_get(proof, "tree_size"));
    rc = nu__path_parse(json_object_get(proof, "path"), path, &plen, err);
    if (rc == NU_OK)
        rc = nu_audit_record_from_json(json_object_get(proof, "event"), &r,
                                       err);
    if (rc == NU_OK)
        rc = nu__signed_checkpoint(proof, "checkpoint", trust, &cp, err);
    if (rc != NU_OK)
        goto cleanup;

    if (r.seq != index + 1 || cp.size != tree_size) {
        rc = nu_err_set(err, NU_EDENIED, "proof: leaf_index %lld or tree_size "
                        "%lld does not match the event (seq %" PRId64 ") or "
                        "the checkpoint (size %" PRId64 ")", (long long)index,
                        (long long)tree_size, r.seq, cp.size);
        goto cleanup;
    }
    pre = nu_audit_preimage(&r, &len, err);
    buf = pre != NULL ? malloc(NU_SHA256_LEN + len) : NULL;
    if (buf == NULL || nu_hex_decode(r.prev_hash, prev, sizeof prev) != 0 ||
        nu_hex_decode(r.hash, hash, sizeof hash) != 0) {
        rc = nu_err_set(err, NU_EDENIED, "proof: the event is malformed");
        goto cleanup;
    }
    memcpy(buf, prev, NU_SHA256_LEN);
    memcpy(buf + NU_SHA256_LEN, pre, len);
    nu_sha256(buf, NU_SHA256_LEN + len, prev);
    if (memcmp(prev, hash, NU_SHA256_LEN) != 0) {
        rc = nu_err_set(err, NU_EDENIED, "proof: the event's hash does not "
                        "match its contents");
        goto cleanup;
    }
    nu_merkle_leaf_hash(pre, len, leaf);
    if (!nu_merkle_verify_inclusion(leaf, (uint64_t)index,
                                    (uint64_t)tree_size,
                                    (const uint8_t (*)[NU_SHA256_LEN])path,
                                    plen, cp.root)) {
        rc = nu_err_set(err, NU_EDENIED, "proof: the path does not lead from "
                        "event %" PRId64 " to the checkpoint root", r.seq);
        goto cleanup;
    }
    snprintf(summary, size, "ok: event %" PRId64 " is included in '%s' at "
             "size %" PRId64 ", signed root %02x%02x%02x%02x...", r.seq,
             cp.origin, cp.size, cp.root[0], cp.root[1], cp.root[2],
             cp.root[3]);

cleanup:
    free(buf);
    free(pre);
    nu_audit_record_clear(&r);
    nu_audit_checkpoint_info_clear(&cp);
    return rc;
}

static int nu__check_consistency(const json_t *proof,
                                 const nu_audit_trust_t *trust, char *summary,
                                 size_t size, nu_err_t *err)
{
    uint8_t path[NU_MERKLE_MAX_PATH][NU_SHA256_LEN];
    uint8_t old_root[NU_SHA256_LEN], new_root[NU_SHA256_LEN];
    nu_audit_checkpoint_info_t cp = { 0 }, old_cp = { 0 };
    json_int_t from, to;
    const char *old_hex, *new_hex;
    size_t plen = 0;
    int rc, old_signed = 0;

    from = json_integer_value(json_object_get(proof, "from"));
    to = json_integer_value(json_object_get(proof, "to"));
    old_hex = json_string_value(json_object_get(proof, "old_root"));
    new_hex = json_string_value(json_object_get(proof, "new_root"));
    if (old_hex == NULL || new_hex == NULL ||
        nu_hex_decode(old_hex, old_root, NU_SHA256_LEN) != 0 ||
        nu_hex_decode(new_hex, new_root, NU_SHA256_LEN) != 0)
        return nu_err_set(err, NU_EPARSE, "proof: old_root and new_root must "
                          "be 64 hex digits");
    rc = nu__path_parse(json_object_get(proof, "path"), path, &plen, err);
    if (rc == NU_OK)
        rc = nu__signed_checkpoint(proof, "checkpoint", trust, &cp, err);
    if (rc != NU_OK)
        goto cleanup;
    if (cp.size != to || memcmp(cp.root, new_root, NU_SHA256_LEN) != 0) {
        rc = nu_err_set(err, NU_EDENIED, "proof: new_root and 'to' do not "
                        "match the signed checkpoint");
        goto cleanup;
    }
    if (json_object_get(proof, "old_checkpoint") != NULL) {
        rc = nu__signed_checkpoint(proof, "old_checkpoint", trust, &old_cp,
                                   err);
        if (rc != NU_OK)
            goto cleanup;
        if (old_cp.size != from ||
            memcmp(old_cp.root, old_root, NU_SHA256_LEN) != 0 ||
            strcmp(old_cp.origin, cp.origin) != 0) {
            rc = nu_err_set(err, NU_EDENIED, "proof: old_root and 'from' do "
                            "not match the old signed checkpoint");
            goto cleanup;
        }
        old_signed = 1;
    }
    if (from < 1 ||
        !nu_merkle_verify_consistency((uint64_t)from, (uint64_t)to, old_root,
                                      new_root,
                                      (const uint8_t (*)[NU_SHA256_LEN])path,
                                      plen)) {
        rc = nu_err_set(err, NU_EDENIED, "proof: the log of size %lld is not "
                        "an extension of the log of size %lld",
                        (long long)to, (long long)from);
        goto cleanup;
    }
    snprintf(summary, size, "ok: '%s' at size %lld extends size %lld (old "
             "root %s)", cp.origin, (long long)to, (long long)from,
             old_signed ? "signed" : "as given in the proof");

cleanup:
    nu_audit_checkpoint_info_clear(&cp);
    nu_audit_checkpoint_info_clear(&old_cp);
    return rc;
}

int nu_audit_check_proof(const json_t *proof, const nu_audit_trust_t *trust,
                         char *summary, size_t size, nu_err_t *err)
{
    const char *type = json_string_value(json_object_get(proof, "type"));

    if (type != NULL && strcmp(type, "inclusion") == 0)
        return nu__check_inclusion(proof, trust, summary, size, err);
    if (type != NULL && strcmp(type, "consistency") == 0)
        return nu__check_consistency(proof, trust, summary, size, err);
    return nu_err_set(err, NU_EPARSE, "proof: 'type' must be \"inclusion\" "
                      "or \"consistency\"");
}
