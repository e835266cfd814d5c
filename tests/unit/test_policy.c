/*
 * test_policy.c - the Lua sandbox: escape corpus and limits.
 *
 * Every attack runs inside a check hook of a real profile.  Each must
 * fail closed (deny, kind policy_error), must not crash the process, and
 * the next evaluation of the same profile must still allow a normal call:
 * no limit, flag or state leaks from one evaluation into the next.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "nucleus/json.h"
#include "nucleus/policy.h"

/* The hook runs the attack for path "attack" and allows anything else. */
static const char nu__profile_template[] =
    "return nucleus.profile {\n"
    "  name = 'attack',\n"
    "  capabilities = { read_files = 'always' },\n"
    "  paths = { allow = nucleus.ALL },\n"
    "  check = function(call, ctx)\n"
    "    if call.path ~= 'attack' then return end\n"
    "%s\n"
    "  end,\n"
    "}\n";

typedef struct nu__attack {
    const char *name;
    const char *code;
} nu__attack_t;

static const nu__attack_t nu__attacks[] = {
    { "bytecode via load mode b",
      "load('\\27Lua', 'x', 'b', {})" },
    { "bytecode via load default mode",
      "local f = load('\\27LuaT\\0', 'x', nil, {}) if not f then error('no') end" },
    { "load without environment",
      "load('return 1')()" },
    { "load with reader function",
      "load(function() return nil end, 'x', 't', {})" },
    { "string.dump",
      "return 'deny', load(string.dump(function() end), 'x', 'b', {})" },
    { "debug through _ENV",
      "_ENV.debug.getregistry()" },
    { "debug through _G",
      "_G.debug.sethook()" },
    { "io.open",
      "io.open('/etc/passwd')" },
    { "os.execute",
      "os.execute('id')" },
    { "os.exit",
      "os.exit(1)" },
    { "os.getenv",
      "return 'deny', os.getenv('HOME')" },
    { "require",
      "require('os')" },
    { "dofile",
      "dofile('/etc/passwd')" },
    { "loadfile",
      "loadfile('/etc/passwd')" },
    { "string metatable index table write",
      "getmetatable('').__index.upper = function() return 'x' end" },
    { "string metatable replace",
      "local mt = getmetatable('') mt.__index = {}" },
    { "rawset on string table",
      "rawset(string, 'upper', function() end)" },
    { "rawset on globals",
      "rawset(_G, 'print', function() end)" },
    { "rawset on nucleus table",
      "rawset(nucleus, 'ALL', {})" },
    { "rawset on nucleus.ALL",
      "rawset(nucleus.ALL, 'leak', true)" },
    { "rawset on nucleus.SENSITIVE",
      "rawset(nucleus.SENSITIVE, 1, 'x')" },
    { "to-be-closed handler loops",
      "local guard <close> = setmetatable({}, { __close = function() while true do end end }) "
      "error('unwind')" },
    { "gsub replacement function loops",
      "string.gsub('abc', '%a', function() while true do end end)" },
    { "sort comparator loops",
      "table.sort({ 3, 2, 1 }, function() while true do end end)" },
    { "assign standard table field",
      "table.insert = nil" },
    { "new global",
      "leaked = true" },
    { "setmetatable on globals",
      "setmetatable(_G, { __index = function() return os end })" },
    { "setmetatable on string table",
      "setmetatable(string, nil)" },
    { "gc metamethod",
      "setmetatable({}, { __gc = function() while true do end end })" },
    { "collectgarbage",
      "collectgarbage('stop')" },
    { "memory bomb string.rep",
      "local s = string.rep('x', 1 << 20) s = s .. s .. s .. s .. s" },
    { "memory bomb string.rep count",
      "string.rep('x', 1e12)" },
    { "empty string.rep loop",
      "string.rep('', 1e15)" },
    { "memory bomb table growth",
      "local t = {} for i = 1, 1e8 do t[i] = i end" },
    { "memory bomb table.concat",
      "local t = {} for i = 1, 64 do t[i] = string.rep('y', 1 << 16) end "
      "local s = table.concat(t) local u = {} for i = 1, 64 do u[i] = s end "
      "return 'deny', table.concat(u)" },
    { "memory bomb pcall swallowed",
      "pcall(string.rep, string.rep('x', 1 << 20), 1000) return" },
    { "memory bomb lattice values kept",
      "local big = {} for i = 1, 2000 do big[i] = string.rep('p', 100) .. i end "
      "local p = nucleus.profile { paths = { allow = big } } "
      "local keep = {} for i = 1, 1e6 do keep[i] = p | p end" },
    { "memory bomb lattice values dropped",
      "local big = {} for i = 1, 2000 do big[i] = string.rep('p', 100) .. i end "
      "local p = nucleus.profile { paths = { allow = big } } "
      "for i = 1, 1e6 do local q = p | p end" },
    { "cpu bomb loop",
      "while true do end" },
    { "cpu bomb backtracking pattern",
      "string.find(string.rep('a', 1e5), '.-.-.-.-b')" },
    { "cpu bomb gsub pattern",
      "string.gsub(string.rep('a', 5e4), '(a*)*b', '')" },
    { "cpu bomb plain find",
      "string.find(string.rep('a', 1 << 20), string.rep('a', 1 << 19) .. 'b', 1, true)" },
    { "cpu bomb table.move",
      "table.move({}, 1, 1e15, 2)" },
    { "cpu bomb unpack",
      "table.unpack({}, 1, 1e8)" },
    { "format width",
      "string.format('%99999d', 1)" },
    { "deep recursion",
      "local function f(n) return f(n + 1) + 1 end f(1)" },
    { "deep recursion through pcall",
      "local function f() pcall(f) end f() return 'allow'" },
    { "error object tostring raises",
      "error(setmetatable({}, { __tostring = function() error('boom') end }))" },
    { "error object tostring loops",
      "error(setmetatable({}, { __tostring = function() while true do end end }))" },
    { "error object index loops",
      "error(setmetatable({}, { __index = function() while true do end end }))" },
    { "coroutine dodging the count",
      "while true do coroutine.wrap(function() for i = 1, 500 do end end)() end" },
    { "coroutine swallowing the kill",
      "local co = coroutine.create(function() while true do end end) "
      "coroutine.resume(co) return" },
    { "pcall swallowing the limit",
      "while true do pcall(function() while true do end end) end" },
    { "pcall swallowing then return",
      "pcall(function() while true do end end) return" },
    { "xpcall handler loops",
      "xpcall(function() while true do end end, function() while true do end end) return" },
    { "xpcall handler returns allow",
      "local ok = xpcall(function() while true do end end, function() return 'fine' end) return 'allow'" },
    { "ctx write",
      "ctx.exposure = {}" },
    { "ctx metatable",
      "getmetatable(ctx).__index = nil" },
    { "math.random state",
      "math.randomseed(1)" },
    { "unexpected return value",
      "return 'yes'" },
    { "unexpected return type",
      "return {}" },
    { "non-string reason",
      "return 'deny', {}" },
    { "too many results",
      "return 'deny', 'a', 'b'" },
    { "error with non-string object",
      "error(42)" },
    { "resume main thread",
      "local co = coroutine.running() coroutine.resume(co) error('after')" },
};

