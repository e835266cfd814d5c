/*
 * test_audit.c - the audit store: preimage, redaction, failure modes,
 * group commit under threads and under separate processes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <sqlite3.h>

#include "audit_private.h"
#include "nucleus/json.h"

typedef struct fixture {
    char home[256];
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);

    snprintf(f->home, sizeof f->home, "/tmp/nu-test-audit-XXXXXX");
    if (mkdtemp(f->home) == NULL)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    char cmd[512];

    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->home);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

static nu_audit_t *open_log(fixture_t *f, uint64_t every)
{
    nu_audit_options_t opts = { 0 };
    nu_err_t err = { 0 };
    nu_audit_t *a = NULL;

    opts.home = f->home;
    opts.checkpoint_every = every;
    assert_int_equal(nu_audit_open(&opts, &a, &err), NU_OK);
    return a;
}

static int64_t append_one(nu_audit_t *a, const char *pod, int i)
{
    char path[64];
    nu_audit_event_t ev = { 0 };
    nu_err_t err = { 0 };
    int64_t seq = 0;
    json_t *args;
    int rc;

    snprintf(path, sizeof path, "file-%d.txt", i);
    args = json_pack("{s:s, s:i}", "path", path, "i", i);
    ev.pod = pod;
    ev.type = "tool_call";
    ev.tool = "read";
    ev.operation = "read";
    ev.args = args;
    ev.decision = "allow";
    rc = nu_audit_append(a, &ev, NULL, 0, &seq, &err);
    json_decref(args);
    if (rc != NU_OK)
        fail_msg("append failed: %s", err.msg);
    return seq;
}

static void verify_ok(nu_audit_t *a, nu_audit_report_t *rep)
{
    nu_err_t err = { 0 };
    int rc = nu_audit_verify(a, NULL, rep, &err);

    if (rc != NU_OK)
        fail_msg("verify failed (%d) at seq %lld: %s %s", rc,
                 (long long)rep->bad_seq, rep->reason, err.msg);
}

/* ---- preimage ------------------------------------------------------------- */

static char *random_string(unsigned *seed)
{
    static const char *const pieces[] = {
        "a", "Z", "\"", "\\", "\n", "\t", "\x01", "\x1f", "/", "\xc3\xa9",
        "\xe2\x80\xae", "\xf0\x9f\x98\x80", " ", "\x7f", "\xef\xbb\xbf",
    };
    size_t n = (size_t)rand_r(seed) % 12, cap = 1;
    char *s = calloc(1, 64);

    for (size_t i = 0; i < n; i++) {
        const char *p = pieces[(size_t)rand_r(seed) %
                               (sizeof pieces / sizeof pieces[0])];
        cap += strlen(p);
        strcat(s, p);
    }
    assert_true(cap <= 64);
    return s;
}

static void test_audit_preimage_matches_canonical_json(void **state)
{
    unsigned seed = 8785;

    (void)state;
    for (int iter = 0; iter < 500; iter++) {
        nu_audit_record_t r = { 0 };
        char **fields[] = { &r.time, &r.pod, &r.spiffe_id, &r.type, &r.tool,
                            &r.operation, &r.decision, &r.kind, &r.reason,
                            &r.result_digest, &r.profile_digest,
                            &r.prev_hash };
        const char *names[] = { "time", "pod", "spiffe_id", "type", "tool",
                                "operation", "decision", "kind", "reason",
                                "result_digest", "profile_digest",
                                "prev_hash" };
        json_t *obj = json_object(), *args;
        char *want, *got;
        size_t wlen, glen;

        r.seq = 1 + rand_r(&seed) % 100000;
        json_object_set_new(obj, "seq", json_integer(r.seq));
        for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
            if (rand_r(&seed) % 4 == 0)
                continue;
            *fields[i] = random_string(&seed);
            json_object_set_new(obj, names[i], json_string(*fields[i]));
        }
        if (rand_r(&seed) % 2) {
            char *s = random_string(&seed);
            args = json_pack("{s:s, s:[i, f, b, n]}", "k\xc3\xa9y", s, "l",
                             rand_r(&seed) % 1000, 0.5, 1);
            free(s);
            r.args = nu_json_canonical(args, NULL, NULL);
            json_object_set_new(obj, "args", args);
        }

        want = nu_json_canonical(obj, &wlen, NULL);
        got = nu_audit_preimage(&r, &glen, NULL);
        assert_non_null(got);
        assert_int_equal(glen, wlen);
        assert_string_equal(got, want);
        free(want);
        free(got);
        json_decref(obj);
        nu_audit_record_clear(&r);
    }
}

