/*
 * test_policy_profile.c - profile loading, hook semantics, the approve
 * hook, policy test files and the size of a loaded profile.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "nucleus/json.h"
#include "nucleus/policy.h"

static nu_profile_t *nu__load_text(const char *name, const char *text)
{
    nu_profile_t *profile = NULL;
    nu_err_t err;

    if (nu_profile_load_string(&profile, name, text, strlen(text), NULL,
                               &err) != NU_OK)
        fail_msg("cannot load %s: %s", name, err.msg);
    return profile;
}

static void nu__expect_error(const char *text, const char *expected)
{
    nu_profile_t *profile = NULL;
    nu_err_t err;

    assert_int_not_equal(nu_profile_load_string(&profile, "p.lua", text,
                                                strlen(text), NULL, &err),
                         NU_OK);
    assert_null(profile);
    if (strstr(err.msg, expected) == NULL)
        fail_msg("expected '%s' in '%s'", expected, err.msg);
}

static void nu__eval(nu_profile_t *profile, const char *call_text,
                     unsigned exposure, nu_decision_t *d, bool *attempt)
{
    nu_err_t err;
    json_t *call = nu_json_parse(call_text, strlen(call_text), &err);
    nu_decide_ctx_t ctx = { .exposure = exposure, .now = 1700000000 };
    nu_policy_ctx_t pctx = { .pod_id = "pod-1",
                             .spiffe_id = "spiffe://nucleus.local/ns/a/pod/pod-1" };

    assert_non_null(call);
    assert_int_equal(nu_profile_eval(profile, call, &ctx, &pctx, d, attempt),
                     NU_OK);
    json_decref(call);
}

static void test_profile_errors_name_file_and_line(void **state)
{
    nu__expect_error("return nucleus.profile {\n  name = 'x',\n  foo = 1,\n}\n",
                     "p.lua:1: unknown key 'foo' in profile");
    nu__expect_error("local p = {}\np.x = nucleus.profile { paths = { nope = {} } }\n",
                     "p.lua:2: unknown key 'paths.nope' in profile");
    nu__expect_error("return nucleus.profile { capabilities = { read_files = 'yes' } }",
                     "'capabilities.read_files' must be");
    nu__expect_error("return nucleus.profile { approvals = { 'fly' } }",
                     "'approvals[1]' must be an operation name");
    nu__expect_error("return 42\n", "p.lua:1: the profile must return");
    nu__expect_error("return nucleus.profile {\n", "p.lua:");
    nu__expect_error("local x = undefined_thing\n", "undefined global 'undefined_thing'");
    nu__expect_error("return nucleus.profile { network = { allow = { '10.0.0.0/99:443' } } }",
                     "must be an address or CIDR");
    nu__expect_error("return nucleus.profile { paths = { allow = { 'src/[a' } } }",
                     "must be a valid glob");
    nu__expect_error("return nucleus.profile { paths = { untrusted = { 'x/[' } } }",
                     "'paths.untrusted' entry 'x/[' must be a valid glob");
    nu__expect_error("return nucleus.profile { commands = { block = { 'rm \"-rf' } } }",
                     "balanced quotes");
}

static void test_profile_builtins_load_and_fit(void **state)
{
    const char *const *names = nu_profile_builtin_names();
    nu_policy_limits_t limits;

    nu_policy_limits_default(&limits);
    assert_non_null(names[0]);
    for (int i = 0; names[i] != NULL; i++) {
        nu_profile_t *profile = NULL;
        nu_err_t err;

        if (nu_profile_load(&profile, names[i], &limits, &err) != NU_OK)
            fail_msg("built-in %s: %s", names[i], err.msg);
        assert_string_equal(nu_profile_name(profile), names[i]);
        nu_profile_free(profile);
    }
}

/* A loaded profile with a hook stays within 256 KiB of Lua memory. */
static void test_profile_state_size(void **state)
{
    static const char text[] =
        "local blocked = { ['x'] = true }\n"
        "return nucleus.profile {\n"
        "  capabilities = { read_files = 'always' },\n"
        "  paths = { allow = nucleus.ALL, block = nucleus.SENSITIVE },\n"
        "  check = function(call) if blocked[call.path] then return 'deny', 'x' end end,\n"
        "}\n";
    nu_profile_t *profile = nu__load_text("size.lua", text);
    nu_policy_t *policy = nu_profile_policy(profile);
    nu_decision_t d;

    assert_non_null(policy);
    for (int i = 0; i < 100; i++)
        nu__eval(profile, "{\"tool\":\"read\",\"path\":\"a\"}", 0, &d, NULL);
    assert_true(nu_policy_memory(policy) <= 256 * 1024);
    nu_profile_free(profile);
}

