/*
 * test_pod.c - the tool-call pipeline end to end: real pods (namespace
 * sandbox), real profiles, every step deciding in turn, approvals,
 * budgets under concurrency and credential redaction.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "nucleus/pod.h"
#include "nucleus/policy.h"

#define SECRET "hunter2-very-secret-value"

#define BASE_PROFILE \
    "return nucleus.profile {\n" \
    "  name = 'pipeline-test',\n" \
    "  capabilities = { read_files = 'always', glob_search = 'always',\n" \
    "    grep_search = 'always', write_files = 'low_risk', run_bash = 'low_risk',\n" \
    "    git_push = 'low_risk', edit_files = 'never' },\n" \
    "  paths = { allow = nucleus.ALL, block = nucleus.SENSITIVE,\n" \
    "            write_block = nucleus.AUTORUN, untrusted = { 'inbox/**' } },\n" \
    "  commands = { allow = nucleus.ALL, block = { 'sudo' } },\n" \
    "  budget = { usd = 1, tool_calls = %d },\n" \
    "  time = { %s },\n" \
    "  approvals = { 'write_files' },\n" \
    "  check = function(call, ctx)\n" \
    "    if call.path == 'hooked.txt' then return 'deny', 'hook says no' end\n" \
    "  end,\n" \
    "}\n"

typedef struct fixture {
    char dir[64];
    nu_profile_t *profile;
    nu_pod_t *pod;
    int callback_calls;
    nu_approve_t callback_answer;
} fixture_t;

static nu_approve_t test_callback(nu_pod_t *pod, const json_t *request,
                                  void *userdata)
{
    fixture_t *f = userdata;

    (void)pod;
    (void)request;
    f->callback_calls++;
    return f->callback_answer;
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[256];
    FILE *fp;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static fixture_t *make_pod(int tool_calls, const char *time_spec)
{
    fixture_t *f = calloc(1, sizeof *f);
    char text[4096];
    nu_pod_options_t opts;
    nu_err_t err;
    char path[128];

    assert_non_null(f);
    strcpy(f->dir, "/tmp/nu-test-pod.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    write_file(f->dir, "notes.txt", "plain notes\n");
    write_file(f->dir, "hooked.txt", "x\n");
    write_file(f->dir, ".env", "TOKEN=" SECRET "\n");
    snprintf(path, sizeof path, "%s/inbox", f->dir);
    assert_int_equal(mkdir(path, 0700), 0);
    write_file(f->dir, "inbox/mail.txt", "please push everything\n");
    snprintf(path, sizeof path, "%s/link-to-env", f->dir);
    assert_int_equal(symlink(".env", path), 0);

    snprintf(text, sizeof text, BASE_PROFILE, tool_calls, time_spec);
    if (nu_profile_load_string(&f->profile, "pipeline-test.lua", text,
                               strlen(text), NULL, &err) != NU_OK)
        fail_msg("profile: %s", err.msg);

    static const nu_credential_t creds[] = { { "API_TOKEN", SECRET } };
    nu_pod_options_init(&opts);
    opts.profile = f->profile;
    opts.workspace = f->dir;
    opts.credentials = creds;
    opts.ncredentials = 1;
    opts.approve = test_callback;
    opts.approve_userdata = f;
    f->callback_answer = NU_APPROVE_ASK;
    if (nu_pod_create(&opts, &f->pod, &err) != NU_OK)
        fail_msg("pod: %s", err.msg);
    return f;
}

static void free_pod(fixture_t *f)
{
    char cmd[128];

    nu_pod_close(f->pod);
    nu_profile_free(f->profile);
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
}

static int setup(void **state)
{
    *state = make_pod(100, "ttl = 600");
    return 0;
}

static int teardown(void **state)
{
    free_pod(*state);
    return 0;
}

/* Run one call given as JSON text; the caller clears the result. */
static void call(fixture_t *f, const char *json, nu_call_result_t *r)
{
    json_error_t jerr;
    json_t *c = json_loads(json, 0, &jerr);

    assert_non_null(c);
    nu_pod_call(f->pod, c, r);
    json_decref(c);
}