static void test_audit_preimage_rejects_invalid_utf8(void **state)
{
    nu_audit_record_t r = { 0 };
    nu_err_t err = { 0 };

    (void)state;
    r.seq = 1;
    r.type = strdup("tool_call");
    r.reason = strdup("bad \xc0\xaf overlong");
    assert_null(nu_audit_preimage(&r, NULL, &err));
    assert_int_equal(err.code, NU_EINVAL);
    nu_audit_record_clear(&r);
}


static int slow_canonical(const char *text)
{
    json_t *v = nu_json_parse(text, strlen(text), NULL);
    char *c = v != NULL ? nu_json_canonical(v, NULL, NULL) : NULL;
    int ok = c != NULL && strcmp(c, text) == 0;

    free(c);
    json_decref(v);
    return ok;
}

static void test_audit_canonical_scanner_agrees(void **state)
{
    static const char *const cases[] = {
        "{}", "[]", "{\"a\":1,\"b\":[true,false,null]}", "{\"b\":1,\"a\":2}",
        "{\"a\":1,\"a\":2}", "{ \"a\":1}", "[1,2 ]", "\"x\"", "-0", "0", "01",
        "9007199254740992", "9007199254740993", "-9007199254740992",
        "\"\\u001f\"", "\"\\u001F\"", "\"\\u000a\"", "\"\\n\"", "\"\\/\"",
        "\"\x7f\"", "\"\xc3\xa9\"", "\"\\u00e9\"", "\"\xc0\xaf\"",
        "{\"\xef\xbf\xbf\":1,\"\xf0\x9f\x98\x80\":2}",
        "{\"\xf0\x9f\x98\x80\":2,\"\xef\xbf\xbf\":1}", "{\"a\":{\"c\":1,\"b\":2}}",
        "[1,]", "{\"a\"}", "tru", "nulll", "", "\"\t\"", "{\"\":0,\"a\":1}",
    };

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int fast = nu__audit_is_canonical(cases[i]);

        /* -1 sends the text to the round trip, so only decisions count. */
        if (fast >= 0 && fast != slow_canonical(cases[i]))
            fail_msg("case %zu '%s': scanner %d, round trip %d", i, cases[i],
                     fast, slow_canonical(cases[i]));
    }
    assert_int_equal(nu__audit_is_canonical("[1.5]"), -1);
    assert_int_equal(nu__audit_is_canonical("100000000000000000000"), -1);
    assert_int_equal(nu__audit_is_canonical("9007199254740993"), -1);
    assert_int_equal(nu__audit_is_canonical("{\"a\":1,\"b\":2}"), 1);
    assert_int_equal(nu__audit_is_canonical("{\"b\":1,\"a\":2}"), 0);
    assert_int_equal(nu__audit_is_canonical("{\"a\":1e30}"), -1);
}

/* ---- appending ------------------------------------------------------------ */

static void test_audit_append_and_verify(void **state)
{
    fixture_t *f = *state;
    nu_audit_t *a = open_log(f, 10);
    nu_audit_report_t rep;
    int64_t cp = 0;

    for (int i = 1; i <= 25; i++)
        append_one(a, "p1", i);
    verify_ok(a, &rep);
    /* 25 events plus checkpoints after events 10 and 20 (seq 11 and 22). */
    assert_int_equal(rep.events, 27);
    assert_int_equal(rep.checkpoints, 2);
    assert_int_equal(rep.anchored, 21);
    assert_int_equal(rep.unanchored, 5);

    assert_int_equal(nu_audit_checkpoint(a, &cp, NULL), NU_OK);
    assert_int_equal(cp, 28);
    assert_int_equal(nu_audit_checkpoint(a, &cp, NULL), NU_OK);
    assert_int_equal(cp, 0);
    verify_ok(a, &rep);
    assert_int_equal(rep.unanchored, 0);
    assert_int_equal(rep.checkpoints, 3);
    nu_audit_close(a);
}