static void test_profile_json_round_trip(void **state)
{
    nu_profile_t *a = NULL, *b = NULL;
    json_t *json;
    char *text;
    nu_err_t err;

    assert_int_equal(nu_profile_load_builtin(&a, "codegen", NULL, &err),
                     NU_OK);
    json = nu_perm_to_json(nu_profile_perm(a));
    text = nu_json_canonical(json, NULL, &err);
    assert_non_null(text);
    assert_int_equal(nu_profile_load_string(&b, "codegen.json", text,
                                            strlen(text), NULL, &err),
                     NU_OK);
    assert_true(nu_perm_equal(nu_profile_perm(a), nu_profile_perm(b)));
    assert_false(nu_profile_has_check(b));
    free(text);
    json_decref(json);
    nu_profile_free(a);
    nu_profile_free(b);

    assert_int_not_equal(nu_profile_load_string(&b, "bad.json",
                                                "{\"capabilities\":{},\n\"x\"",
                                                24, NULL, &err),
                         NU_OK);
    assert_non_null(strstr(err.msg, "bad.json:"));
}

static void test_profile_unknown_name(void **state)
{
    nu_profile_t *profile = NULL;
    nu_err_t err;

    assert_int_equal(nu_profile_load(&profile, "no_such_profile", NULL, &err),
                     NU_ENOENT);
    assert_non_null(strstr(err.msg, "no_such_profile"));
    assert_int_not_equal(nu_profile_load(&profile, "/nonexistent/p.lua", NULL,
                                         &err), NU_OK);
    assert_non_null(strstr(err.msg, "/nonexistent/p.lua:0:"));
}

static const char nu__hooked[] =
    "return nucleus.profile {\n"
    "  capabilities = { read_files = 'always' },\n"
    "  paths = { allow = nucleus.ALL, block = { 'secret/' } },\n"
    "  check = function(call, ctx)\n"
    "    if call.path == 'deny' then return 'deny', 'by hook' end\n"
    "    if call.path == 'ask' then return 'approval', 'ask first' end\n"
    "    if call.path == 'secret/x' then return 'allow' end\n"
    "    if call.path == 'ctx' then\n"
    "      if ctx.pod_id ~= 'pod-1' then return 'deny', 'pod' end\n"
    "      if not ctx.exposure.private then return 'deny', 'exposure' end\n"
    "      if ctx.time ~= 1700000000 then return 'deny', 'time' end\n"
    "      if ctx.budget.tool_calls ~= math.huge then return 'deny', 'budget' end\n"
    "      if not ctx.spiffe_id:find('^spiffe://') then return 'deny', 'id' end\n"
    "      if ctx.password ~= nil then return 'deny', 'credential' end\n"
    "    end\n"
    "  end,\n"
    "  approve = function(request, ctx)\n"
    "    if request.operation == 'read_files' then return 'approve' end\n"
    "    if request.operation == 'git_push' then return 'deny' end\n"
    "    if request.operation == 'web_fetch' then return 'maybe' end\n"
    "    return 'ask'\n"
    "  end,\n"
    "}\n";

static void test_profile_check_hook_only_tightens(void **state)
{
    nu_profile_t *profile = nu__load_text("hooked.lua", nu__hooked);
    nu_decision_t d;
    bool attempt;

    nu__eval(profile, "{\"tool\":\"read\",\"path\":\"a\"}", 0, &d, &attempt);
    assert_int_equal(d.verdict, NU_DECISION_ALLOW);
    assert_false(attempt);

    nu__eval(profile, "{\"tool\":\"read\",\"path\":\"deny\"}", 0, &d, NULL);
    assert_int_equal(d.verdict, NU_DECISION_DENY);
    assert_int_equal(d.step, 8);
    assert_non_null(strstr(d.reason, "by hook"));

    nu__eval(profile, "{\"tool\":\"read\",\"path\":\"ask\"}", 0, &d, NULL);
    assert_int_equal(d.verdict, NU_DECISION_APPROVAL);
    assert_int_equal(strncmp(d.approval_key, "read_files:", 11), 0);

    /* "allow" for a call the lattice denied changes nothing. */
    nu__eval(profile, "{\"tool\":\"read\",\"path\":\"secret/x\"}", 0, &d,
             &attempt);
    assert_int_equal(d.verdict, NU_DECISION_DENY);
    assert_int_equal(d.kind, NU_KIND_PATH_DENIED);
    assert_true(attempt);

    nu__eval(profile, "{\"tool\":\"read\",\"path\":\"ctx\"}", NU_LEG_PRIVATE,
             &d, NULL);
    if (d.verdict != NU_DECISION_ALLOW)
        fail_msg("ctx check failed: %s", d.reason);

    /* Invalid requests never reach the hook. */
    nu__eval(profile, "{\"tool\":\"read\"}", 0, &d, NULL);
    assert_int_equal(d.kind, NU_KIND_INVALID_REQUEST);
    nu_profile_free(profile);
}

