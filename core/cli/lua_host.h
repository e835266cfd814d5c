/*
 * lua_host.h - the ordinary (trusted) Lua state of nucleus run and the
 * REPL: the standard libraries plus require "nucleus" built in.
 */
#ifndef NUCLEUS_CLI_LUA_HOST_H
#define NUCLEUS_CLI_LUA_HOST_H

#include <lua.h>

/* Create the state: standard libraries, package.preload entries for
 * "nucleus" and "nucleus.core", and the global arg table from argv
 * (argv[0] is the script).  Returns NULL on ENOMEM. */
lua_State *nu_lua_host_new(int argc, char **argv);

/* Run the function at the top of the stack with nargs arguments under a
 * traceback handler; on error print "nucleus: MESSAGE" and the traceback
 * to stderr.  Returns the lua_pcall status. */
int nu_lua_host_call(lua_State *L, int nargs, int nresults);

#endif