static void test_audit_doubles_in_args_verify(void **state)
{
    static const double values[] = { 0.1, 1e21, 1e20, 1e-7, 123.456, -0.0,
                                     5e-324, 1.7976931348623157e308,
                                     0.000001, 2.5e-6, 1234567.0, -3.75 };
    fixture_t *f = *state;
    nu_audit_t *a = open_log(f, 0);
    nu_audit_report_t rep;
    char path[512];
    FILE *out;

    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        json_t *args = json_pack("{s:f}", "x", values[i]);
        nu_audit_event_t ev = { .type = "tool_call", .args = args };

        assert_int_equal(nu_audit_append(a, &ev, NULL, 0, NULL, NULL), NU_OK);
        json_decref(args);
    }
    assert_int_equal(nu_audit_checkpoint(a, NULL, NULL), NU_OK);
    verify_ok(a, &rep);
    assert_int_equal(rep.events, 13);

    /* The export must carry 1e20 (stored as a 21-digit literal) through. */
    snprintf(path, sizeof path, "%s/export.jsonl", f->home);
    out = fopen(path, "w");
    assert_int_equal(nu_audit_export(a, NULL, 1, out, NULL), NU_OK);
    fclose(out);
    out = fopen(path, "r");
    char *key = nu_audit_local_public_key(f->home, NULL);
    nu_audit_trust_t trust = { key, NULL };
    assert_int_equal(nu_audit_verify_export(out, &trust, NULL, &rep, NULL),
                     NU_OK);
    assert_int_equal(rep.events, 13);
    fclose(out);
    free(key);
    nu_audit_close(a);
}

static void test_audit_redaction_keeps_secret_out_of_file(void **state)
{
    fixture_t *f = *state;
    nu_audit_t *a = open_log(f, 0);
    const char *secret = "s3cr3t-t0ken-value";
    nu_audit_redaction_t red[] = { { "API_TOKEN", secret } };
    nu_audit_event_t ev = { 0 };
    char path[512], cmd[1024];
    json_t *args;

    args = json_pack("{s:s, s:[s]}", "url",
                     "https://x.test/?token=s3cr3t-t0ken-value", "headers",
                     "Authorization: Bearer s3cr3t-t0ken-value");
    ev.type = "tool_call";
    ev.tool = "web_fetch";
    ev.args = args;
    ev.reason = "sent s3cr3t-t0ken-value twice: s3cr3t-t0ken-value";
    assert_int_equal(nu_audit_append(a, &ev, red, 1, NULL, NULL), NU_OK);
    json_decref(args);
    nu_audit_close(a);

    /* Neither the database, its WAL nor the anchor may hold the value. */
    snprintf(path, sizeof path, "%s", f->home);
    snprintf(cmd, sizeof cmd, "grep -r -a -q '%s' '%s'", secret, path);
    assert_int_not_equal(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "grep -r -a -q 'REDACTED:API_TOKEN' '%s'",
             path);
    assert_int_equal(system(cmd), 0);
}

static int first_args(const nu_audit_record_t *r, void *ud)
{
    *(char **)ud = strdup(r->args);
    return 1;
}