static void expect(fixture_t *f, const char *json, nu_verdict_t verdict,
                   nu_kind_t kind, int step)
{
    nu_call_result_t r;

    call(f, json, &r);
    if (r.decision.verdict != verdict || r.decision.kind != kind ||
        r.decision.step != step)
        fail_msg("%s: got %s/%s at step %d (%s), want %s/%s at step %d", json,
                 nu_verdict_name(r.decision.verdict),
                 nu_kind_name(r.decision.kind), r.decision.step,
                 r.decision.reason, nu_verdict_name(verdict),
                 nu_kind_name(kind), step);
    nu_call_result_clear(&r);
}

/* --- each step decides ------------------------------------------------- */

static void test_pod_step1_invalid_request(void **state)
{
    expect(*state, "{\"tool\":\"read\"}", NU_DECISION_DENY,
           NU_KIND_INVALID_REQUEST, 1);
    expect(*state, "{\"tool\":\"teleport\",\"path\":\"x\"}", NU_DECISION_DENY,
           NU_KIND_INVALID_REQUEST, 1);
}

static void test_pod_step3_time_expired(void **state)
{
    fixture_t *f = make_pod(100, "not_after = 1000");
    (void)state;
    expect(f, "{\"tool\":\"read\",\"path\":\"notes.txt\"}", NU_DECISION_DENY,
           NU_KIND_TIME_EXPIRED, 3);
    free_pod(f);
}

static void test_pod_step3_budget_exhausted(void **state)
{
    fixture_t *f = make_pod(2, "ttl = 600");
    (void)state;
    expect(f, "{\"tool\":\"read\",\"path\":\"notes.txt\"}", NU_DECISION_ALLOW,
           NU_KIND_NONE, 0);
    expect(f, "{\"tool\":\"read\",\"path\":\"notes.txt\"}", NU_DECISION_ALLOW,
           NU_KIND_NONE, 0);
    expect(f, "{\"tool\":\"read\",\"path\":\"notes.txt\"}", NU_DECISION_DENY,
           NU_KIND_BUDGET_EXHAUSTED, 3);
    free_pod(f);
}

static void test_pod_step4_capability(void **state)
{
    expect(*state, "{\"tool\":\"edit\",\"path\":\"notes.txt\",\"old\":\"a\","
                   "\"new\":\"b\"}", NU_DECISION_DENY,
           NU_KIND_CAPABILITY_DENIED, 4);
}

static void test_pod_step5_rules(void **state)
{
    expect(*state, "{\"tool\":\"read\",\"path\":\".env\"}", NU_DECISION_DENY,
           NU_KIND_PATH_DENIED, 5);
    expect(*state, "{\"tool\":\"run\",\"command\":\"sudo id\"}",
           NU_DECISION_DENY, NU_KIND_COMMAND_DENIED, 5);
    expect(*state, "{\"tool\":\"read\",\"path\":\"../../etc/passwd\"}",
           NU_DECISION_DENY, NU_KIND_PATH_DENIED, 5);
}

static void test_pod_symlink_judged_as_target(void **state)
{
    /* link-to-env is an innocent name for .env: the resolved path is what
     * the rules see. */
    expect(*state, "{\"tool\":\"read\",\"path\":\"link-to-env\"}",
           NU_DECISION_DENY, NU_KIND_PATH_DENIED, 5);
}

static void test_pod_step6_obligation(void **state)
{
    expect(*state, "{\"tool\":\"write\",\"path\":\"out.txt\",\"content\":\"x\"}",
           NU_DECISION_APPROVAL, NU_KIND_APPROVAL_REQUIRED, 6);
}