#define NU__ATTACK_COUNT (sizeof nu__attacks / sizeof nu__attacks[0])

static void nu__limits(nu_policy_limits_t *limits)
{
    nu_policy_limits_default(limits);
    limits->timeout_ms = 100;
}

static nu_profile_t *nu__load_attack(const char *code)
{
    char text[4096];
    nu_policy_limits_t limits;
    nu_profile_t *profile = NULL;
    nu_err_t err;
    int rc;

    snprintf(text, sizeof text, nu__profile_template, code);
    nu__limits(&limits);
    rc = nu_profile_load_string(&profile, "attack.lua", text, strlen(text),
                                &limits, &err);
    if (rc != NU_OK)
        fail_msg("cannot load attack profile: %s", err.msg);
    return profile;
}

static void nu__eval_path(nu_profile_t *profile, const char *path,
                          nu_decision_t *d)
{
    json_t *call = json_pack("{s:s, s:s}", "tool", "read", "path", path);
    nu_decide_ctx_t ctx = { .now = 1700000000 };

    assert_non_null(call);
    assert_int_equal(nu_profile_eval(profile, call, &ctx, NULL, d, NULL),
                     NU_OK);
    json_decref(call);
}

static void test_policy_escape_corpus(void **state)
{
    size_t count = 0;

    assert_true(NU__ATTACK_COUNT >= 25);
    for (size_t i = 0; i < NU__ATTACK_COUNT; i++) {
        nu_profile_t *profile = nu__load_attack(nu__attacks[i].code);
        nu_decision_t d;

        nu__eval_path(profile, "attack", &d);
        if (d.verdict != NU_DECISION_DENY || d.kind != NU_KIND_POLICY_ERROR)
            fail_msg("attack '%s' was not denied as policy_error: %s %s "
                     "(%s)", nu__attacks[i].name, nu_verdict_name(d.verdict),
                     nu_kind_name(d.kind), d.reason);
        if (strstr(d.reason, "attack.lua") == NULL)
            fail_msg("attack '%s': reason does not name the file: %s",
                     nu__attacks[i].name, d.reason);

        nu__eval_path(profile, "src/main.c", &d);
        if (d.verdict != NU_DECISION_ALLOW)
            fail_msg("after attack '%s' a normal call was not allowed: %s "
                     "(%s)", nu__attacks[i].name, d.reason,
                     nu_kind_name(d.kind));

        nu_profile_free(profile);
        count++;
    }
    assert_int_equal(count, NU__ATTACK_COUNT);
}

