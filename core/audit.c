/*
 * audit.c - the audit store: schema, group-committed appends, checkpoints.
 *
 * Schema (version 1; docs/audit-format.md has the full format):
 *   meta(key TEXT PRIMARY KEY, value TEXT)    schema_version, origin
 *   events(seq INTEGER PRIMARY KEY, time, pod, spiffe_id, type, tool,
 *          operation, args, decision, kind, reason, result_digest,
 *          profile_digest, prev_hash, hash)    hashes as lowercase hex
 *   tree(node INTEGER PRIMARY KEY, hash BLOB)  every perfect subtree,
 *          node = (last leaf index) * 64 + level, so proofs need no
 *          rehashing and appends only touch the table's last page
 * Triggers reject UPDATE and DELETE on events and tree; this file has no
 * update or delete path either.  There is deliberately no index on pod:
 * with pods interleaved, its entries land on one page per pod in every
 * commit, which cost a third of the append time; filtering by pod scans.
 *
 * Append protocol (one batch):
 *   1. BEGIN IMMEDIATE takes SQLite's write lock, so another process
 *      cannot append between our read of the tail and our commit;
 *   2. read the tail (newest seq and hash) inside that transaction; reload
 *      the cached Merkle frontier when another writer moved the tail;
 *   3. for each queued event: seq = tail + 1, prev_hash = tail hash, time =
 *      now, preimage, hash, INSERT, add the leaf and completed nodes to
 *      tree; after it, write a checkpoint event when one is due;
 *   4. COMMIT; only then do the waiting appenders return NU_OK.
 * Any failure rolls back the whole batch and every appender in it gets the
 * error, so no caller sees success for an event that was not committed.
 *
 * Group commit is leader/follower: an appender queues its job; when no
 * batch is running it becomes the leader and commits everything queued,
 * otherwise it waits until a leader has committed (or failed) its job.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/sha256.h>

#include "audit_private.h"
#include "nucleus/node.h"
#include "nucleus/home.h"
#include "nucleus/json.h"
#include "nucleus/log.h"

/* Extra batches a leader commits for others before returning. */
#define NU__LEADER_ROUNDS 8

/* Maximum time a leader waits for other appenders to queue (ns). */
#define NU__GATHER_NS 300000L

struct nu__audit_job {
    nu_audit_record_t rec;     /* fields owned by the job */
    int checkpoint_only;       /* an explicit nu_audit_checkpoint call */
    int done;
    int rc;
    nu_err_t err;
    pthread_cond_t cv;         /* signalled when done or asked to lead */
    nu__audit_job_t *next;
};