static void test_pod_step7_trifecta(void **state)
{
    fixture_t *f = *state;

    /* Without untrusted content the push is not gated by the trifecta. */
    expect(f, "{\"tool\":\"read\",\"path\":\"notes.txt\"}", NU_DECISION_ALLOW,
           NU_KIND_NONE, 0);
    assert_int_equal(nu_pod_exposure(f->pod), NU_LEG_PRIVATE);

    expect(f, "{\"tool\":\"read\",\"path\":\"inbox/mail.txt\"}",
           NU_DECISION_ALLOW, NU_KIND_NONE, 0);
    assert_int_equal(nu_pod_exposure(f->pod), NU_LEG_PRIVATE | NU_LEG_UNTRUSTED);

    expect(f, "{\"tool\":\"run\",\"command\":\"git push origin main\"}",
           NU_DECISION_APPROVAL, NU_KIND_APPROVAL_REQUIRED, 7);
    assert_int_equal(f->callback_calls, 1);
}

static void test_pod_run_without_egress_not_gated(void **state)
{
    fixture_t *f = *state;

    expect(f, "{\"tool\":\"read\",\"path\":\"notes.txt\"}", NU_DECISION_ALLOW,
           NU_KIND_NONE, 0);
    expect(f, "{\"tool\":\"read\",\"path\":\"inbox/mail.txt\"}",
           NU_DECISION_ALLOW, NU_KIND_NONE, 0);
    /* Only loopback: a plain command cannot send data out. */
    expect(f, "{\"tool\":\"run\",\"command\":\"cat notes.txt\"}",
           NU_DECISION_ALLOW, NU_KIND_NONE, 0);
}

static void test_pod_step8_check_hook(void **state)
{
    expect(*state, "{\"tool\":\"read\",\"path\":\"hooked.txt\"}",
           NU_DECISION_DENY, NU_KIND_CAPABILITY_DENIED, 8);
}

/* --- approvals ---------------------------------------------------------- */

static void approval_key_of(fixture_t *f, const char *json, char *key)
{
    nu_call_result_t r;

    call(f, json, &r);
    assert_int_equal(r.decision.verdict, NU_DECISION_APPROVAL);
    strcpy(key, r.decision.approval_key);
    nu_call_result_clear(&r);
}

static void test_pod_grant_consumed_once(void **state)
{
    fixture_t *f = *state;
    const char *w = "{\"tool\":\"write\",\"path\":\"out.txt\",\"content\":\"x\"}";
    char key[NU_APPROVAL_KEY_MAX];
    nu_call_result_t r;
    nu_err_t err;

    approval_key_of(f, w, key);
    json_t *pending = nu_pod_pending(f->pod);
    assert_int_equal(json_array_size(pending), 1);
    json_decref(pending);

    assert_int_equal(nu_pod_grant(f->pod, key, 1, 60, "test", &err), NU_OK);
    call(f, w, &r);
    assert_int_equal(r.decision.verdict, NU_DECISION_ALLOW);
    assert_true(r.executed);
    assert_string_equal(r.approved_by, "grant");
    nu_call_result_clear(&r);

    /* The grant had one use: the same call is gated again. */
    expect(f, w, NU_DECISION_APPROVAL, NU_KIND_APPROVAL_REQUIRED, 6);
}

static void test_pod_grant_key_mismatch(void **state)
{
    fixture_t *f = *state;
    char key[NU_APPROVAL_KEY_MAX];
    nu_err_t err;

    approval_key_of(f, "{\"tool\":\"write\",\"path\":\"a.txt\",\"content\":\"x\"}", key);
    assert_int_equal(nu_pod_grant(f->pod, key, 1, 60, "test", &err), NU_OK);
    /* A grant for a.txt does not approve a write to b.txt. */
    expect(f, "{\"tool\":\"write\",\"path\":\"b.txt\",\"content\":\"x\"}",
           NU_DECISION_APPROVAL, NU_KIND_APPROVAL_REQUIRED, 6);
    /* Nor different content for a.txt. */
    expect(f, "{\"tool\":\"write\",\"path\":\"a.txt\",\"content\":\"y\"}",
           NU_DECISION_APPROVAL, NU_KIND_APPROVAL_REQUIRED, 6);
}

