/*
 * audit_export.c - JSON Lines export of the log and its verification.
 *
 * An export is canonical JSON, one object a line (docs/audit-format.md,
 * "Export"):
 *   1. {"export": {"format": "nucleus-audit-export", "version": 1,
 *       "origin": O, "first_seq": S, "prev_hash": hex of event S-1's hash,
 *       "frontier": [hex, ...], "pod": P (only with --pod)}}
 *      frontier lists the maximal perfect subtrees over events 1..S-1,
 *      largest first, so the tree can be continued from S;
 *   2. {"checkpoint": {...}}: the newest checkpoint, if any;
 *   3. the events, one canonical event object (with "hash") a line; with
 *      --pod only that pod's events, each followed by {"inclusion":
 *      {"seq": s, "path": [...]}} against the checkpoint when it covers s;
 *   4. {"end": {"events": count, "last_seq": seq}}: a file without it is
 *      truncated.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit_private.h"
#include "nucleus/json.h"

static int nu__put_line(FILE *out, json_t *obj, nu_err_t *err)
{
    char *text = obj != NULL ? nu_json_canonical(obj, NULL, err) : NULL;
    int rc = NU_OK;

    if (text == NULL)
        return err != NULL && err->code ? err->code : NU_ENOMEM;
    if (fputs(text, out) == EOF || fputc('\n', out) == EOF)
        rc = nu_err_set(err, NU_EIO, "audit: cannot write the export");
    free(text);
    return rc;
}

typedef struct nu__export {
    nu_audit_t *a;
    FILE *out;
    int64_t cp_size;
    int64_t count;
    int64_t last_seq;
    int with_proofs;
    nu_err_t *err;
} nu__export_t;

static int nu__export_event(const nu_audit_record_t *r, void *ud)
{
    uint8_t path[NU_MERKLE_MAX_PATH][NU_SHA256_LEN];
    char hex[NU_SHA256_HEX_LEN + 1];
    nu__export_t *x = ud;
    json_t *obj, *arr;
    size_t len = 0;
    int rc;

    obj = nu_audit_record_to_json(r, x->err);
    rc = nu__put_line(x->out, obj, x->err);
    json_decref(obj);
    if (rc != NU_OK)
        return rc;
    x->count++;
    x->last_seq = r->seq;
    if (!x->with_proofs || r->seq > x->cp_size)
        return NU_OK;

    /* nu_audit_scan holds db_mu, so the node reads go straight to db. */
    rc = nu_merkle_inclusion(nu__audit_node, x->a, (uint64_t)r->seq - 1,
                             (uint64_t)x->cp_size, path, &len, x->err);
    if (rc != NU_OK)
        return rc;
    arr = json_array();
    for (size_t i = 0; arr != NULL && i < len; i++) {
        nu_hex_encode(path[i], NU_SHA256_LEN, hex);
        json_array_append_new(arr, json_string(hex));
    }
    obj = json_pack("{s:{s:I, s:o}}", "inclusion", "seq", (json_int_t)r->seq,
                    "path", arr);
    rc = nu__put_line(x->out, obj, x->err);
    json_decref(obj);
    return rc;
}

static json_t *nu__export_header(nu_audit_t *a, const char *pod,
                                 int64_t since, nu_err_t *err)
{
    uint8_t node[NU_SHA256_LEN];
    char hex[NU_SHA256_HEX_LEN + 1], prev[NU_SHA256_HEX_LEN + 1];
    uint64_t size = (uint64_t)since - 1, done = 0;
    json_t *frontier = json_array(), *hdr;
    sqlite3_stmt *st = NULL;

    memset(prev, '0', NU_SHA256_HEX_LEN);
    prev[NU_SHA256_HEX_LEN] = '\0';
    if (size > 0 && sqlite3_prepare_v2(a->db, "SELECT hash FROM events WHERE "
                                       "seq = ?", -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, (int64_t)size);
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
            snprintf(prev, sizeof prev, "%s", sqlite3_column_text(st, 0));
        sqlite3_finalize(st);
    }
    for (int level = 63; level >= 0 && frontier != NULL; level--) {
        if (!(size & (UINT64_C(1) << level)))
            continue;
        if (nu__audit_node(a, (unsigned)level, done >> level, node, err)) {
            json_decref(frontier);
            return NULL;
        }
        done += UINT64_C(1) << level;
        nu_hex_encode(node, sizeof node, hex);
        json_array_append_new(frontier, json_string(hex));
    }
    hdr = json_pack("{s:s, s:i, s:s, s:I, s:s, s:o}", "format",
                    "nucleus-audit-export", "version", 1, "origin",
                    a->origin, "first_seq", (json_int_t)since, "prev_hash",
                    prev, "frontier", frontier);
    if (hdr != NULL && pod != NULL)
        json_object_set_new(hdr, "pod", json_string(pod));
    return hdr;
}