static const char *const nu__schema_v1[] = {
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE events(seq INTEGER PRIMARY KEY, time TEXT, pod TEXT, "
    "spiffe_id TEXT, type TEXT, tool TEXT, operation TEXT, args TEXT, "
    "decision TEXT, kind TEXT, reason TEXT, result_digest TEXT, "
    "profile_digest TEXT, prev_hash TEXT, hash TEXT)",
    "CREATE INDEX events_checkpoint ON events(seq) WHERE type = 'checkpoint'",
    "CREATE TABLE tree(node INTEGER PRIMARY KEY, hash BLOB NOT NULL)",
    "CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events "
    "BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END",
    "CREATE TRIGGER events_append_only_delete BEFORE DELETE ON events "
    "BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END",
    "CREATE TRIGGER tree_append_only_update BEFORE UPDATE ON tree "
    "BEGIN SELECT RAISE(ABORT, 'audit tree is append-only'); END",
    "CREATE TRIGGER tree_append_only_delete BEFORE DELETE ON tree "
    "BEGIN SELECT RAISE(ABORT, 'audit tree is append-only'); END",
    NULL
};

/* migrations[v] upgrades schema version v to v + 1. */
static const char *const *const nu__migrations[] = { nu__schema_v1 };

_Static_assert(sizeof nu__migrations / sizeof nu__migrations[0] ==
               NU_AUDIT_SCHEMA_VERSION, "one migration per schema version");

int nu__audit_db_err(nu_err_t *err, sqlite3 *db, const char *action)
{
    int code = sqlite3_extended_errcode(db) & 0xff;
    int nu = (code == SQLITE_FULL || code == SQLITE_IOERR ||
              code == SQLITE_BUSY || code == SQLITE_LOCKED ||
              code == SQLITE_READONLY || code == SQLITE_CANTOPEN)
                 ? NU_EIO : NU_EDB;

    return nu_err_set(err, nu, "audit: cannot %s: %s", action,
                      sqlite3_errmsg(db));
}

static int nu__exec(nu_audit_t *a, const char *sql, nu_err_t *err)
{
    if (sqlite3_exec(a->db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return nu__audit_db_err(err, a->db, sql);
    return NU_OK;
}

static int nu__meta_get(nu_audit_t *a, const char *key, char *out,
                        size_t size)
{
    sqlite3_stmt *st = NULL;
    int found = 0;

    if (sqlite3_prepare_v2(a->db, "SELECT value FROM meta WHERE key = ?", -1,
                           &st, NULL) != SQLITE_OK)
        return 0;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0)) {
        snprintf(out, size, "%s", (const char *)sqlite3_column_text(st, 0));
        found = 1;
    }
    sqlite3_finalize(st);
    return found;
}

/*
 * Read meta.schema_version into *version: 0 for a file without the meta
 * table or the key (a new file).  Returns NU_OK, or NU_EDB when the value
 * is not a positive decimal number, so a damaged value is never taken for
 * version 0 and "migrated" over existing tables.
 */
static int nu__schema_version(nu_audit_t *a, int *version, nu_err_t *err)
{
    char v[32];
    char *end;
    long n;
    sqlite3_stmt *st = NULL;
    int has_meta = 0;

    *version = 0;
    if (sqlite3_prepare_v2(a->db, "SELECT 1 FROM sqlite_master WHERE "
                           "type = 'table' AND name = 'meta'", -1, &st,
                           NULL) == SQLITE_OK) {
        has_meta = sqlite3_step(st) == SQLITE_ROW;
        sqlite3_finalize(st);
    }
    if (!has_meta || !nu__meta_get(a, "schema_version", v, sizeof v))
        return NU_OK;

    errno = 0;
    n = strtol(v, &end, 10);
    if (v[0] < '0' || v[0] > '9' || *end != '\0' || errno != 0 || n < 1 ||
        n > INT_MAX)
        return nu_err_set(err, NU_EDB, "audit: cannot open '%s': invalid "
                          "schema_version '%s' in the meta table (expected "
                          "a number from 1); the file is damaged or not a "
                          "Nucleus audit log", a->path, v);
    *version = (int)n;
    return NU_OK;
}

static void nu__new_origin(char *out, size_t size)
{
    uint8_t raw[NU_SHA256_LEN];
    char hex[NU_SHA256_HEX_LEN + 1];
    FILE *f = fopen("/dev/urandom", "rbe");

    if (f == NULL || fread(raw, 1, 16, f) != 16) {
        /* Uniqueness, not secrecy, is what matters for an origin. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        snprintf(hex, sizeof hex, "%016llx%08lx%08lx",
                 (unsigned long long)ts.tv_sec, (unsigned long)ts.tv_nsec,
                 (unsigned long)getpid());
        nu_sha256(hex, strlen(hex), raw);
    }
    if (f != NULL)
        fclose(f);
    nu_hex_encode(raw, 16, hex);
    snprintf(out, size, "nucleus:%s", hex);
}

/* Bring the schema to NU_AUDIT_SCHEMA_VERSION inside one write
 * transaction, so that two processes opening a new file do not both
 * create it. */
static int nu__migrate(nu_audit_t *a, nu_err_t *err)
{
    int version, rc;
    char sql[256];

    rc = nu__exec(a, "BEGIN IMMEDIATE", err);
    if (rc != NU_OK)
        return rc;

    rc = nu__schema_version(a, &version, err);
    if (rc != NU_OK)
        goto cleanup;
    if (version > NU_AUDIT_SCHEMA_VERSION) {
        rc = nu_err_set(err, NU_EDB, "audit: cannot open '%s': schema "
                        "version %d is newer than this nucleus reads (%d "
                        "and older); upgrade nucleus to the release that "
                        "wrote it or a later one", a->path, version,
                        NU_AUDIT_SCHEMA_VERSION);
        goto cleanup;
    }
    for (int v = version; v < NU_AUDIT_SCHEMA_VERSION; v++)
        for (const char *const *s = nu__migrations[v]; *s != NULL; s++)
            if ((rc = nu__exec(a, *s, err)) != NU_OK)
                goto cleanup;

    if (version == 0) {
        char origin[128];

        nu__new_origin(origin, sizeof origin);
        snprintf(sql, sizeof sql, "INSERT INTO meta VALUES('origin', '%s')",
                 origin);
        if ((rc = nu__exec(a, sql, err)) != NU_OK)
            goto cleanup;
    }
    if (version != NU_AUDIT_SCHEMA_VERSION) {
        snprintf(sql, sizeof sql, "INSERT OR REPLACE INTO meta "
                 "VALUES('schema_version', '%d')", NU_AUDIT_SCHEMA_VERSION);
        if ((rc = nu__exec(a, sql, err)) != NU_OK)
            goto cleanup;
    }
    rc = nu__exec(a, "COMMIT", err);

cleanup:
    if (rc != NU_OK)
        sqlite3_exec(a->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

static int nu__resolve_paths(nu_audit_t *a, nu_err_t *err)
{
    int rc;

    if (a->opts.db_path != NULL) {
        const char *slash = strrchr(a->opts.db_path, '/');

        snprintf(a->path, sizeof a->path, "%s", a->opts.db_path);
        if (a->opts.home != NULL)
            snprintf(a->home, sizeof a->home, "%s", a->opts.home);
        else if (slash == NULL)
            snprintf(a->home, sizeof a->home, ".");
        else
            snprintf(a->home, sizeof a->home, "%.*s",
                     (int)(slash - a->opts.db_path), a->opts.db_path);
        return NU_OK;
    }
    rc = nu_home_path(a->opts.home, NULL, a->home, sizeof a->home, err);
    if (rc != NU_OK)
        return rc;
    if (snprintf(a->path, sizeof a->path, "%s/audit.db", a->home) >=
        (int)sizeof a->path)
        return nu_err_set(err, NU_EINVAL, "audit: state directory path is "
                          "too long");
    return NU_OK;
}

static int nu__open_db(nu_audit_t *a, nu_err_t *err)
{
    int flags = SQLITE_OPEN_NOMUTEX;
    char pragma[128];
    int rc;

    flags |= a->opts.read_only ? SQLITE_OPEN_READONLY
                               : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    if (a->opts.read_only && access(a->path, F_OK) != 0)
        return nu_err_set(err, NU_ENOENT, "audit: cannot open '%s': no such "
                          "file (nothing has been logged yet, or pass --home "
                          "DIR / --db FILE)", a->path);
    /* Create the file ourselves so that it starts out private (SQLite
     * would create it 0644). */
    if (!a->opts.read_only) {
        int fd = open(a->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

        if (fd < 0)
            return nu_err_errno(err, errno, "audit: cannot create '%s'",
                                a->path);
        close(fd);
    }
    if (sqlite3_open_v2(a->path, &a->db, flags, NULL) != SQLITE_OK)
        return nu__audit_db_err(err, a->db, "open the audit database");

    sqlite3_busy_timeout(a->db, a->opts.busy_timeout_ms);
    if (a->opts.read_only)
        return NU_OK;

    rc = nu__exec(a, "PRAGMA journal_mode=WAL", err);
    if (rc != NU_OK)
        return rc;
    snprintf(pragma, sizeof pragma, "PRAGMA synchronous=%s",
             a->opts.durability == NU_AUDIT_POWER ? "FULL" : "NORMAL");
    rc = nu__exec(a, pragma, err);
    if (rc != NU_OK)
        return rc;

    /* Checkpointing the WAL into the database every 8192 pages (32 MiB
     * with 4 KiB pages) instead of SQLite's 1000 lets pages that many
     * commits touch reach the database file once, with one fsync. */
    return nu__exec(a, "PRAGMA wal_autocheckpoint=8192", err);
}

int nu_audit_open(const nu_audit_options_t *opts, nu_audit_t **out,
                  nu_err_t *err)
{
    nu_audit_t *a = calloc(1, sizeof *a);
    int rc;

    *out = NULL;
    if (a == NULL)
        return nu_err_set(err, NU_ENOMEM, "audit: out of memory");
    if (opts != NULL)
        a->opts = *opts;
    if (a->opts.checkpoint_every == 0)
        a->opts.checkpoint_every = NU_AUDIT_CHECKPOINT_EVERY;
    if (a->opts.checkpoint_seconds == 0)
        a->opts.checkpoint_seconds = NU_AUDIT_CHECKPOINT_SECONDS;
    if (a->opts.busy_timeout_ms <= 0)
        a->opts.busy_timeout_ms = 10000;
    pthread_mutex_init(&a->db_mu, NULL);
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->queued_cv, NULL);

    rc = nu__resolve_paths(a, err);
    if (rc == NU_OK)
        rc = nu__open_db(a, err);
    if (rc == NU_OK && !a->opts.read_only)
        rc = nu__migrate(a, err);
    if (rc != NU_OK)
        goto cleanup;
    if (!nu__meta_get(a, "origin", a->origin, sizeof a->origin)) {
        rc = nu_err_set(err, NU_EDB, "audit: cannot open '%s': not an audit "
                        "database (no origin in table meta)", a->path);
        goto cleanup;
    }
    if (a->opts.read_only) {
        *out = a;
        return NU_OK;
    }

    a->signer = a->opts.signer;
    if (a->signer == NULL) {
        char dir[4200];

        /* The node's X.509-SVID when the state directory has a CA (the
         * checkpoints then carry its chain), else the local key pair. */
        snprintf(dir, sizeof dir, "%s/audit", a->home);
        rc = nu_node_signer(a->home, &a->own_signer, err);
        if (rc == NU_OK)
            rc = nu_mkdir_p(dir, err);   /* the checkpoint anchor lives here */
        else if (rc == NU_ENOENT)
            rc = nu_audit_local_signer(dir, &a->own_signer, err);
        if (rc != NU_OK)
            goto cleanup;
        a->signer = &a->own_signer;
    }
    if (nu__audit_key_id_pem(a->signer->public_key_pem, a->key_id) != NU_OK) {
        rc = nu_err_set(err, NU_ECRYPTO, "audit: cannot use the signer: its "
                        "public key is not a PEM public key");
        goto cleanup;
    }
    *out = a;
    return NU_OK;

cleanup:
    nu_audit_close(a);
    return rc;
}

void nu_audit_close(nu_audit_t *a)
{
    if (a == NULL)
        return;
    sqlite3_finalize(a->insert_event);
    sqlite3_finalize(a->insert_node);
    sqlite3_finalize(a->select_tail);
    if (a->db != NULL)
        sqlite3_close(a->db);
    nu_audit_signer_free(&a->own_signer);
    pthread_cond_destroy(&a->queued_cv);
    pthread_mutex_destroy(&a->mu);
    pthread_mutex_destroy(&a->db_mu);
    free(a);
}

const char *nu_audit_origin(const nu_audit_t *a)
{
    return a->origin;
}

void nu_audit_digest(const void *data, size_t len,
                     char out[NU_SHA256_HEX_LEN + 1])
{
    nu_sha256_hex(data, len, out);
}

/* ---- preparing an event (outside any lock) ------------------------------ */

/* Replace every occurrence of each redaction value in s. */
static char *nu__redact(const char *s, const nu_audit_redaction_t *red,
                        size_t nred)
{
    char *cur = strdup(s);

    for (size_t i = 0; cur != NULL && i < nred; i++) {
        const char *value = red[i].value;
        char tag[160], *next, *hit, *out;
        size_t vlen, tlen, count = 0;

        if (value == NULL || value[0] == '\0')
            continue;
        vlen = strlen(value);
        snprintf(tag, sizeof tag, "[REDACTED:%s]",
                 red[i].name != NULL ? red[i].name : "secret");
        tlen = strlen(tag);
        for (hit = strstr(cur, value); hit; hit = strstr(hit + vlen, value))
            count++;
        if (count == 0)
            continue;

        next = malloc(strlen(cur) + count * tlen + 1);
        if (next == NULL) {
            free(cur);
            return NULL;
        }
        out = next;
        for (const char *p = cur; ; ) {
            hit = strstr(p, value);
            if (hit == NULL) {
                strcpy(out, p);
                break;
            }
            memcpy(out, p, (size_t)(hit - p));
            out += hit - p;
            memcpy(out, tag, tlen);
            out += tlen;
            p = hit + vlen;
        }
        free(cur);
        cur = next;
    }
    return cur;
}

/* Deep copy of v with every string redacted. */
static json_t *nu__redact_json(const json_t *v, const nu_audit_redaction_t *red,
                               size_t nred)
{
    json_t *copy, *item;
    const char *key;
    size_t i;

    switch (json_typeof(v)) {
    case JSON_STRING: {
        char *s = nu__redact(json_string_value(v), red, nred);
        copy = s != NULL ? json_string(s) : NULL;
        free(s);
        return copy;
    }
    case JSON_OBJECT:
        copy = json_object();
        json_object_foreach((json_t *)v, key, item) {
            if (copy == NULL ||
                json_object_set_new(copy, key,
                                    nu__redact_json(item, red, nred)) != 0) {
                json_decref(copy);
                return NULL;
            }
        }
        return copy;
    case JSON_ARRAY:
        copy = json_array();
        json_array_foreach(v, i, item) {
            if (copy == NULL ||
                json_array_append_new(copy,
                                      nu__redact_json(item, red, nred)) != 0) {
                json_decref(copy);
                return NULL;
            }
        }
        return copy;
    default:
        return json_deep_copy(v);
    }
}

/* Canonical text of the redacted args, replaced by a digest and a prefix
 * when longer than NU_AUDIT_ARGS_MAX. */
static char *nu__prepare_args(const json_t *args,
                              const nu_audit_redaction_t *red, size_t nred,
                              nu_err_t *err)
{
    char hex[NU_SHA256_HEX_LEN + 1], *text, *prefix, *out;
    json_t *redacted, *bounded;
    size_t len, cut;

    /* Without redactions the caller's value is serialized as it is. */
    redacted = nred > 0 ? nu__redact_json(args, red, nred)
                        : json_incref((json_t *)args);
    if (redacted == NULL) {
        nu_err_set(err, NU_EINVAL, "audit: cannot copy args: invalid UTF-8 "
                   "or out of memory");
        return NULL;
    }
    text = nu_json_canonical(redacted, &len, err);
    json_decref(redacted);
    if (text == NULL || len <= NU_AUDIT_ARGS_MAX)
        return text;

    /* Cut the prefix on a UTF-8 character boundary. */
    cut = NU_AUDIT_ARGS_PREFIX;
    while (cut > 0 && ((unsigned char)text[cut] & 0xc0) == 0x80)
        cut--;
    nu_sha256_hex(text, len, hex);
    prefix = strndup(text, cut);
    bounded = json_pack("{s:s, s:s, s:I}", "prefix", prefix ? prefix : "",
                        "sha256", hex, "size", (json_int_t)len);
    free(prefix);
    free(text);
    if (bounded == NULL) {
        nu_err_set(err, NU_ENOMEM, "audit: cannot bound args: out of memory");
        return NULL;
    }
    out = nu_json_canonical(bounded, NULL, err);
    json_decref(bounded);
    return out;
}

static int nu__check_text(const char *name, const char *value, nu_err_t *err)
{
    if (value != NULL && !nu__audit_utf8_valid(value))
        return nu_err_set(err, NU_EINVAL, "audit: cannot append event: field "
                          "'%s' is not valid UTF-8", name);
    return NU_OK;
}

static int nu__check_digest(const char *name, const char *value,
                            nu_err_t *err)
{
    if (value == NULL)
        return NU_OK;
    if (strlen(value) != NU_SHA256_HEX_LEN ||
        strspn(value, "0123456789abcdef") != NU_SHA256_HEX_LEN)
        return nu_err_set(err, NU_EINVAL, "audit: cannot append event: '%s' "
                          "must be 64 lowercase hex digits (a SHA-256), got "
                          "'%.80s'", name, value);
    return NU_OK;
}

static char *nu__dup(const char *s, int *failed)
{
    char *d;

    if (s == NULL)
        return NULL;
    d = strdup(s);
    if (d == NULL)
        *failed = 1;
    return d;
}

static int nu__prepare(nu__audit_job_t *job, const nu_audit_event_t *ev,
                       const nu_audit_redaction_t *red, size_t nred,
                       nu_err_t *err)
{
    nu_audit_record_t *r = &job->rec;
    int failed = 0, rc;

    if (ev->type == NULL || ev->type[0] == '\0')
        return nu_err_set(err, NU_EINVAL, "audit: cannot append event: "
                          "'type' is missing (e.g. tool_call)");
    if (strcmp(ev->type, "checkpoint") == 0)
        return nu_err_set(err, NU_EINVAL, "audit: cannot append event: type "
                          "'checkpoint' is reserved (call "
                          "nu_audit_checkpoint)");
    if ((rc = nu__check_text("pod", ev->pod, err)) != NU_OK ||
        (rc = nu__check_text("spiffe_id", ev->spiffe_id, err)) != NU_OK ||
        (rc = nu__check_text("type", ev->type, err)) != NU_OK ||
        (rc = nu__check_text("tool", ev->tool, err)) != NU_OK ||
        (rc = nu__check_text("operation", ev->operation, err)) != NU_OK ||
        (rc = nu__check_text("decision", ev->decision, err)) != NU_OK ||
        (rc = nu__check_text("kind", ev->kind, err)) != NU_OK ||
        (rc = nu__check_text("reason", ev->reason, err)) != NU_OK ||
        (rc = nu__check_digest("result_digest", ev->result_digest, err)) !=
            NU_OK ||
        (rc = nu__check_digest("profile_digest", ev->profile_digest, err)) !=
            NU_OK)
        return rc;

    r->pod = nu__dup(ev->pod, &failed);
    r->spiffe_id = nu__dup(ev->spiffe_id, &failed);
    r->type = nu__dup(ev->type, &failed);
    r->tool = nu__dup(ev->tool, &failed);
    r->operation = nu__dup(ev->operation, &failed);
    r->decision = nu__dup(ev->decision, &failed);
    r->kind = nu__dup(ev->kind, &failed);
    r->result_digest = nu__dup(ev->result_digest, &failed);
    r->profile_digest = nu__dup(ev->profile_digest, &failed);
    if (ev->reason != NULL && (r->reason = nu__redact(ev->reason, red,
                                                      nred)) == NULL)
        failed = 1;
    if (failed)
        return nu_err_set(err, NU_ENOMEM, "audit: cannot append event: out "
                          "of memory");
    if (ev->args != NULL) {
        r->args = nu__prepare_args(ev->args, red, nred, err);
        if (r->args == NULL)
            return err != NULL && err->code != 0 ? err->code : NU_EINVAL;
    }
    return NU_OK;
}

/* ---- the write transaction --------------------------------------------- */

static void nu__now(char out[40], int64_t *epoch)
{
    struct timespec ts;
    struct tm tm;
    char date[32];

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, 40, "%.19s.%09dZ", date, (int)(ts.tv_nsec % 1000000000L));
    if (epoch != NULL)
        *epoch = ts.tv_sec;
}

int64_t nu__audit_parse_time(const char *s)
{
    struct tm tm = { 0 };
    int n = 0;

    if (s == NULL || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year,
                            &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
                            &tm.tm_sec, &n) != 6 || n != 19)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm);
}

int nu__audit_node(void *ctx, unsigned level, uint64_t index,
                   uint8_t out[NU_SHA256_LEN], nu_err_t *err)
{
    nu_audit_t *a = ctx;
    sqlite3_stmt *st = NULL;
    int rc = NU_OK;

    if (sqlite3_prepare_v2(a->db, "SELECT hash FROM tree WHERE node = ?", -1,
                           &st, NULL) != SQLITE_OK)
        return nu__audit_db_err(err, a->db, "read the tree");
    sqlite3_bind_int64(st, 1, NU__AUDIT_NODE(level, index));
    if (sqlite3_step(st) != SQLITE_ROW ||
        sqlite3_column_bytes(st, 0) != NU_SHA256_LEN)
        rc = nu_err_set(err, NU_EDB, "audit: cannot read tree node (level "
                        "%u, index %" PRIu64 "): missing or damaged", level,
                        index);
    else
        memcpy(out, sqlite3_column_blob(st, 0), NU_SHA256_LEN);
    sqlite3_finalize(st);
    return rc;
}

typedef struct nu__txn {
    nu_audit_t *a;
    sqlite3_stmt *insert_event;
    sqlite3_stmt *insert_node;
    nu_err_t *err;
} nu__txn_t;

static int nu__emit_node(void *ctx, unsigned level, uint64_t index,
                         const uint8_t hash[NU_SHA256_LEN])
{
    nu__txn_t *t = ctx;
    sqlite3_stmt *st = t->insert_node;
    int step;

    sqlite3_bind_int64(st, 1, NU__AUDIT_NODE(level, index));
    sqlite3_bind_blob(st, 2, hash, NU_SHA256_LEN, SQLITE_STATIC);
    step = sqlite3_step(st);
    sqlite3_reset(st);
    if (step != SQLITE_DONE)
        return nu__audit_db_err(t->err, t->a->db, "store a tree node");
    return NU_OK;
}

/* Read the tail inside the transaction; reload the frontier and the
 * checkpoint state when another writer has moved it. */
static int nu__load_tail(nu__txn_t *t)
{
    nu_audit_t *a = t->a;
    sqlite3_stmt *st = NULL;
    int64_t size = 0;
    char hash[NU_SHA256_HEX_LEN + 1] = "";
    int rc = NU_OK;

    if (a->select_tail == NULL &&
        sqlite3_prepare_v3(a->db, "SELECT seq, hash FROM events ORDER BY seq "
                           "DESC LIMIT 1", -1, SQLITE_PREPARE_PERSISTENT,
                           &a->select_tail, NULL) != SQLITE_OK)
        return nu__audit_db_err(t->err, a->db, "read the chain tail");
    st = a->select_tail;
    if (sqlite3_step(st) == SQLITE_ROW) {
        size = sqlite3_column_int64(st, 0);
        snprintf(hash, sizeof hash, "%s",
                 sqlite3_column_text(st, 1) ? (const char *)
                 sqlite3_column_text(st, 1) : "");
    }
    sqlite3_reset(st);
    st = NULL;

    if (a->cache_valid && a->size == size && strcmp(a->last_hash, hash) == 0)
        return NU_OK;

    a->cache_valid = 0;
    a->size = size;
    if (size == 0)
        memset(a->last_hash, '0', NU_SHA256_HEX_LEN);
    else
        memcpy(a->last_hash, hash, sizeof hash);
    a->last_hash[NU_SHA256_HEX_LEN] = '\0';

    memset(&a->frontier, 0, sizeof a->frontier);
    for (int level = 63; level >= 0; level--) {
        uint64_t bit = UINT64_C(1) << level;

        if (!((uint64_t)size & bit))
            continue;
        rc = nu__audit_node(a, (unsigned)level,
                            ((uint64_t)size >> level) - 1,
                            a->frontier.hash[a->frontier.count++], t->err);
        if (rc != NU_OK)
            return rc;
    }
    a->frontier.size = (uint64_t)size;

    a->last_cp_seq = 0;
    if (sqlite3_prepare_v2(a->db, "SELECT max(seq) FROM events WHERE type = "
                           "'checkpoint'", -1, &st, NULL) != SQLITE_OK)
        return nu__audit_db_err(t->err, a->db, "find the newest checkpoint");
    if (sqlite3_step(st) == SQLITE_ROW)
        a->last_cp_seq = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);

    a->oldest_unanchored = -1;
    if (sqlite3_prepare_v2(a->db, "SELECT time FROM events WHERE seq = ?", -1,
                           &st, NULL) != SQLITE_OK)
        return nu__audit_db_err(t->err, a->db, "read an event time");
    sqlite3_bind_int64(st, 1, a->last_cp_seq + 1);
    if (sqlite3_step(st) == SQLITE_ROW)
        a->oldest_unanchored = nu__audit_parse_time(
            (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);

    a->cache_valid = 1;
    return rc;
}

static void nu__bind_text(sqlite3_stmt *st, int i, const char *v)
{
    if (v == NULL)
        sqlite3_bind_null(st, i);
    else
        sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
}

/* Assign seq, time and prev_hash to r, hash it and store it. */
static int nu__write_event(nu__txn_t *t, nu_audit_record_t *r,
                           const char *time)
{
    nu_audit_t *a = t->a;
    uint8_t prev[NU_SHA256_LEN], hash[NU_SHA256_LEN], leaf[NU_SHA256_LEN];
    char hash_hex[NU_SHA256_HEX_LEN + 1];
    mbedtls_sha256_context c;
    sqlite3_stmt *st = t->insert_event;
    char *pre;
    size_t len;
    int step, rc;

    r->seq = a->size + 1;
    free(r->time);
    free(r->prev_hash);
    free(r->hash);
    r->hash = NULL;
    r->time = strdup(time);
    r->prev_hash = strdup(a->last_hash);
    if (r->time == NULL || r->prev_hash == NULL)
        return nu_err_set(t->err, NU_ENOMEM, "audit: out of memory");

    pre = nu_audit_preimage(r, &len, t->err);
    if (pre == NULL)
        return NU_EINVAL;
    nu_hex_decode(r->prev_hash, prev, sizeof prev);
    mbedtls_sha256_init(&c);
    (void)mbedtls_sha256_starts_ret(&c, 0);
    (void)mbedtls_sha256_update_ret(&c, prev, sizeof prev);
    (void)mbedtls_sha256_update_ret(&c, (const unsigned char *)pre, len);
    (void)mbedtls_sha256_finish_ret(&c, hash);
    mbedtls_sha256_free(&c);
    nu_merkle_leaf_hash(pre, len, leaf);
    free(pre);
    nu_hex_encode(hash, sizeof hash, hash_hex);

    sqlite3_bind_int64(st, 1, r->seq);
    nu__bind_text(st, 2, r->time);
    nu__bind_text(st, 3, r->pod);
    nu__bind_text(st, 4, r->spiffe_id);
    nu__bind_text(st, 5, r->type);
    nu__bind_text(st, 6, r->tool);
    nu__bind_text(st, 7, r->operation);
    nu__bind_text(st, 8, r->args);
    nu__bind_text(st, 9, r->decision);
    nu__bind_text(st, 10, r->kind);
    nu__bind_text(st, 11, r->reason);
    nu__bind_text(st, 12, r->result_digest);
    nu__bind_text(st, 13, r->profile_digest);
    nu__bind_text(st, 14, r->prev_hash);
    nu__bind_text(st, 15, hash_hex);
    step = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (step != SQLITE_DONE)
        return nu__audit_db_err(t->err, a->db, "insert an event");

    rc = nu_merkle_frontier_add(&a->frontier, leaf, nu__emit_node, t);
    if (rc != NU_OK)
        return rc;
    a->size = r->seq;
    memcpy(a->last_hash, hash_hex, sizeof hash_hex);
    return NU_OK;
}

/* Sign a checkpoint over every event so far and append it as an event. */
static int nu__write_checkpoint(nu__txn_t *t, int64_t *seq_out)
{
    nu_audit_t *a = t->a;
    nu_audit_record_t r = { 0 };
    uint8_t root[NU_SHA256_LEN], sig[128];
    char time[40], root_hex[NU_SHA256_HEX_LEN + 1], sig_hex[257];
    size_t len, sig_len = 0;
    int64_t epoch;
    json_t *args = NULL;
    char *body;
    int rc;

    nu__now(time, &epoch);
    nu_merkle_frontier_root(&a->frontier, root);
    body = nu__audit_checkpoint_body(a->origin, a->size, root, time, &len,
                                     t->err);
    if (body == NULL)
        return NU_EINVAL;
    rc = a->signer->sign(a->signer->ctx, (const uint8_t *)body, len, sig,
                         sizeof sig, &sig_len, t->err);
    free(body);
    if (rc != NU_OK)
        return rc;

    nu_hex_encode(root, sizeof root, root_hex);
    nu_hex_encode(sig, sig_len, sig_hex);
    args = json_pack("{s:s, s:s, s:I, s:s, s:s, s:s}", "origin", a->origin,
                     "root_hash", root_hex, "size", (json_int_t)a->size,
                     "time", time, "signature", sig_hex, "key_id", a->key_id);
    if (args != NULL && a->signer->cert_chain_pem != NULL)
        json_object_set_new(args, "cert_chain",
                            json_string(a->signer->cert_chain_pem));
    r.type = strdup("checkpoint");
    r.args = args != NULL ? nu_json_canonical(args, NULL, t->err) : NULL;
    json_decref(args);
    if (r.type == NULL || r.args == NULL) {
        nu_audit_record_clear(&r);
        return nu_err_set(t->err, NU_ENOMEM, "audit: cannot encode the "
                          "checkpoint");
    }

    rc = nu__write_event(t, &r, time);
    if (rc == NU_OK) {
        free(a->anchor);
        a->anchor = r.args;
        r.args = NULL;
        a->last_cp_seq = r.seq;
        a->oldest_unanchored = -1;
        if (seq_out != NULL)
            *seq_out = r.seq;
    }
    nu_audit_record_clear(&r);
    return rc;
}

/* NOTE: the time rule is checked when an event is appended; an idle log
 * gets its time-based checkpoint with the next append or an explicit
 * nu_audit_checkpoint, since there is no timer thread. */
static int nu__checkpoint_due(nu_audit_t *a, int64_t now)
{
    int64_t pending = a->size - a->last_cp_seq;

    if (pending <= 0)
        return 0;
    if ((uint64_t)pending >= a->opts.checkpoint_every)
        return 1;
    return a->oldest_unanchored >= 0 &&
           now - a->oldest_unanchored >= (int64_t)a->opts.checkpoint_seconds;
}

static int nu__commit_batch(nu_audit_t *a, nu__audit_job_t *batch,
                            nu_err_t *err)
{
    nu__txn_t t = { a, NULL, NULL, err };
    char time[40];
    int64_t epoch;
    int rc;

    rc = nu__exec(a, "BEGIN IMMEDIATE", err);
    if (rc != NU_OK)
        return rc;
    if ((a->insert_event == NULL &&
         sqlite3_prepare_v3(a->db, "INSERT INTO events(" NU__AUDIT_COLUMNS
                            ") VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", -1,
                            SQLITE_PREPARE_PERSISTENT, &a->insert_event,
                            NULL) != SQLITE_OK) ||
        (a->insert_node == NULL &&
         sqlite3_prepare_v3(a->db, "INSERT INTO tree(node, hash) VALUES(?, ?)",
                            -1, SQLITE_PREPARE_PERSISTENT, &a->insert_node,
                            NULL) != SQLITE_OK)) {
        rc = nu__audit_db_err(err, a->db, "prepare the append");
        goto cleanup;
    }
    t.insert_event = a->insert_event;
    t.insert_node = a->insert_node;
    rc = nu__load_tail(&t);
    if (rc != NU_OK)
        goto cleanup;

    for (nu__audit_job_t *j = batch; j != NULL; j = j->next) {
        if (j->checkpoint_only) {
            j->rec.seq = 0;
            if (a->size > a->last_cp_seq)
                rc = nu__write_checkpoint(&t, &j->rec.seq);
        } else {
            nu__now(time, &epoch);
            rc = nu__write_event(&t, &j->rec, time);
            if (rc == NU_OK && a->oldest_unanchored < 0)
                a->oldest_unanchored = epoch;
            if (rc == NU_OK && nu__checkpoint_due(a, epoch))
                rc = nu__write_checkpoint(&t, NULL);
        }
        if (rc != NU_OK)
            goto cleanup;
    }

    if (sqlite3_exec(a->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        rc = nu__audit_db_err(err, a->db, "commit events");
        goto cleanup;
    }

    /* The anchor is written after the commit, so it never runs ahead of
     * the log; losing it in a crash only leaves an older anchor. */
    if (a->anchor != NULL && nu__audit_save_anchor(a, a->anchor) != NU_OK)
        nu_log(NU_LOG_WARN, "audit", "cannot save the checkpoint anchor "
               "under '%s/audit'", a->home);

cleanup:
    free(a->anchor);
    a->anchor = NULL;
    if (rc != NU_OK) {
        sqlite3_exec(a->db, "ROLLBACK", NULL, NULL, NULL);
        a->cache_valid = 0;
    }
    return rc;
}

/* Before committing, the leader waits a moment until every appender
 * inside nu_audit_append has queued its event (self is 1 when the
 * leader's own job is already done), so that one commit serves all of
 * them.  The wait ends at NU__GATHER_NS at the latest; it only adds
 * latency, never weakens durability. */
static void nu__gather(nu_audit_t *a, int self)
{
    struct timespec deadline;

    if (a->queued >= a->inside - self)
        return;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_nsec += NU__GATHER_NS;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    a->gather_self = self;
    a->gathering = 1;
    while (a->queued < a->inside - self)
        if (pthread_cond_timedwait(&a->queued_cv, &a->mu, &deadline) != 0)
            break;
    a->gathering = 0;
}

/* Wake a gathering leader only once its condition holds: waking it for
 * every arrival costs a context switch each.  Called with mu held. */
static void nu__gather_notify(nu_audit_t *a)
{
    if (a->gathering && a->queued >= a->inside - a->gather_self)
        pthread_cond_signal(&a->queued_cv);
}

/* Queue job and wait until some leader (maybe this thread) has committed
 * or failed it.  Each waiter sleeps on its own condition variable, so a
 * commit wakes exactly the appenders it completed.  A leader that stops
 * with work queued wakes the oldest waiter to lead next. */
static int nu__submit(nu_audit_t *a, nu__audit_job_t *job, nu_err_t *err)
{
    int extra_rounds = 0;

    pthread_cond_init(&job->cv, NULL);
    pthread_mutex_lock(&a->mu);
    a->queued++;
    nu__gather_notify(a);
    if (a->queue_tail != NULL)
        a->queue_tail->next = job;
    else
        a->queue_head = job;
    a->queue_tail = job;

    for (;;) {
        nu__audit_job_t *batch;
        nu_err_t batch_err = { 0 };
        int rc;

        /* A leader whose own job is done keeps committing what queued up
         * meanwhile for a few rounds: it is already running, while a
         * hand-over costs a wake-up. */
        if (job->done && (a->leader_active || a->queue_head == NULL ||
                          extra_rounds >= NU__LEADER_ROUNDS))
            break;
        if (a->leader_active) {
            pthread_cond_wait(&job->cv, &a->mu);
            continue;
        }
        if (job->done)
            extra_rounds++;

        a->leader_active = 1;
        nu__gather(a, job->done);
        batch = a->queue_head;
        a->queue_head = a->queue_tail = NULL;
        a->queued = 0;
        pthread_mutex_unlock(&a->mu);

        pthread_mutex_lock(&a->db_mu);
        rc = nu__commit_batch(a, batch, &batch_err);
        pthread_mutex_unlock(&a->db_mu);

        pthread_mutex_lock(&a->mu);
        for (nu__audit_job_t *j = batch, *next; j != NULL; j = next) {
            next = j->next;
            j->rc = rc;
            j->err = batch_err;
            j->done = 1;
            if (j != job)
                pthread_cond_signal(&j->cv);
        }
        a->leader_active = 0;
    }
    if (!a->leader_active && a->queue_head != NULL)
        pthread_cond_signal(&a->queue_head->cv);
    a->inside--;
    nu__gather_notify(a);
    pthread_mutex_unlock(&a->mu);
    pthread_cond_destroy(&job->cv);

    if (job->rc != NU_OK && err != NULL)
        *err = job->err;
    return job->rc;
}

int nu_audit_append(nu_audit_t *a, const nu_audit_event_t *ev,
                    const nu_audit_redaction_t *red, size_t nred,
                    int64_t *seq_out, nu_err_t *err)
{
    nu__audit_job_t job = { 0 };
    int rc;

    if (a->opts.read_only)
        return nu_err_set(err, NU_EPERM, "audit: cannot append to '%s': "
                          "opened read-only", a->path);
    pthread_mutex_lock(&a->mu);
    a->inside++;
    pthread_mutex_unlock(&a->mu);

    rc = nu__prepare(&job, ev, red, nred, err);
    if (rc == NU_OK) {
        rc = nu__submit(a, &job, err);
    } else {
        pthread_mutex_lock(&a->mu);
        a->inside--;
        nu__gather_notify(a);
        pthread_mutex_unlock(&a->mu);
    }
    if (rc == NU_OK && seq_out != NULL)
        *seq_out = job.rec.seq;
    nu_audit_record_clear(&job.rec);
    return rc;
}

int nu_audit_checkpoint(nu_audit_t *a, int64_t *seq_out, nu_err_t *err)
{
    nu__audit_job_t job = { 0 };
    int rc;

    if (a->opts.read_only)
        return nu_err_set(err, NU_EPERM, "audit: cannot checkpoint '%s': "
                          "opened read-only", a->path);
    job.checkpoint_only = 1;
    pthread_mutex_lock(&a->mu);
    a->inside++;
    pthread_mutex_unlock(&a->mu);
    rc = nu__submit(a, &job, err);
    if (rc == NU_OK && seq_out != NULL)
        *seq_out = job.rec.seq;
    nu_audit_record_clear(&job.rec);
    return rc;
}

/* ---- reading ------------------------------------------------------------ */

static char *nu__col(sqlite3_stmt *st, int i)
{
    const unsigned char *v = sqlite3_column_text(st, i);

    return v != NULL ? strdup((const char *)v) : NULL;
}

int nu__audit_row(sqlite3_stmt *st, nu_audit_record_t *r)
{
    memset(r, 0, sizeof *r);
    r->seq = sqlite3_column_int64(st, 0);
    r->time = nu__col(st, 1);
    r->pod = nu__col(st, 2);
    r->spiffe_id = nu__col(st, 3);
    r->type = nu__col(st, 4);
    r->tool = nu__col(st, 5);
    r->operation = nu__col(st, 6);
    r->args = nu__col(st, 7);
    r->decision = nu__col(st, 8);
    r->kind = nu__col(st, 9);
    r->reason = nu__col(st, 10);
    r->result_digest = nu__col(st, 11);
    r->profile_digest = nu__col(st, 12);
    r->prev_hash = nu__col(st, 13);
    r->hash = nu__col(st, 14);
    return NU_OK;
}

int nu_audit_scan(nu_audit_t *a, int64_t since, const char *pod,
                  nu_audit_record_fn fn, void *ud, nu_err_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc = NU_OK, step;

    pthread_mutex_lock(&a->db_mu);
    if (sqlite3_prepare_v2(a->db, pod != NULL
                           ? "SELECT " NU__AUDIT_COLUMNS " FROM events WHERE "
                             "seq >= ? AND pod = ? ORDER BY seq"
                           : "SELECT " NU__AUDIT_COLUMNS " FROM events WHERE "
                             "seq >= ? ORDER BY seq", -1, &st,
                           NULL) != SQLITE_OK) {
        rc = nu__audit_db_err(err, a->db, "read events");
        goto cleanup;
    }
    sqlite3_bind_int64(st, 1, since);
    if (pod != NULL)
        sqlite3_bind_text(st, 2, pod, -1, SQLITE_STATIC);

    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        nu_audit_record_t r;

        nu__audit_row(st, &r);
        rc = fn(&r, ud);
        nu_audit_record_clear(&r);
        if (rc != 0)
            goto cleanup;
    }
    if (step != SQLITE_DONE)
        rc = nu__audit_db_err(err, a->db, "read events");

cleanup:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&a->db_mu);
    return rc;
}

int nu_audit_size(nu_audit_t *a, int64_t *size, nu_err_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc = NU_OK;

    pthread_mutex_lock(&a->db_mu);
    if (sqlite3_prepare_v2(a->db, "SELECT coalesce(max(seq), 0) FROM events",
                           -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW)
        rc = nu__audit_db_err(err, a->db, "count events");
    else
        *size = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    pthread_mutex_unlock(&a->db_mu);
    return rc;
}