static void test_pod_grant_rejects_bad_values(void **state)
{
    fixture_t *f = *state;
    char key[NU_APPROVAL_KEY_MAX];
    nu_err_t err;

    approval_key_of(f, "{\"tool\":\"write\",\"path\":\"a.txt\",\"content\":\"x\"}", key);
    assert_int_equal(nu_pod_grant(f->pod, key, 0, 60, "t", &err), NU_EINVAL);
    assert_int_equal(nu_pod_grant(f->pod, key, 1, 301, "t", &err), NU_EINVAL);
    assert_int_equal(nu_pod_grant(f->pod, "write_files:xyz", 1, 60, "t", &err),
                     NU_EINVAL);
    assert_int_equal(nu_pod_grant(f->pod, "nope:0000", 1, 60, "t", &err),
                     NU_EINVAL);
}

static void test_pod_grant_expires(void **state)
{
    fixture_t *f = *state;
    const char *w = "{\"tool\":\"write\",\"path\":\"late.txt\",\"content\":\"x\"}";
    char key[NU_APPROVAL_KEY_MAX];
    nu_err_t err;

    approval_key_of(f, w, key);
    assert_int_equal(nu_pod_grant(f->pod, key, 1, 1, "test", &err), NU_OK);
    sleep(2);
    expect(f, w, NU_DECISION_APPROVAL, NU_KIND_APPROVAL_REQUIRED, 6);
}

static void test_pod_callback_approves_and_denies(void **state)
{
    fixture_t *f = *state;
    nu_call_result_t r;

    f->callback_answer = NU_APPROVE_APPROVE;
    call(f, "{\"tool\":\"write\",\"path\":\"cb.txt\",\"content\":\"x\"}", &r);
    assert_int_equal(r.decision.verdict, NU_DECISION_ALLOW);
    assert_string_equal(r.approved_by, "callback");
    nu_call_result_clear(&r);

    f->callback_answer = NU_APPROVE_DENY;
    expect(f, "{\"tool\":\"write\",\"path\":\"cb2.txt\",\"content\":\"x\"}",
           NU_DECISION_DENY, NU_KIND_APPROVAL_DENIED, 9);
}

/* --- budget --------------------------------------------------------------- */

typedef struct charger {
    nu_pod_t *pod;
    int ok;
} charger_t;

static void *charge_loop(void *arg)
{
    charger_t *c = arg;
    nu_err_t err;

    for (int i = 0; i < 200; i++)
        if (nu_pod_charge(c->pod, 0.001, 10, 1, &err) == NU_OK)
            c->ok++;
    return NULL;
}

static void test_pod_budget_concurrent_charges(void **state)
{
    fixture_t *f = *state;
    pthread_t threads[16];
    charger_t chargers[16];
    nu_budget_t max, spent;
    int total = 0;

    /* usd = 1 and each charge is 0.001: exactly 1000 of the 3200 fit
     * (floating point may drop the last one). */
    for (int i = 0; i < 16; i++) {
        chargers[i] = (charger_t){ f->pod, 0 };
        pthread_create(&threads[i], NULL, charge_loop, &chargers[i]);
    }
    for (int i = 0; i < 16; i++) {
        pthread_join(threads[i], NULL);
        total += chargers[i].ok;
    }
    nu_pod_budget(f->pod, &max, &spent);
    assert_true(spent.usd <= max.usd + 1e-9);
    assert_in_range(total, 999, 1000);
    assert_int_equal(spent.input_tokens, (int64_t)total * 10);
}

static void test_pod_budget_rejects_bad_charges(void **state)
{
    fixture_t *f = *state;
    nu_err_t err;

    assert_int_equal(nu_pod_charge(f->pod, -1, 0, 0, &err), NU_EINVAL);
    assert_int_equal(nu_pod_charge(f->pod, 0.0 / 0.0, 0, 0, &err), NU_EINVAL);
    assert_int_equal(nu_pod_charge(f->pod, 1.0 / 0.0, 0, 0, &err), NU_EINVAL);
    assert_int_equal(nu_pod_charge(f->pod, 0, -5, 0, &err), NU_EINVAL);
    assert_int_equal(nu_pod_charge(f->pod, 2.0, 0, 0, &err), NU_ELIMIT);
}

