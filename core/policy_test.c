/*
 * policy_test.c - "nucleus policy test": profile tests in the sandbox.
 *
 * A test file (NAME_test.lua) runs in a sandbox like a profile, with one
 * addition, nucleus.test:
 *
 *   nucleus.test.eval(profile, call, opts)  -> decision table
 *       profile: a lattice value (nucleus.profile{...}, its hooks run in
 *       the test's own state), a built-in name, or a profile file path
 *       relative to the test file; call: a tool call table; opts:
 *       { exposure = "private,untrusted" or a list, egress = bool,
 *         now = seconds, spent = { usd, input_tokens, ... } }.
 *       The result has decision, operation, kind, reason, approval_key.
 *   nucleus.test.expect_eq(actual, expected [, message])
 *       deep comparison of tables; raises "expected X, got Y".
 *
 * The file returns a table of functions; every key starting with "test"
 * is a case, run in name order, each under fresh limits.  A case passes
 * when it returns without raising.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>

#include "policy_internal.h"

#define NU__TEST_INSTRUCTION_FACTOR 10
#define NU__JSON_BOX_MT "nucleus.jsonbox"
#define NU__PROFILE_BOX_MT "nucleus.profilebox"

/* --- Lua values to JSON ---------------------------------------------- */

static int nu__json_box_gc(lua_State *L)
{
    json_t **box = lua_touserdata(L, 1);

    json_decref(*box);
    *box = NULL;
    return 0;
}

/* Push a box that owns one reference to json until collected. */
static void nu__json_box(lua_State *L, json_t *json)
{
    json_t **box = lua_newuserdatauv(L, sizeof *box, 0);

    *box = json;
    if (luaL_newmetatable(L, NU__JSON_BOX_MT)) {
        lua_pushcfunction(L, nu__json_box_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
}

static bool nu__is_sequence(lua_State *L, int idx)
{
    lua_Integer n = (lua_Integer)lua_rawlen(L, idx), count = 0;

    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        lua_pop(L, 1);
        count++;
        if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1 ||
            lua_tointeger(L, -1) > n) {
            lua_pop(L, 1);
            return false;
        }
    }
    return n > 0 && count == n;
}

json_t *nu__lua_to_json(lua_State *L, int idx, int depth)
{
    json_t *json;

    idx = lua_absindex(L, idx);
    if (depth > 64)
        luaL_error(L, "value nested deeper than 64 levels");
    luaL_checkstack(L, 6, "json");

    switch (lua_type(L, idx)) {
    case LUA_TBOOLEAN:
        return json_boolean(lua_toboolean(L, idx));
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx))
            return json_integer((json_int_t)lua_tointeger(L, idx));
        return json_real(lua_tonumber(L, idx));
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        json = json_stringn(s, len);
        if (json == NULL)
            luaL_error(L, "string is not valid UTF-8");
        return json;
    }
    case LUA_TTABLE:
        break;
    default:
        luaL_error(L, "cannot convert a %s to JSON", luaL_typename(L, idx));
        return NULL;
    }

    if (nu__is_sequence(L, idx)) {
        lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
        json = json_array();
        nu__json_box(L, json);
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, idx, i);
            json_array_append_new(json, nu__lua_to_json(L, -1, depth + 1));
            lua_pop(L, 1);
        }
    } else {
        json = json_object();
        nu__json_box(L, json);
        lua_pushnil(L);
        while (lua_next(L, idx) != 0) {
            if (lua_type(L, -2) != LUA_TSTRING)
                luaL_error(L, "object keys must be strings (got %s)",
                           luaL_typename(L, -2));
            json_object_set_new(json, lua_tostring(L, -2),
                                nu__lua_to_json(L, -1, depth + 1));
            lua_pop(L, 1);
        }
    }
    json_incref(json);
    lua_pop(L, 1);
    return json;
}

/* --- nucleus.test.eval ----------------------------------------------- */