static void test_audit_large_args_become_digest(void **state)
{
    fixture_t *f = *state;
    nu_audit_t *a = open_log(f, 0);
    nu_audit_event_t ev = { 0 };
    char *big = malloc(10001), *stored = NULL;
    json_t *args, *parsed;

    memset(big, 'x', 10000);
    big[10000] = '\0';
    args = json_pack("{s:s}", "content", big);
    ev.type = "tool_call";
    ev.tool = "write";
    ev.args = args;
    assert_int_equal(nu_audit_append(a, &ev, NULL, 0, NULL, NULL), NU_OK);
    assert_int_equal(nu_audit_scan(a, 1, NULL, first_args, &stored, NULL), 1);

    parsed = json_loads(stored, 0, NULL);
    assert_non_null(parsed);
    assert_int_equal(json_integer_value(json_object_get(parsed, "size")),
                     10000 + strlen("{\"content\":\"\"}"));
    assert_int_equal(strlen(json_string_value(json_object_get(parsed,
                                                              "sha256"))), 64);
    assert_int_equal(strlen(json_string_value(json_object_get(parsed,
                                                              "prefix"))),
                     NU_AUDIT_ARGS_PREFIX);
    json_decref(parsed);
    json_decref(args);
    free(stored);
    free(big);
    nu_audit_close(a);
}

static void test_audit_append_rejects_bad_input(void **state)
{
    fixture_t *f = *state;
    nu_audit_t *a = open_log(f, 0);
    nu_audit_event_t ev = { 0 };
    nu_err_t err = { 0 };

    assert_int_equal(nu_audit_append(a, &ev, NULL, 0, NULL, &err), NU_EINVAL);
    ev.type = "checkpoint";
    assert_int_equal(nu_audit_append(a, &ev, NULL, 0, NULL, &err), NU_EINVAL);
    ev.type = "tool_call";
    ev.result_digest = "not-a-digest";
    assert_int_equal(nu_audit_append(a, &ev, NULL, 0, NULL, &err), NU_EINVAL);
    assert_non_null(strstr(err.msg, "result_digest"));
    ev.result_digest = NULL;
    ev.pod = "bad\xff";
    assert_int_equal(nu_audit_append(a, &ev, NULL, 0, NULL, &err), NU_EINVAL);
    nu_audit_close(a);
}

static int count_pairs(void *ctx, int ncol, char **vals, char **names)
{
    (void)ncol;
    (void)names;
    *(long long *)ctx = atoll(vals[0]);
    return 0;
}

static long long query_count(nu_audit_t *a, const char *sql)
{
    long long n = -1;

    assert_int_equal(sqlite3_exec(a->db, sql, count_pairs, &n, NULL),
                     SQLITE_OK);
    return n;
}

static void test_audit_disk_full_fails_append(void **state)
{
    fixture_t *f = *state;
    nu_audit_t *a = open_log(f, 0);
    nu_audit_event_t ev = { 0 };
    nu_err_t err = { 0 };
    int64_t size = 0;
    char *big = malloc(3000);
    json_t *args;
    int rc = NU_OK;

    append_one(a, "p", 1);
    /* Cap the database at its current size plus a few pages: SQLite then
     * reports SQLITE_FULL exactly as on a full disk. */
    char pragma[64];
    long long pages = query_count(a, "PRAGMA page_count");
    snprintf(pragma, sizeof pragma, "PRAGMA max_page_count = %lld",
             pages + 2);
    assert_int_equal(sqlite3_exec(a->db, pragma, NULL, NULL, NULL),
                     SQLITE_OK);
    memset(big, 'y', 2999);
    big[2999] = '\0';
    args = json_pack("{s:s}", "content", big);
    ev.type = "tool_call";
    ev.args = args;
    for (int i = 0; i < 50 && rc == NU_OK; i++)
        rc = nu_audit_append(a, &ev, NULL, 0, NULL, &err);
    assert_int_equal(rc, NU_EIO);
    assert_non_null(strstr(err.msg, "full"));
    json_decref(args);
    free(big);

    /* What did commit still verifies; the failed event is not there. */
    assert_int_equal(nu_audit_size(a, &size, NULL), NU_OK);
    nu_audit_report_t rep;
    verify_ok(a, &rep);
    assert_int_equal(rep.events, size);
    nu_audit_close(a);
}