static void test_profile_approve_hook(void **state)
{
    nu_profile_t *profile = nu__load_text("hooked.lua", nu__hooked);
    static const char *const ops[] = { "read_files", "git_push", "create_pr",
                                       "web_fetch" };
    static const nu_approve_t expected[] = { NU_APPROVE_APPROVE,
                                             NU_APPROVE_DENY, NU_APPROVE_ASK,
                                             NU_APPROVE_DENY };
    nu_decide_ctx_t ctx = { .now = 1 };

    for (size_t i = 0; i < 4; i++) {
        json_t *req = json_pack("{s:s, s:s}", "operation", ops[i],
                                "approval_key", "k");
        nu_approve_t answer;
        nu_err_t err;
        int rc = nu_profile_approve(profile, req, &ctx, NULL, &answer, &err);

        assert_int_equal(answer, expected[i]);
        assert_int_equal(rc, i == 3 ? NU_EPOLICY : NU_OK);
        json_decref(req);
    }
    nu_profile_free(profile);
}

static void test_profile_decision_json(void **state)
{
    nu_profile_t *profile = nu__load_text("hooked.lua", nu__hooked);
    nu_decision_t d;
    nu_err_t err;
    json_t *json;
    char *text;

    nu__eval(profile, "{\"tool\":\"read\",\"path\":\"ask\"}", 0, &d, NULL);
    json = nu_decision_to_json(&d);
    text = nu_json_canonical(json, NULL, &err);
    assert_non_null(strstr(text, "\"decision\":\"approval_required\""));
    assert_non_null(strstr(text, "\"approval_key\":\"read_files:"));
    assert_non_null(strstr(text, "\"operation\":\"read_files\""));
    free(text);
    json_decref(json);

    nu__eval(profile, "{\"tool\":\"read\",\"path\":\"a\"}", 0, &d, NULL);
    json = nu_decision_to_json(&d);
    text = nu_json_canonical(json, NULL, &err);
    assert_string_equal(text, "{\"decision\":\"allow\",\"operation\":\"read_files\"}");
    free(text);
    json_decref(json);
    nu_profile_free(profile);
}

static void nu__collect(const char *line, void *userdata)
{
    strncat(userdata, line, 2047 - strlen(userdata));
    strncat(userdata, "\n", 2047 - strlen(userdata));
}

static void test_profile_test_files(void **state)
{
    char dir[] = "/tmp/nu-policy-test-XXXXXX";
    char path[256], report[2048] = "";
    int passed = 0, failed = 0;
    FILE *f;

    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/codegen_test.lua", dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("local t = nucleus.test\n"
          "local inline = nucleus.profile {\n"
          "  capabilities = { read_files = 'always' },\n"
          "  paths = { allow = nucleus.ALL },\n"
          "  check = function(call) if call.path == 'x' then return 'deny', 'x' end end,\n"
          "}\n"
          "return {\n"
          "  test_read_allowed = function()\n"
          "    t.expect_eq(t.eval('codegen', { tool = 'read', path = 'a.c' }).decision, 'allow')\n"
          "  end,\n"
          "  test_ssh_denied = function()\n"
          "    local d = t.eval('codegen', { tool = 'read', path = '.ssh/id_rsa' })\n"
          "    t.expect_eq(d.kind, 'path_denied')\n"
          "  end,\n"
          "  test_inline_hook = function()\n"
          "    t.expect_eq(t.eval(inline, { tool = 'read', path = 'x' }).decision, 'deny')\n"
          "  end,\n"
          "  test_expected_failure = function()\n"
          "    t.expect_eq({ a = 1 }, { a = 2 })\n"
          "  end,\n"
          "  test_loops = function() while true do end end,\n"
          "  helper = function() error('not a test') end,\n"
          "}\n", f);
    fclose(f);

    assert_int_equal(nu_policy_test_file(path, NULL, &passed, &failed,
                                         nu__collect, report), NU_OK);
    assert_int_equal(passed, 3);
    assert_int_equal(failed, 2);
    assert_non_null(strstr(report, "test_expected_failure"));
    assert_non_null(strstr(report, "expected {\"a\":2}, got {\"a\":1}"));
    assert_non_null(strstr(report, "test_loops"));
    assert_non_null(strstr(report, "limit exceeded"));

    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_profile_errors_name_file_and_line),
        cmocka_unit_test(test_profile_builtins_load_and_fit),
        cmocka_unit_test(test_profile_state_size),
        cmocka_unit_test(test_profile_json_round_trip),
        cmocka_unit_test(test_profile_unknown_name),
        cmocka_unit_test(test_profile_check_hook_only_tightens),
        cmocka_unit_test(test_profile_approve_hook),
        cmocka_unit_test(test_profile_decision_json),
        cmocka_unit_test(test_profile_test_files),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