/* The same attacks at load time must fail the load, naming the file. */
static void test_policy_escape_at_load(void **state)
{
    static const char *const codes[] = {
        "while true do end",
        "io.write('x')",
        "x = 1",
        "string.rep('x', 1e12)",
        "local t = {} for i = 1, 1e8 do t[i] = i end",
        "pcall(function() while true do end end)",
    };
    nu_policy_limits_t limits;

    nu__limits(&limits);
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        char text[1024];
        nu_profile_t *profile = NULL;
        nu_err_t err;

        snprintf(text, sizeof text,
                 "%s\nreturn nucleus.profile { name = 'x' }\n", codes[i]);
        assert_int_not_equal(nu_profile_load_string(&profile, "load.lua",
                                                    text, strlen(text),
                                                    &limits, &err),
                             NU_OK);
        assert_null(profile);
        assert_non_null(strstr(err.msg, "load.lua"));
    }
}

static void nu__expect_load_error(const char *text, const char *needle)
{
    nu_profile_t *profile = NULL;
    nu_err_t err;

    assert_int_not_equal(nu_profile_load_string(&profile, "bad.lua", text,
                                                strlen(text), NULL, &err),
                         NU_OK);
    if (strstr(err.msg, needle) == NULL)
        fail_msg("expected '%s' in '%s'", needle, err.msg);
}

/* These messages were formatted by lua_pushfstring, which supports no %zu
 * or %lld, so the user saw "invalid option '%z' to 'lua_pushfstring'" in
 * place of the limit. */
static void test_policy_limit_messages_formatted(void **state)
{
    static const struct {
        const char *code;
        const char *message;
    } cases[] = {
        {"string.find(string.rep('a', 1e5), '.-.-.-.-b')",
         "find: pattern too complex for a subject of 100000 bytes (4 "
         "backtracking items; shorten the subject or simplify the pattern)"},
        {"string.gsub(string.rep('a', 5e4), '(a*)*b', '')",
         "gsub: pattern too complex for a subject of 50000 bytes"},
        {"string.rep('x', 1e12)",
         "rep: count 1000000000000 is over the limit of "},
        {"table.move({}, 1, 1e15, 2)",
         "move: range of 1000000000000000 elements is over the limit of "},
    };

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[512];

        snprintf(text, sizeof text,
                 "%s\nreturn nucleus.profile { name = 'x' }\n",
                 cases[i].code);
        nu__expect_load_error(text, cases[i].message);
    }
}

static void test_policy_rejects_stateful_captures(void **state)
{
    nu__expect_load_error(
        "local co = coroutine.wrap(function() while true do "
        "coroutine.yield(1) end end)\n"
        "return nucleus.profile { check = function() co() end }\n",
        "coroutine");
    nu__expect_load_error(
        "local it = string.gmatch('a b c', '%a')\n"
        "return nucleus.profile { check = function() it() end }\n",
        "userdata");
}