static void test_audit_locked_database_fails_append(void **state)
{
    fixture_t *f = *state;
    nu_audit_options_t opts = { 0 };
    nu_audit_t *a = NULL;
    nu_err_t err = { 0 };
    sqlite3 *other = NULL;
    char path[512];

    opts.home = f->home;
    opts.busy_timeout_ms = 100;
    assert_int_equal(nu_audit_open(&opts, &a, &err), NU_OK);
    snprintf(path, sizeof path, "%s/audit.db", f->home);
    assert_int_equal(sqlite3_open(path, &other), SQLITE_OK);
    assert_int_equal(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL),
                     SQLITE_OK);

    nu_audit_event_t ev = { .type = "decision", .decision = "deny" };
    assert_int_equal(nu_audit_append(a, &ev, NULL, 0, NULL, &err), NU_EIO);
    assert_non_null(strstr(err.msg, "locked"));

    sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(other);
    assert_int_equal(nu_audit_append(a, &ev, NULL, 0, NULL, &err), NU_OK);
    nu_audit_close(a);
}

static void test_audit_read_only_rejects_append(void **state)
{
    fixture_t *f = *state;
    nu_audit_options_t opts = { 0 };
    nu_audit_t *a = open_log(f, 0);
    nu_err_t err = { 0 };

    append_one(a, "p", 1);
    nu_audit_close(a);
    opts.home = f->home;
    opts.read_only = 1;
    assert_int_equal(nu_audit_open(&opts, &a, &err), NU_OK);
    nu_audit_event_t ev = { .type = "decision" };
    assert_int_equal(nu_audit_append(a, &ev, NULL, 0, NULL, &err), NU_EPERM);
    nu_audit_close(a);
}

/* ---- concurrency ----------------------------------------------------------- */

typedef struct worker {
    nu_audit_t *a;
    int id;
    int64_t *seqs;
} worker_t;

#define THREADS 32
#define PER_THREAD 1000

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    char pod[32];

    snprintf(pod, sizeof pod, "pod-%d", w->id);
    for (int i = 0; i < PER_THREAD; i++)
        w->seqs[i] = append_one(w->a, pod, i);
    return NULL;
}