static unsigned nu__parse_exposure(lua_State *L, int idx)
{
    unsigned legs = 0;
    const char *names[] = { "private", "untrusted", "exfil" };
    const unsigned bits[] = { NU_LEG_PRIVATE, NU_LEG_UNTRUSTED, NU_LEG_EXFIL };

    if (lua_type(L, idx) == LUA_TSTRING) {
        const char *s = lua_tostring(L, idx);
        for (int i = 0; i < 3; i++)
            if (strstr(s, names[i]) != NULL)
                legs |= bits[i];
        return legs;
    }
    if (lua_type(L, idx) == LUA_TTABLE) {
        lua_Integer n = luaL_len(L, idx);
        for (lua_Integer j = 1; j <= n; j++) {
            lua_geti(L, idx, j);
            for (int i = 0; i < 3; i++)
                if (lua_type(L, -1) == LUA_TSTRING &&
                    strcmp(lua_tostring(L, -1), names[i]) == 0)
                    legs |= bits[i];
            lua_pop(L, 1);
        }
    }
    return legs;
}

void nu__lua_parse_opts(lua_State *L, int idx, nu_decide_ctx_t *ctx)
{
    memset(ctx, 0, sizeof *ctx);
    ctx->now = (int64_t)time(NULL);
    if (lua_isnoneornil(L, idx))
        return;
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_getfield(L, idx, "exposure");
    ctx->exposure = nu__parse_exposure(L, -1);
    lua_getfield(L, idx, "egress");
    ctx->egress = lua_toboolean(L, -1);
    if (lua_getfield(L, idx, "now") == LUA_TNUMBER)
        ctx->now = (int64_t)lua_tointeger(L, -1);
    if (lua_getfield(L, idx, "spent") == LUA_TTABLE) {
        lua_getfield(L, -1, "usd");
        ctx->spent.usd = lua_tonumber(L, -1);
        lua_getfield(L, -2, "input_tokens");
        ctx->spent.input_tokens = (int64_t)lua_tointeger(L, -1);
        lua_getfield(L, -3, "output_tokens");
        ctx->spent.output_tokens = (int64_t)lua_tointeger(L, -1);
        lua_getfield(L, -4, "tool_calls");
        ctx->spent.tool_calls = (int64_t)lua_tointeger(L, -1);
        lua_pop(L, 4);
    }
    lua_pop(L, 4);
}

void nu__lua_push_decision(lua_State *L, const nu_decision_t *d)
{
    lua_createtable(L, 0, 5);
    lua_pushstring(L, nu_verdict_name(d->verdict));
    lua_setfield(L, -2, "decision");
    lua_pushstring(L, nu_decision_op_name(d));
    lua_setfield(L, -2, "operation");
    if (d->kind != NU_KIND_NONE) {
        lua_pushstring(L, nu_kind_name(d->kind));
        lua_setfield(L, -2, "kind");
    }
    lua_pushstring(L, d->reason);
    lua_setfield(L, -2, "reason");
    if (d->verdict == NU_DECISION_APPROVAL) {
        lua_pushstring(L, d->approval_key);
        lua_setfield(L, -2, "approval_key");
    }
}

static int nu__profile_box_gc(lua_State *L)
{
    nu_profile_t **box = lua_touserdata(L, 1);

    nu_profile_free(*box);
    *box = NULL;
    return 0;
}