int nu_audit_export(nu_audit_t *a, const char *pod, int64_t since, FILE *out,
                    nu_err_t *err)
{
    nu__export_t x = { a, out, 0, 0, 0, pod != NULL, err };
    json_t *hdr, *cp, *line;
    int64_t cp_seq = 0, size = 0;
    int rc;

    if (since < 1)
        since = 1;

    /* An export from S continues the tree over events 1..S-1, so S may be
     * at most one past the last event (an empty export).  Appends only
     * grow the log, so the size read here stays a lower bound. */
    rc = nu_audit_size(a, &size, err);
    if (rc != NU_OK)
        return rc;
    if (since > size + 1)
        return nu_err_set(err, NU_ERANGE, "audit: cannot export from seq "
                          "%" PRId64 ": the log ends at seq %" PRId64
                          " (pass --since %" PRId64 " or less; %" PRId64
                          " gives an empty export)", since, size, size + 1,
                          size + 1);

    pthread_mutex_lock(&a->db_mu);
    hdr = nu__export_header(a, pod, since, err);
    cp = nu__audit_latest_checkpoint(a, &cp_seq, NULL);
    pthread_mutex_unlock(&a->db_mu);
    if (hdr == NULL) {
        json_decref(cp);
        return err != NULL && err->code ? err->code : NU_EDB;
    }

    line = json_pack("{s:o}", "export", hdr);
    rc = nu__put_line(out, line, err);
    json_decref(line);
    if (rc == NU_OK && cp != NULL) {
        x.cp_size = cp_seq - 1;
        line = json_pack("{s:O}", "checkpoint", cp);
        rc = nu__put_line(out, line, err);
        json_decref(line);
    }
    json_decref(cp);
    if (rc == NU_OK)
        rc = nu_audit_scan(a, since, pod, nu__export_event, &x, err);
    if (rc != NU_OK)
        return rc;

    line = json_pack("{s:{s:I, s:I}}", "end", "events", (json_int_t)x.count,
                     "last_seq", (json_int_t)x.last_seq);
    rc = nu__put_line(out, line, err);
    json_decref(line);
    if (rc == NU_OK && fflush(out) != 0)
        rc = nu_err_set(err, NU_EIO, "audit: cannot write the export");
    return rc;
}

/* ---- verifying an export --------------------------------------------------- */

typedef struct nu__import {
    nu_audit_verifier_t *v;
    nu_audit_trust_t trust;
    int have_header;
    int pod_mode;
    int have_cp;
    nu_audit_checkpoint_info_t cp;
    int64_t count;
    int64_t last_seq;
    int64_t unanchored;
    int awaiting_proof;        /* pod mode: seq whose inclusion line is due */
    uint8_t pending_leaf[NU_SHA256_LEN];
    int ended;
    int64_t first_seq;
} nu__import_t;

static int nu__import_header(nu__import_t *im, const json_t *hdr,
                             nu_err_t *err)
{
    uint8_t frontier[64][NU_SHA256_LEN];
    const char *origin = json_string_value(json_object_get(hdr, "origin"));
    const char *fmt = json_string_value(json_object_get(hdr, "format"));
    const char *prev = json_string_value(json_object_get(hdr, "prev_hash"));
    json_int_t first = json_integer_value(json_object_get(hdr, "first_seq"));
    json_t *arr = json_object_get(hdr, "frontier"), *item;
    size_t i;
    int rc;

    if (fmt != NULL && strcmp(fmt, "nucleus-audit-export") == 0 &&
        json_integer_value(json_object_get(hdr, "version")) > 1)
        return nu_err_set(err, NU_EPARSE, "audit: cannot read export: "
                          "format version %" JSON_INTEGER_FORMAT " is newer "
                          "than this nucleus reads (1); verify it with the "
                          "nucleus release that wrote it, or a newer one",
                          json_integer_value(json_object_get(hdr, "version")));
    if (fmt == NULL || strcmp(fmt, "nucleus-audit-export") != 0 ||
        json_integer_value(json_object_get(hdr, "version")) != 1 ||
        origin == NULL || prev == NULL || !json_is_array(arr) ||
        json_array_size(arr) > 64)
        return nu_err_set(err, NU_EPARSE, "audit: cannot read export: the "
                          "first line is not a version 1 export header");
    json_array_foreach(arr, i, item)
        if (json_string_value(item) == NULL ||
            nu_hex_decode(json_string_value(item), frontier[i],
                          NU_SHA256_LEN) != 0)
            return nu_err_set(err, NU_EPARSE, "audit: cannot read export: "
                              "frontier entry %zu is not 64 hex digits", i);

    im->pod_mode = json_object_get(hdr, "pod") != NULL;
    im->first_seq = first;
    rc = nu_audit_verifier_new(&im->trust, origin, &im->v, err);
    if (rc == NU_OK && !im->pod_mode)
        rc = nu_audit_verifier_resume(im->v, first, prev,
                                      (const uint8_t (*)[NU_SHA256_LEN])
                                      frontier, json_array_size(arr), err);
    im->have_header = 1;
    return rc;
}