/* Upvalues are restored and captured tables frozen between calls. */
static void test_policy_evaluations_isolated(void **state)
{
    static const char text[] =
        "local n = 0\n"
        "local seen = {}\n"
        "local function bump() n = n + 1 return n end\n"
        "return nucleus.profile {\n"
        "  capabilities = { read_files = 'always' },\n"
        "  paths = { allow = nucleus.ALL },\n"
        "  check = function(call)\n"
        "    if bump() > 1 then return 'deny', 'counter leaked' end\n"
        "    if call.path == 'mutate' then seen[#seen + 1] = 1 end\n"
        "    if call.path == 'mutate-call' then call.path = 'x' end\n"
        "  end,\n"
        "}\n";
    nu_profile_t *profile = NULL;
    nu_decision_t d;
    nu_err_t err;

    assert_int_equal(nu_profile_load_string(&profile, "iso.lua", text,
                                            strlen(text), NULL, &err),
                     NU_OK);
    for (int i = 0; i < 5; i++) {
        nu__eval_path(profile, "a", &d);
        assert_int_equal(d.verdict, NU_DECISION_ALLOW);
    }
    nu__eval_path(profile, "mutate", &d);
    assert_int_equal(d.kind, NU_KIND_POLICY_ERROR);
    assert_non_null(strstr(d.reason, "read-only"));
    nu__eval_path(profile, "mutate-call", &d);
    assert_int_equal(d.verdict, NU_DECISION_ALLOW);
    nu__eval_path(profile, "a", &d);
    assert_int_equal(d.verdict, NU_DECISION_ALLOW);
    nu_profile_free(profile);
}

static int nu__exec(nu_policy_t *policy, const char *name, const char *code,
                    nu_err_t *err)
{
    return nu_policy_exec(policy, name, code, strlen(code), err);
}

/* Classes captured by a hook keep working after the seal, both for
 * objects made at load time and for setmetatable inside the hook. */
static void test_policy_frozen_classes_work(void **state)
{
    static const char text[] =
        "local Rule = {}\n"
        "Rule.__index = Rule\n"
        "function Rule.new(prefix) return setmetatable({ prefix = prefix }, Rule) end\n"
        "function Rule:matches(path) return path:sub(1, #self.prefix) == self.prefix end\n"
        "local vendored = Rule.new('vendor/')\n"
        "return nucleus.profile {\n"
        "  capabilities = { read_files = 'always' },\n"
        "  paths = { allow = nucleus.ALL },\n"
        "  check = function(call)\n"
        "    if vendored:matches(call.path) then return 'deny', 'vendored' end\n"
        "    local docs = Rule.new('docs/')\n"
        "    if docs:matches(call.path) then return 'approval', 'docs' end\n"
        "    if call.path == 'mutate' then Rule.matches = nil end\n"
        "    if call.path == 'mutate-mt' then getmetatable(docs).matches = nil end\n"
        "  end,\n"
        "}\n";
    nu_profile_t *profile = NULL;
    nu_decision_t d;
    nu_err_t err;

    assert_int_equal(nu_profile_load_string(&profile, "class.lua", text,
                                            strlen(text), NULL, &err),
                     NU_OK);
    nu__eval_path(profile, "vendor/x.c", &d);
    assert_int_equal(d.verdict, NU_DECISION_DENY);
    assert_non_null(strstr(d.reason, "vendored"));
    nu__eval_path(profile, "docs/a.md", &d);
    assert_int_equal(d.verdict, NU_DECISION_APPROVAL);
    nu__eval_path(profile, "mutate", &d);
    assert_int_equal(d.kind, NU_KIND_POLICY_ERROR);
    nu__eval_path(profile, "mutate-mt", &d);
    assert_int_equal(d.verdict, NU_DECISION_ALLOW);
    nu__eval_path(profile, "vendor/y.c", &d);
    assert_int_equal(d.verdict, NU_DECISION_DENY);
    nu__eval_path(profile, "docs/b.md", &d);
    assert_int_equal(d.verdict, NU_DECISION_APPROVAL);
    nu_profile_free(profile);
}

/* Limits: the instruction limit, the deadline and the memory cap each
 * trip with their own message. */