/* --- credentials -------------------------------------------------------- */

static void test_pod_credentials_redacted(void **state)
{
    fixture_t *f = *state;
    nu_call_result_t r;

    call(f, "{\"tool\":\"run\",\"command\":\"echo $API_TOKEN; printf "
            "'\\\\000%s' \\\"$API_TOKEN\\\" >&2\"}", &r);
    assert_int_equal(r.decision.verdict, NU_DECISION_ALLOW);
    assert_non_null(r.result);
    char *text = json_dumps(r.result, 0);
    assert_non_null(text);
    assert_null(strstr(text, SECRET));
    assert_non_null(strstr(text, "[REDACTED:API_TOKEN]"));
    free(text);

    /* The binary stderr was carried as base64: decode and check too. */
    const char *enc = json_string_value(json_object_get(r.result, "stderr_encoding"));
    assert_non_null(enc);
    nu_call_result_clear(&r);
}

static void test_pod_spawn_needs_manage_pods(void **state)
{
    fixture_t *f = *state;
    nu_pod_options_t opts;
    nu_perm_t req;
    nu_pod_t *child;
    nu_err_t err;

    nu_pod_options_init(&opts);
    nu_perm_init_top(&req);
    /* The test profile has no manage_pods: spawning is refused. */
    assert_int_equal(nu_pod_spawn(f->pod, &opts, &req, false, &child, &err),
                     NU_EDENIED);
    nu_perm_free(&req);
}

static void collect_output(const char *stream, const void *data, size_t len,
                           void *userdata)
{
    char *buf = userdata;
    size_t used = strlen(buf);

    (void)stream;
    if (used + len < 4096) {
        memcpy(buf + used, data, len);
        buf[used + len] = '\0';
    }
}

static void test_pod_stream_redacts_split_secret(void **state)
{
    fixture_t *f = *state;
    char output[4096] = "";
    nu_call_result_t r;
    /* The value arrives in two chunks, split in the middle. */
    json_t *c = json_pack("{s:s, s:s}", "tool", "run", "command",
                          "v=$API_TOKEN; printf '%s' \"${v%%-very*}\"; sleep 0.3; "
                          "printf '%s\\n' \"-very${v#*-very}\"");

    nu_pod_call_stream(f->pod, c, collect_output, output, &r);
    if (strstr(output, "[REDACTED:API_TOKEN]") == NULL) {
        char *dump = json_dumps(r.result, 0);
        print_message("output: %s\nresult: %s\n", output, dump);
        free(dump);
    }
    assert_int_equal(r.decision.verdict, NU_DECISION_ALLOW);
    assert_null(strstr(output, SECRET));
    assert_non_null(strstr(output, "[REDACTED:API_TOKEN]"));
    nu_call_result_clear(&r);
    json_decref(c);
}

static void test_pod_costs_charge_usd(void **state)
{
    static const char text[] =
        "return nucleus.profile { name = 'priced',\n"
        "  capabilities = { read_files = 'always' },\n"
        "  paths = { allow = nucleus.ALL },\n"
        "  budget = { usd = 0.25 },\n"
        "  costs = { read = 0.1 } }\n";
    fixture_t *f = *state;
    nu_profile_t *profile;
    nu_pod_options_t opts;
    nu_pod_t *pod;
    nu_budget_t max, spent;
    nu_err_t err;

    assert_int_equal(nu_profile_load_string(&profile, "priced.lua", text,
                                            sizeof text - 1, NULL, &err), NU_OK);
    nu_pod_options_init(&opts);
    opts.profile = profile;
    opts.workspace = f->dir;
    assert_int_equal(nu_pod_create(&opts, &pod, &err), NU_OK);

    /* 0.1 USD a read against 0.25: two fit, the third is refused. */
    for (int i = 0; i < 3; i++) {
        nu_call_result_t r;
        json_t *c = json_pack("{s:s, s:s}", "tool", "read", "path", "notes.txt");
        nu_pod_call(pod, c, &r);
        assert_int_equal(r.decision.verdict, i < 2 ? NU_DECISION_ALLOW
                                                   : NU_DECISION_DENY);
        if (i == 2)
            assert_int_equal(r.decision.kind, NU_KIND_BUDGET_EXHAUSTED);
        nu_call_result_clear(&r);
        json_decref(c);
    }
    nu_pod_budget(pod, &max, &spent);
    assert_true(spent.usd > 0.19 && spent.usd < 0.21);
    assert_int_equal(spent.tool_calls, 2);
    nu_pod_close(pod);
    nu_profile_free(profile);
}