/* Pod mode: an event must hash correctly on its own and be proven by the
 * inclusion line that follows it. */
static void nu__import_pod_event(nu__import_t *im, const nu_audit_record_t *r)
{
    uint8_t prev[NU_SHA256_LEN], hash[NU_SHA256_LEN];
    size_t len = 0;
    char *pre = nu_audit_preimage(r, &len, NULL);
    uint8_t *buf = pre != NULL ? malloc(NU_SHA256_LEN + len) : NULL;
    int ok = buf != NULL &&
             nu_hex_decode(r->prev_hash, prev, sizeof prev) == 0 &&
             nu_hex_decode(r->hash, hash, sizeof hash) == 0;

    if (ok) {
        memcpy(buf, prev, NU_SHA256_LEN);
        memcpy(buf + NU_SHA256_LEN, pre, len);
        nu_sha256(buf, NU_SHA256_LEN + len, prev);
        ok = memcmp(prev, hash, NU_SHA256_LEN) == 0;
        nu_merkle_leaf_hash(pre, len, im->pending_leaf);
    }
    free(buf);
    free(pre);
    if (!ok || r->seq <= im->last_seq) {
        nu_audit_verifier_fail(im->v, r->seq, ok ? "event out of order"
                               : "hash does not match the event's contents");
        return;
    }
    if (im->have_cp && r->seq <= im->cp.size)
        im->awaiting_proof = 1;
    else
        im->unanchored++;
}

static void nu__import_proof(nu__import_t *im, const json_t *inc)
{
    uint8_t path[NU_MERKLE_MAX_PATH][NU_SHA256_LEN];
    json_t *arr = json_object_get(inc, "path"), *item;
    size_t i, n = json_array_size(arr);
    int ok = im->awaiting_proof && n <= NU_MERKLE_MAX_PATH &&
             json_integer_value(json_object_get(inc, "seq")) == im->last_seq;

    json_array_foreach(arr, i, item)
        if (!ok || i >= NU_MERKLE_MAX_PATH ||
            nu_hex_decode(json_string_value(item) ? json_string_value(item)
                          : "", path[i], NU_SHA256_LEN) != 0)
            ok = 0;
    if (ok)
        ok = nu_merkle_verify_inclusion(im->pending_leaf,
                                        (uint64_t)im->last_seq - 1,
                                        (uint64_t)im->cp.size,
                                        (const uint8_t (*)[NU_SHA256_LEN])path,
                                        n, im->cp.root);
    if (!ok)
        nu_audit_verifier_fail(im->v, im->last_seq, "inclusion proof does not "
                               "lead to the checkpoint root");
    im->awaiting_proof = 0;
}

