/*
 * cmd_run.c - nucleus run SCRIPT.lua [ARG...]: run an orchestrator script
 * with the nucleus Lua API loaded.
 */
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "cli/commands.h"
#include "cli/lua_host.h"

static void nu__run_usage(FILE *out)
{
    fprintf(out, "usage: nucleus run SCRIPT.lua [ARG...]\n\n"
                 "Run an orchestrator script.  require \"nucleus\" gives the "
                 "pod API;\nthe script's arguments are in the global 'arg' "
                 "(arg[0] is the script).\n");
}

int nu_cmd_run(int argc, char **argv)
{
    lua_State *L;
    int status, code = NU_EXIT_OK;

    if (argc < 2) {
        nu__run_usage(stderr);
        return NU_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        nu__run_usage(stdout);
        return NU_EXIT_OK;
    }

    L = nu_lua_host_new(argc - 1, argv + 1);
    if (L == NULL) {
        fprintf(stderr, "nucleus: run: cannot create a Lua state: out of "
                        "memory\n");
        return NU_EXIT_FAIL;
    }

    if (luaL_loadfile(L, argv[1]) != LUA_OK) {
        fprintf(stderr, "nucleus: run: %s\n", lua_tostring(L, -1));
        lua_close(L);
        return NU_EXIT_FAIL;
    }
    for (int i = 2; i < argc; i++)
        lua_pushstring(L, argv[i]);

    status = nu_lua_host_call(L, argc - 2, 1);
    if (status != LUA_OK)
        code = NU_EXIT_FAIL;
    else if (lua_isinteger(L, -1))
        code = (int)lua_tointeger(L, -1);
    else if (lua_isboolean(L, -1) && !lua_toboolean(L, -1))
        code = NU_EXIT_FAIL;

    lua_close(L);
    return code;
}