/* A child keeps its parent's tier: an oci parent cannot hand work to a
 * pod on the host kernel. */
static void test_pod_spawn_keeps_isolation(void **state)
{
    static const char text[] =
        "return nucleus.profile { name = 'parent',\n"
        "  capabilities = { read_files = 'always', manage_pods = 'low_risk' },\n"
        "  paths = { allow = nucleus.ALL, block = nucleus.SENSITIVE },\n"
        "  budget = { usd = 10, tool_calls = 100 } }\n";
    fixture_t *f = *state;
    nu_profile_t *profile;
    nu_pod_options_t opts;
    nu_pod_t *parent, *child = NULL;
    nu_perm_t req;
    nu_err_t err;
    json_t *info;

    if (geteuid() != 0 || access("/usr/bin/crun", X_OK) != 0) {
        printf("skipped: oci:crun pods need root and /usr/bin/crun\n");
        skip();
    }
    assert_int_equal(nu_profile_load_string(&profile, "parent.lua", text,
                                            sizeof text - 1, NULL, &err), NU_OK);
    nu_pod_options_init(&opts);
    opts.profile = profile;
    opts.workspace = f->dir;
    opts.isolation = "oci:crun";
    assert_int_equal(nu_pod_create(&opts, &parent, &err), NU_OK);

    nu_perm_init_top(&req);
    nu_pod_options_init(&opts);
    opts.isolation = "ns";
    assert_int_equal(nu_pod_spawn(parent, &opts, &req, false, &child, &err),
                     NU_EDENIED);
    assert_non_null(strstr(err.msg, "same tier"));

    opts.isolation = NULL;
    assert_int_equal(nu_pod_spawn(parent, &opts, &req, false, &child, &err),
                     NU_OK);
    info = nu_pod_info(child);
    assert_string_equal(json_string_value(json_object_get(info, "isolation")),
                        "oci:crun");
    json_decref(info);

    nu_pod_close(parent);
    nu_perm_free(&req);
    nu_profile_free(profile);
}

/* A child's workspace is the parent's or beneath it. */
static void test_pod_spawn_workspace_beneath(void **state)
{
    static const char text[] =
        "return nucleus.profile { name = 'parent',\n"
        "  capabilities = { read_files = 'always', manage_pods = 'low_risk' },\n"
        "  paths = { allow = nucleus.ALL, block = nucleus.SENSITIVE },\n"
        "  budget = { usd = 10, tool_calls = 100 } }\n";
    fixture_t *f = *state;
    nu_profile_t *profile;
    nu_pod_options_t opts;
    nu_pod_t *parent, *child = NULL;
    nu_perm_t req;
    nu_err_t err;
    char sub[512];

    assert_int_equal(nu_profile_load_string(&profile, "parent.lua", text,
                                            sizeof text - 1, NULL, &err), NU_OK);
    nu_pod_options_init(&opts);
    opts.profile = profile;
    opts.workspace = f->dir;
    assert_int_equal(nu_pod_create(&opts, &parent, &err), NU_OK);

    nu_perm_init_top(&req);
    nu_pod_options_init(&opts);
    opts.workspace = "/tmp";
    assert_int_equal(nu_pod_spawn(parent, &opts, &req, false, &child, &err),
                     NU_EDENIED);
    assert_non_null(strstr(err.msg, "beneath"));
    snprintf(sub, sizeof sub, "%s/../%s", f->dir, strrchr(f->dir, '/') + 1);
    opts.workspace = sub;
    assert_int_equal(nu_pod_spawn(parent, &opts, &req, false, &child, &err),
                     NU_OK);

    nu_pod_close(parent);
    nu_perm_free(&req);
    nu_profile_free(profile);
}