static int nu__import_line(nu__import_t *im, const json_t *obj, nu_err_t *err)
{
    nu_audit_record_t r;
    nu_err_t e = { 0 };
    json_t *part;
    int rc;

    if (!im->have_header) {
        part = json_object_get(obj, "export");
        if (part == NULL)
            return nu_err_set(err, NU_EPARSE, "audit: cannot read export: "
                              "the first line must be the export header");
        return nu__import_header(im, part, err);
    }
    if (im->ended) {
        nu_audit_verifier_fail(im->v, im->last_seq + 1, "lines after the end "
                               "line");
        return NU_OK;
    }
    if (im->awaiting_proof && json_object_get(obj, "inclusion") == NULL) {
        nu_audit_verifier_fail(im->v, im->last_seq, "inclusion proof missing");
        return NU_OK;
    }

    if ((part = json_object_get(obj, "checkpoint")) != NULL) {
        if (im->have_cp || im->count > 0 ||
            nu_audit_checkpoint_parse(part, &im->cp, &e) != NU_OK ||
            nu_audit_checkpoint_check(&im->cp, &im->trust, NULL, &e) != NU_OK) {
            nu_audit_verifier_fail(im->v, im->cp.size + 1, e.msg[0] ? e.msg
                                   : "checkpoint line out of place");
            return NU_OK;
        }
        im->have_cp = 1;
        return NU_OK;
    }
    if ((part = json_object_get(obj, "inclusion")) != NULL) {
        nu__import_proof(im, part);
        return NU_OK;
    }
    if ((part = json_object_get(obj, "end")) != NULL) {
        if (json_integer_value(json_object_get(part, "events")) != im->count ||
            json_integer_value(json_object_get(part, "last_seq")) !=
                im->last_seq)
            nu_audit_verifier_fail(im->v, im->last_seq + 1, "end line does "
                                   "not match the events in the export");
        im->ended = 1;
        return NU_OK;
    }

    rc = nu_audit_record_from_json(obj, &r, &e);
    if (rc != NU_OK) {
        nu_audit_verifier_fail(im->v, im->last_seq + 1, e.msg);
        return NU_OK;
    }
    if (im->pod_mode)
        nu__import_pod_event(im, &r);
    else
        nu_audit_verifier_add(im->v, &r);
    im->count++;
    im->last_seq = r.seq;
    nu_audit_record_clear(&r);
    return NU_OK;
}

int nu_audit_verify_export(FILE *in, const nu_audit_trust_t *trust,
                           const char *default_key_pem,
                           nu_audit_report_t *rep, nu_err_t *err)
{
    nu__import_t im = { 0 };
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = NU_OK;

    if (trust != NULL)
        im.trust = *trust;
    if (im.trust.key_pem == NULL && im.trust.bundle_pem == NULL)
        im.trust.key_pem = default_key_pem;

    while (rc == NU_OK && (n = getline(&line, &cap, in)) > 0) {
        json_t *obj;

        if (line[n - 1] == '\n')
            line[--n] = '\0';
        /* Large doubles in args print as long integer literals, which
         * only a parse that reads numbers as doubles accepts. */
        obj = nu_json_parse(line, (size_t)n, err);
        if (obj == NULL)
            obj = json_loadb(line, (size_t)n, JSON_REJECT_DUPLICATES |
                             JSON_DECODE_INT_AS_REAL, NULL);
        if (obj == NULL) {
            if (!im.have_header)
                rc = NU_EPARSE;
            else
                nu_audit_verifier_fail(im.v, im.last_seq + 1, "line is not "
                                       "valid JSON (damaged or truncated)");
            continue;
        }
        rc = nu__import_line(&im, obj, err);
        json_decref(obj);
    }
    free(line);
    if (rc == NU_OK && !im.have_header)
        rc = nu_err_set(err, NU_EPARSE, "audit: cannot read export: the file "
                        "is empty");
    if (rc != NU_OK)
        goto cleanup;

    if (!im.ended)
        nu_audit_verifier_fail(im.v, im.last_seq + 1, "export is truncated "
                               "(no end line)");
    if (im.awaiting_proof)
        nu_audit_verifier_fail(im.v, im.last_seq, "inclusion proof missing");
    rc = nu_audit_verifier_finish(im.v, rep);
    if (im.pod_mode) {
        rep->events = im.count;
        rep->checkpoints = im.have_cp;
        rep->anchored = im.have_cp ? im.cp.size : 0;
        rep->unanchored = im.unanchored;
        memcpy(rep->root, im.cp.root, NU_SHA256_LEN);
    } else if (rc == NU_OK && im.have_cp && im.cp.size + 1 >= im.first_seq &&
               rep->anchored < im.cp.size) {
        /* The checkpoint line claims more than the events reached. */
        rc = NU_EDENIED;
        rep->bad_seq = rep->events + 1;
        snprintf(rep->reason, sizeof rep->reason, "export ends before the "
                 "checkpoint's %" PRId64 " events", im.cp.size);
    }

cleanup:
    nu_audit_checkpoint_info_clear(&im.cp);
    nu_audit_verifier_free(im.v);
    return rc;
}