/* The profile named at idx, loaded once per test state and cached. */
static nu_profile_t *nu__cached_profile(lua_State *L, int idx)
{
    const char *name = luaL_checkstring(L, idx);
    nu_policy_t *policy = nu__policy_from_state(L);
    nu_profile_t **box;
    char path[PATH_MAX];
    nu_err_t err;

    lua_getfield(L, LUA_REGISTRYINDEX, "nucleus.test_profiles");
    if (lua_getfield(L, -1, name) == LUA_TUSERDATA) {
        box = lua_touserdata(L, -1);
        lua_pop(L, 2);
        return *box;
    }
    lua_pop(L, 1);

    box = lua_newuserdatauv(L, sizeof *box, 0);
    *box = NULL;
    if (luaL_newmetatable(L, NU__PROFILE_BOX_MT)) {
        lua_pushcfunction(L, nu__profile_box_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);

    lua_getfield(L, LUA_REGISTRYINDEX, "nucleus.test_dir");
    if (strchr(name, '/') != NULL && name[0] != '/' &&
        lua_type(L, -1) == LUA_TSTRING)
        snprintf(path, sizeof path, "%s/%s", lua_tostring(L, -1), name);
    else
        snprintf(path, sizeof path, "%s", name);
    lua_pop(L, 1);

    if (nu_profile_load(box, path, policy != NULL
                                       ? nu__policy_limits(policy) : NULL,
                        &err) != NU_OK)
        luaL_error(L, "eval: %s", err.msg);
    lua_setfield(L, -2, name);
    lua_pop(L, 1);
    lua_getfield(L, LUA_REGISTRYINDEX, "nucleus.test_profiles");
    lua_getfield(L, -1, name);
    box = lua_touserdata(L, -1);
    lua_pop(L, 2);
    return *box;
}

static int nu__test_eval(lua_State *L)
{
    nu_decide_ctx_t ctx;
    nu_decision_t d;
    json_t *call;

    luaL_checktype(L, 2, LUA_TTABLE);
    nu__lua_parse_opts(L, 3, &ctx);
    call = nu__lua_to_json(L, 2, 0);
    nu__json_box(L, call);

    if (lua_type(L, 1) == LUA_TSTRING) {
        nu_profile_t *profile = nu__cached_profile(L, 1);
        nu_profile_eval(profile, call, &ctx, NULL, &d, NULL);
    } else {
        nu__lua_check_perm(L, 1);
        nu__lua_eval_perm(L, 1, call, &ctx, &d);
    }
    nu__lua_push_decision(L, &d);
    return 1;
}

/* --- nucleus.test.expect_eq ------------------------------------------ */

static bool nu__deep_equal(lua_State *L, int a, int b, int depth)
{
    a = lua_absindex(L, a);
    b = lua_absindex(L, b);
    if (lua_type(L, a) != LUA_TTABLE || lua_type(L, b) != LUA_TTABLE)
        return lua_compare(L, a, b, LUA_OPEQ);
    if (depth > 32)
        return false;
    luaL_checkstack(L, 4, "expect_eq");

    for (int pass = 0; pass < 2; pass++) {
        int from = pass == 0 ? a : b, to = pass == 0 ? b : a;
        lua_pushnil(L);
        while (lua_next(L, from) != 0) {
            lua_pushvalue(L, -2);
            lua_gettable(L, to);
            if (!nu__deep_equal(L, -1, -2, depth + 1)) {
                lua_pop(L, 3);
                return false;
            }
            lua_pop(L, 2);
        }
    }
    return true;
}

static const char *nu__describe(lua_State *L, int idx)
{
    if (lua_type(L, idx) == LUA_TSTRING) {
        lua_pushfstring(L, "\"%s\"", lua_tostring(L, idx));
        return lua_tostring(L, -1);
    }
    if (lua_type(L, idx) == LUA_TTABLE) {
        json_t *json = nu__lua_to_json(L, idx, 0);
        char *text = json_dumps(json, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(json);
        lua_pushstring(L, text != NULL ? text : "(table)");
        free(text);
        return lua_tostring(L, -1);
    }
    return luaL_tolstring(L, idx, NULL);
}

static int nu__test_expect_eq(lua_State *L)
{
    luaL_checkany(L, 2);
    if (nu__deep_equal(L, 1, 2, 0))
        return 0;
    return luaL_error(L, "%s%sexpected %s, got %s",
                      lua_isstring(L, 3) ? lua_tostring(L, 3) : "",
                      lua_isstring(L, 3) ? ": " : "", nu__describe(L, 2),
                      nu__describe(L, 1));
}

static const luaL_Reg nu__test_funcs[] = {
    { "eval", nu__test_eval },
    { "expect_eq", nu__test_expect_eq },
    { NULL, NULL }
};

void nu__lua_open_test(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, "nucleus.test_mode");
    if (!lua_toboolean(L, -1)) {
        lua_pop(L, 1);
        return;
    }
    lua_pop(L, 1);
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, "nucleus.test_profiles");
    luaL_newlib(L, nu__test_funcs);
    nu__policy_freeze(L, -1);
    lua_setfield(L, -2, "test");
}

/* --- running a test file --------------------------------------------- */

static void nu__report(nu_policy_report_fn report, void *userdata,
                       const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void nu__report(nu_policy_report_fn report, void *userdata,
                       const char *fmt, ...)
{
    char line[NU_ERR_MAX + 256];
    va_list ap;

    if (report == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    report(line, userdata);
}

static int nu__compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Collect the keys starting with "test" of the table at the top. */
static int nu__collect_cases(lua_State *L, char ***names, size_t *count)
{
    size_t n = 0, cap = 0;
    char **list = NULL;

    lua_pushnil(L);
    while (lua_next(L, -2) != 0) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING ||
            strncmp(lua_tostring(L, -1), "test", 4) != 0)
            continue;
        if (n == cap) {
            char **grown;
            cap = cap == 0 ? 16 : cap * 2;
            grown = realloc(list, cap * sizeof *list);
            if (grown == NULL)
                goto nomem;
            list = grown;
        }
        if ((list[n] = strdup(lua_tostring(L, -1))) == NULL)
            goto nomem;
        n++;
    }
    if (n > 0)
        qsort(list, n, sizeof *list, nu__compare_names);
    *names = list;
    *count = n;
    return NU_OK;

nomem:
    lua_pop(L, 1);
    for (size_t i = 0; i < n; i++)
        free(list[i]);
    free(list);
    return NU_ENOMEM;
}

