/*
 * lua_host.c - the trusted Lua state shared by nucleus run and the REPL.
 */
#include <stdio.h>

#include <lauxlib.h>
#include <lualib.h>

#include "cli/lua_host.h"
#include "nucleus/log.h"

int luaopen_nucleus_core(lua_State *L);   /* lua/core_module.c */

static int nu__traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);

    if (msg == NULL && luaL_callmeta(L, 1, "__tostring") &&
        lua_type(L, -1) == LUA_TSTRING)
        return 1;
    if (msg == NULL)
        msg = lua_pushfstring(L, "(error object is a %s value)",
                              luaL_typename(L, 1));
    luaL_traceback(L, L, msg, 1);
    return 1;
}

lua_State *nu_lua_host_new(int argc, char **argv)
{
    lua_State *L = luaL_newstate();

    if (L == NULL)
        return NULL;
    luaL_openlibs(L);

    /* require "nucleus" and require "nucleus.core" load the built-in
     * module, whatever package.path says. */
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushcfunction(L, luaopen_nucleus_core);
    lua_setfield(L, -2, "nucleus.core");
    lua_pushcfunction(L, luaopen_nucleus_core);
    lua_setfield(L, -2, "nucleus");
    lua_pop(L, 1);

    lua_createtable(L, argc, 1);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i);
    }
    lua_setglobal(L, "arg");
    return L;
}

int nu_lua_host_call(lua_State *L, int nargs, int nresults)
{
    int base = lua_gettop(L) - nargs;
    int status;

    lua_pushcfunction(L, nu__traceback);
    lua_insert(L, base);
    status = lua_pcall(L, nargs, nresults, base);
    lua_remove(L, base);

    if (status != LUA_OK) {
        fprintf(stderr, "nucleus: %s\n", lua_tostring(L, -1));
        lua_pop(L, 1);
    }
    return status;
}