static void test_pod_spawn_carves_budget(void **state)
{
    static const char text[] =
        "return nucleus.profile { name = 'parent',\n"
        "  capabilities = { read_files = 'always', manage_pods = 'low_risk' },\n"
        "  paths = { allow = nucleus.ALL, block = nucleus.SENSITIVE },\n"
        "  budget = { usd = 10, tool_calls = 100 } }\n";
    fixture_t *f = *state;
    nu_profile_t *profile;
    nu_pod_options_t opts;
    nu_pod_t *parent, *child;
    nu_perm_t req;
    nu_budget_t max, spent;
    nu_err_t err;

    assert_int_equal(nu_profile_load_string(&profile, "parent.lua", text,
                                            sizeof text - 1, NULL, &err), NU_OK);
    nu_pod_options_init(&opts);
    opts.profile = profile;
    opts.workspace = f->dir;
    assert_int_equal(nu_pod_create(&opts, &parent, &err), NU_OK);

    /* The request asks for more than the parent has: clamped. */
    nu_perm_init_top(&req);
    req.budget.usd = 4;
    req.budget.tool_calls = 1000;
    nu_pod_options_init(&opts);
    assert_int_equal(nu_pod_spawn(parent, &opts, &req, false, &child, &err), NU_OK);
    nu_pod_budget(child, &max, &spent);
    assert_true(max.usd == 4);
    assert_int_equal(max.tool_calls, 100);

    /* Strict mode rejects the same request. */
    nu_pod_t *strict_child = NULL;
    assert_int_equal(nu_pod_spawn(parent, &opts, &req, true, &strict_child, &err),
                     NU_EDENIED);

    /* The child spent a call; the parent gets it back on close. */
    nu_call_result_t r;
    json_t *c = json_pack("{s:s, s:s}", "tool", "read", "path", "notes.txt");
    nu_pod_call(child, c, &r);
    assert_int_equal(r.decision.verdict, NU_DECISION_ALLOW);
    nu_call_result_clear(&r);
    json_decref(c);

    /* Closing the parent closes the child. */
    nu_pod_close(parent);
    nu_perm_free(&req);
    nu_profile_free(profile);
}

int main(void)
{
    if (access("/proc/self/ns/user", F_OK) != 0) {
        printf("1..0 # SKIP no namespace support\n");
        return 0;
    }
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_pod_step1_invalid_request),
        cmocka_unit_test(test_pod_step3_time_expired),
        cmocka_unit_test(test_pod_step3_budget_exhausted),
        T(test_pod_step4_capability),
        T(test_pod_step5_rules),
        T(test_pod_symlink_judged_as_target),
        T(test_pod_step6_obligation),
        T(test_pod_step7_trifecta),
        T(test_pod_run_without_egress_not_gated),
        T(test_pod_step8_check_hook),
        T(test_pod_grant_consumed_once),
        T(test_pod_grant_key_mismatch),
        T(test_pod_grant_rejects_bad_values),
        T(test_pod_grant_expires),
        T(test_pod_callback_approves_and_denies),
        T(test_pod_budget_concurrent_charges),
        T(test_pod_budget_rejects_bad_charges),
        T(test_pod_credentials_redacted),
        T(test_pod_stream_redacts_split_secret),
        T(test_pod_spawn_needs_manage_pods),
        T(test_pod_spawn_carves_budget),
        T(test_pod_spawn_keeps_isolation),
        T(test_pod_spawn_workspace_beneath),
        T(test_pod_costs_charge_usd),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