static void test_audit_32_threads_share_commits(void **state)
{
    fixture_t *f = *state;
    nu_audit_t *a = open_log(f, 0);
    worker_t w[THREADS];
    pthread_t tid[THREADS];
    nu_audit_report_t rep;
    char *seen = calloc(THREADS * PER_THREAD + 100, 1);

    for (int i = 0; i < THREADS; i++) {
        w[i] = (worker_t){ a, i, calloc(PER_THREAD, sizeof(int64_t)) };
        assert_int_equal(pthread_create(&tid[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(tid[i], NULL);

    /* Every returned seq is distinct and names a stored event. */
    for (int i = 0; i < THREADS; i++) {
        for (int j = 0; j < PER_THREAD; j++) {
            int64_t s = w[i].seqs[j];
            assert_true(s >= 1 && s <= THREADS * PER_THREAD + 99);
            assert_false(seen[s]);
            seen[s] = 1;
        }
        free(w[i].seqs);
    }
    free(seen);

    assert_int_equal(query_count(a, "SELECT count(*) FROM events WHERE type "
                                 "= 'tool_call'"), THREADS * PER_THREAD);
    assert_int_equal(query_count(a, "SELECT count(*) - count(DISTINCT "
                                 "prev_hash) FROM events"), 0);
    verify_ok(a, &rep);
    assert_int_equal(rep.events - rep.checkpoints, THREADS * PER_THREAD);
    nu_audit_close(a);
}

static void test_audit_two_processes_do_not_fork_chain(void **state)
{
    fixture_t *f = *state;
    nu_audit_t *a;
    nu_audit_report_t rep;
    pid_t pids[2];

    /* Create the database and key first, then write from two children. */
    a = open_log(f, 0);
    nu_audit_close(a);
    for (int p = 0; p < 2; p++) {
        pids[p] = fork();
        assert_true(pids[p] >= 0);
        if (pids[p] == 0) {
            nu_audit_options_t opts = { .home = f->home,
                                        .checkpoint_every = 500 };
            nu_audit_t *child = NULL;
            int ok = nu_audit_open(&opts, &child, NULL) == NU_OK;

            for (int i = 0; ok && i < 2000; i++) {
                nu_audit_event_t ev = { .type = "tool_call",
                                        .pod = p ? "b" : "a" };
                ok = nu_audit_append(child, &ev, NULL, 0, NULL, NULL) == NU_OK;
            }
            nu_audit_close(child);
            _exit(ok ? 0 : 1);
        }
    }
    for (int p = 0; p < 2; p++) {
        int status = 0;
        waitpid(pids[p], &status, 0);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }

    a = open_log(f, 0);
    assert_int_equal(query_count(a, "SELECT count(*) FROM events WHERE type "
                                 "= 'tool_call'"), 4000);
    assert_int_equal(query_count(a, "SELECT count(*) - count(DISTINCT "
                                 "prev_hash) FROM events"), 0);
    verify_ok(a, &rep);
    assert_true(rep.checkpoints >= 7);
    nu_audit_close(a);
}

static void test_audit_schema_version_newer_is_rejected(void **state)
{
    fixture_t *f = *state;
    nu_audit_t *a = open_log(f, 0);
    nu_err_t err = { 0 };
    nu_audit_options_t opts = { .home = f->home };

    assert_int_equal(sqlite3_exec(a->db, "UPDATE meta SET value = '99' WHERE "
                                  "key = 'schema_version'", NULL, NULL, NULL),
                     SQLITE_OK);
    nu_audit_close(a);
    assert_int_equal(nu_audit_open(&opts, &a, &err), NU_EDB);
    assert_non_null(strstr(err.msg, "upgrade nucleus"));
    assert_non_null(strstr(err.msg, "schema version 99"));
}

/* atoi read these as version 0 (a new file), or overflowed, so the
 * migration ran over the existing tables and rewrote the version. */
static void test_audit_schema_version_damaged_is_rejected(void **state)
{
    static const char *const values[] = {
        "abc", "1x", "0", "-1", "", " 1", "99999999999999999999",
    };
    fixture_t *f = *state;
    nu_audit_options_t opts = { .home = f->home };
    char path[300];
    sqlite3 *db;

    snprintf(path, sizeof path, "%s/audit.db", f->home);
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        nu_audit_t *a = open_log(f, 0);
        sqlite3_stmt *st = NULL;
        nu_err_t err = { 0 };
        char want[128];

        assert_int_equal(sqlite3_prepare_v2(a->db, "UPDATE meta SET value = "
                                            "? WHERE key = 'schema_version'",
                                            -1, &st, NULL), SQLITE_OK);
        sqlite3_bind_text(st, 1, values[i], -1, SQLITE_STATIC);
        assert_int_equal(sqlite3_step(st), SQLITE_DONE);
        sqlite3_finalize(st);
        nu_audit_close(a);

        a = NULL;
        assert_int_equal(nu_audit_open(&opts, &a, &err), NU_EDB);
        assert_null(a);
        snprintf(want, sizeof want, "invalid schema_version '%s'", values[i]);
        if (strstr(err.msg, want) == NULL)
            fail_msg("'%s': %s", values[i], err.msg);

        /* Put the version back for the next value. */
        assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db, "UPDATE meta SET value = '1' "
                                      "WHERE key = 'schema_version'", NULL,
                                      NULL, NULL), SQLITE_OK);
        sqlite3_close(db);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_audit_preimage_matches_canonical_json),
        cmocka_unit_test(test_audit_preimage_rejects_invalid_utf8),
        cmocka_unit_test(test_audit_canonical_scanner_agrees),
        cmocka_unit_test_setup_teardown(test_audit_append_and_verify, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_audit_doubles_in_args_verify,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_audit_redaction_keeps_secret_out_of_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_large_args_become_digest,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_append_rejects_bad_input,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_disk_full_fails_append,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_audit_locked_database_fails_append, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_read_only_rejects_append,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_32_threads_share_commits,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_audit_two_processes_do_not_fork_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_audit_schema_version_newer_is_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_audit_schema_version_damaged_is_rejected, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