static int nu__run_cases(nu_policy_t *policy, const char *path,
                         int *passed, int *failed,
                         nu_policy_report_fn report, void *userdata)
{
    lua_State *L = nu__policy_state(policy);
    char **names = NULL;
    size_t count = 0;
    nu_err_t err;

    if (nu__collect_cases(L, &names, &count) != NU_OK)
        return NU_ENOMEM;
    if (count == 0)
        nu__report(report, userdata, "%s:1: no test cases (return a table "
                                     "of functions named test_*)", path);

    for (size_t i = 0; i < count; i++) {
        if (lua_getfield(L, -1, names[i]) != LUA_TFUNCTION) {
            lua_pop(L, 1);
            (*failed)++;
            nu__report(report, userdata, "%s: %s:1: not a function",
                       names[i], path);
            free(names[i]);
            continue;
        }
        if (nu__policy_call(policy, 0, 0, &err) == NU_OK) {
            (*passed)++;
        } else {
            (*failed)++;
            nu__report(report, userdata, "%s: %s", names[i], err.msg);
        }
        free(names[i]);
    }
    free(names);
    return NU_OK;
}

int nu_policy_test_file(const char *path, const nu_policy_limits_t *limits,
                        int *passed, int *failed,
                        nu_policy_report_fn report, void *userdata)
{
    nu_policy_limits_t test_limits;
    nu_policy_t *policy = NULL;
    char chunkname[PATH_MAX + 2], dir[PATH_MAX];
    const char *slash;
    lua_State *L;
    nu_err_t err;
    int rc;

    if (limits != NULL)
        test_limits = *limits;
    else
        nu_policy_limits_default(&test_limits);
    test_limits.instructions *= NU__TEST_INSTRUCTION_FACTOR;
    test_limits.timeout_ms *= NU__TEST_INSTRUCTION_FACTOR;

    rc = nu__policy_new(&policy, &test_limits, true, &err);
    if (rc != NU_OK)
        goto fail;
    nu__policy_set_source(policy, path);
    L = nu__policy_state(policy);

    slash = strrchr(path, '/');
    snprintf(dir, sizeof dir, "%.*s", slash != NULL ? (int)(slash - path) : 1,
             slash != NULL ? path : ".");
    lua_pushstring(L, dir);
    lua_setfield(L, LUA_REGISTRYINDEX, "nucleus.test_dir");

    {
        char *text = NULL;
        size_t len = 0;
        FILE *f = fopen(path, "re");
        long size;

        if (f == NULL || fseek(f, 0, SEEK_END) != 0 ||
            (size = ftell(f)) < 0 || size > 1024 * 1024 ||
            fseek(f, 0, SEEK_SET) != 0 ||
            (text = malloc((size_t)size + 1)) == NULL ||
            (len = fread(text, 1, (size_t)size, f)) != (size_t)size) {
            rc = nu_err_set(&err, NU_EIO, "%s:0: cannot read test file",
                            path);
            free(text);
            if (f != NULL)
                fclose(f);
            goto fail;
        }
        fclose(f);
        snprintf(chunkname, sizeof chunkname, "@%s", path);
        rc = nu__policy_load(policy, chunkname, text, len, &err);
        free(text);
    }
    if (rc == NU_OK)
        rc = nu__policy_call(policy, 0, 1, &err);
    if (rc != NU_OK)
        goto fail;
    if (!lua_istable(L, -1)) {
        rc = nu_err_set(&err, NU_EPOLICY, "%s:1: a test file must return a "
                                          "table of test functions", path);
        goto fail;
    }

    rc = nu__run_cases(policy, path, passed, failed, report, userdata);
    nu_policy_free(policy);
    return rc;

fail:
    (*failed)++;
    nu__report(report, userdata, "%s", err.msg);
    nu_policy_free(policy);
    return rc;
}