static void test_policy_limits_named(void **state)
{
    nu_policy_limits_t limits;
    nu_policy_t *policy = NULL;
    nu_err_t err;
    struct timespec t0, t1;
    double ms;

    nu_policy_limits_default(&limits);
    limits.instructions = 100000;
    assert_int_equal(nu_policy_new(&policy, &limits, &err), NU_OK);

    assert_int_equal(nu__exec(policy, "=loop", "while true do end", &err),
                     NU_EPOLICY);
    assert_non_null(strstr(err.msg, "instruction limit exceeded"));
    assert_non_null(strstr(err.msg, "loop:1"));

    assert_int_equal(nu__exec(policy, "=mem",
                              "local t = {} for i = 1, 1e7 do t[i] = {} end",
                              &err), NU_EPOLICY);
    assert_non_null(strstr(err.msg, "limit exceeded"));

    assert_int_equal(nu__exec(policy, "=ok", "local x = 1 + 1", &err), NU_OK);
    nu_policy_free(policy);

    /* Short coroutines are charged too, not only bounded by the clock. */
    limits.timeout_ms = 60000;
    assert_int_equal(nu_policy_new(&policy, &limits, &err), NU_OK);
    assert_int_equal(nu__exec(policy, "=co",
                              "while true do coroutine.wrap(function() "
                              "for i = 1, 500 do end end)() end", &err),
                     NU_EPOLICY);
    assert_non_null(strstr(err.msg, "instruction limit exceeded"));
    nu_policy_free(policy);
    limits.timeout_ms = NU_POLICY_DEFAULT_TIMEOUT_MS;

    limits.instructions = UINT64_MAX / 2;
    limits.timeout_ms = 50;
    assert_int_equal(nu_policy_new(&policy, &limits, &err), NU_OK);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(nu__exec(policy, "=slow", "while true do end", &err),
                     NU_EPOLICY);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
         (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    assert_non_null(strstr(err.msg, "time limit exceeded"));
    assert_true(ms < 1000);
    nu_policy_free(policy);

    nu_policy_limits_default(&limits);
    limits.memory = 256 * 1024;
    assert_int_equal(nu_policy_new(&policy, &limits, &err), NU_OK);
    assert_int_equal(nu__exec(policy, "=mem",
                              "local s = string.rep('x', 1 << 19)", &err),
                     NU_EPOLICY);
    assert_non_null(strstr(err.msg, "memory limit"));
    nu_policy_free(policy);
}

/* What the sandbox still offers works. */
static void test_policy_allowed_library(void **state)
{
    static const char code[] =
        "assert(string.format('%d-%s', 1, 'a') == '1-a')\n"
        "assert(('abc'):upper() == 'ABC')\n"
        "assert(string.find('git push origin', '^git%s+push') == 1)\n"
        "assert(select(2, string.gsub('a.b.c', '%.', '/')) == 2)\n"
        "local t = { 3, 1, 2 } table.sort(t) assert(table.concat(t) == '123')\n"
        "assert(math.max(1, 5) == 5 and math.floor(2.5) == 2)\n"
        "assert(utf8.len('h\\u{e9}') == 2)\n"
        "assert(type(os.time()) == 'number' and type(os.clock()) == 'number')\n"
        "local f = load('return x + 1', '=chunk', 't', { x = 41 })\n"
        "assert(f() == 42)\n"
        "local co = coroutine.wrap(function() coroutine.yield(7) end)\n"
        "assert(co() == 7)\n"
        "local ok, e = pcall(error, 'x') assert(not ok)\n"
        "assert(getmetatable('') == 'protected')\n"
        "assert(tostring(nucleus.ALL) == 'nucleus.ALL')\n"
        "assert(#nucleus.SENSITIVE > 0)\n"
        "local mt = setmetatable({}, { __index = function() return 1 end })\n"
        "assert(mt.x == 1)\n"
        "for k, v in pairs(string) do assert(k ~= 'dump') end\n"
        "assert(string.dump == nil and math.random == nil)\n"
        "assert(not pcall(function() return undefined_name end))\n";
    nu_policy_t *policy = NULL;
    nu_err_t err;

    assert_int_equal(nu_policy_new(&policy, NULL, &err), NU_OK);
    if (nu_policy_exec(policy, "=lib", code, strlen(code), &err) != NU_OK)
        fail_msg("%s", err.msg);
    nu_policy_free(policy);
}

static void test_policy_long_path_named_in_full(void **state)
{
    char path[300];
    const char text[] = "return nucleus.profile { nope = 1 }\n";
    nu_profile_t *profile = NULL;
    nu_err_t err;

    memset(path, 'd', sizeof path);
    memcpy(path + sizeof path - 9, "/bad.lua", 9);
    path[0] = '/';
    assert_int_not_equal(nu_profile_load_string(&profile, path, text,
                                                strlen(text), NULL, &err),
                         NU_OK);
    assert_memory_equal(err.msg, path, strlen(path));
    assert_non_null(strstr(err.msg, ":1: unknown key 'nope'"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_policy_escape_corpus),
        cmocka_unit_test(test_policy_escape_at_load),
        cmocka_unit_test(test_policy_limit_messages_formatted),
        cmocka_unit_test(test_policy_rejects_stateful_captures),
        cmocka_unit_test(test_policy_evaluations_isolated),
        cmocka_unit_test(test_policy_frozen_classes_work),
        cmocka_unit_test(test_policy_limits_named),
        cmocka_unit_test(test_policy_allowed_library),
        cmocka_unit_test(test_policy_long_path_named_in_full),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
