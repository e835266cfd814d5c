/*
 * core_module.c - the nucleus.core Lua C module.
 *
 * require "nucleus.core" returns the same nucleus table profiles see in
 * the sandbox (profile, ALL, SENSITIVE, AUTORUN, meet, join, leq,
 * from_json, top, bottom), plus:
 *
 *   load_profile(name_or_path) -> profile handle, or raises
 *       handle.name, handle.source, handle:perm() (a lattice value),
 *       handle:eval(call [, opts]) -> decision table; hooks run in the
 *       profile's own sandbox
 *   eval(value, call [, opts]) -> decision table for a lattice value;
 *       the check hook of a profile built in this state runs here,
 *       unsandboxed (it is the caller's own code)
 *   builtins() -> list of built-in profile names
 *
 * opts is { exposure = "private,untrusted" | {...}, egress = bool,
 * now = seconds, spent = {...} }.
 */
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "policy_internal.h"

#define NU__HANDLE_MT "nucleus.profile"

static nu_profile_t *nu__check_handle(lua_State *L, int idx)
{
    nu_profile_t **box = luaL_checkudata(L, idx, NU__HANDLE_MT);

    if (*box == NULL)
        luaL_argerror(L, idx, "profile handle is closed");
    return *box;
}

static int nu__handle_gc(lua_State *L)
{
    nu_profile_t **box = luaL_checkudata(L, 1, NU__HANDLE_MT);

    nu_profile_free(*box);
    *box = NULL;
    return 0;
}

static int nu__handle_eval(lua_State *L)
{
    nu_profile_t *profile = nu__check_handle(L, 1);
    nu_decide_ctx_t ctx;
    nu_decision_t d;
    json_t *call;

    luaL_checktype(L, 2, LUA_TTABLE);
    nu__lua_parse_opts(L, 3, &ctx);
    call = nu__lua_to_json(L, 2, 0);
    nu_profile_eval(profile, call, &ctx, NULL, &d, NULL);
    json_decref(call);
    nu__lua_push_decision(L, &d);
    return 1;
}

static int nu__handle_perm(lua_State *L)
{
    nu_profile_t *profile = nu__check_handle(L, 1);
    nu_perm_t copy;

    if (nu_perm_copy(&copy, nu_profile_perm(profile)) != NU_OK)
        return luaL_error(L, "perm: out of memory");
    nu__lua_push_perm(L, &copy);
    return 1;
}

static int nu__handle_index(lua_State *L)
{
    nu_profile_t *profile = nu__check_handle(L, 1);
    const char *key = luaL_checkstring(L, 2);

    if (strcmp(key, "name") == 0)
        lua_pushstring(L, nu_profile_name(profile));
    else if (strcmp(key, "source") == 0)
        lua_pushstring(L, nu_profile_source(profile));
    else if (strcmp(key, "eval") == 0)
        lua_pushcfunction(L, nu__handle_eval);
    else if (strcmp(key, "perm") == 0)
        lua_pushcfunction(L, nu__handle_perm);
    else
        lua_pushnil(L);
    return 1;
}

static int nu__load_profile(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    nu_profile_t **box = lua_newuserdatauv(L, sizeof *box, 0);
    nu_err_t err;

    *box = NULL;
    luaL_setmetatable(L, NU__HANDLE_MT);
    if (nu_profile_load(box, name, NULL, &err) != NU_OK)
        return luaL_error(L, "%s", err.msg);
    return 1;
}

static int nu__eval(lua_State *L)
{
    nu_decide_ctx_t ctx;
    nu_decision_t d;
    json_t *call;

    nu__lua_check_perm(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    nu__lua_parse_opts(L, 3, &ctx);
    call = nu__lua_to_json(L, 2, 0);
    nu__lua_eval_perm(L, 1, call, &ctx, &d);
    json_decref(call);
    nu__lua_push_decision(L, &d);
    return 1;
}

static int nu__builtins(lua_State *L)
{
    const char *const *names = nu_profile_builtin_names();

    lua_newtable(L);
    for (int i = 0; names[i] != NULL; i++) {
        lua_pushstring(L, names[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

int luaopen_nucleus_core(lua_State *L);
void nu__lua_register_pod(lua_State *L);   /* core/lua_pod.c */
void nu__lua_register_identity(lua_State *L);   /* core/lua_identity.c */

int luaopen_nucleus_core(lua_State *L)
{
    if (luaL_newmetatable(L, NU__HANDLE_MT)) {
        lua_pushcfunction(L, nu__handle_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, nu__handle_index);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);

    nu__lua_push_nucleus(L, false);
    lua_pushcfunction(L, nu__load_profile);
    lua_setfield(L, -2, "load_profile");
    lua_pushcfunction(L, nu__eval);
    lua_setfield(L, -2, "eval");
    lua_pushcfunction(L, nu__builtins);
    lua_setfield(L, -2, "builtins");
    nu__lua_register_pod(L);
    nu__lua_register_identity(L);
    return 1;
}
