/*
 * commands.h - the nucleus subcommands.
 *
 * Each subcommand lives in its own core/cli/cmd_<name>.c and has the
 * signature of main: argv[0] is the subcommand's name.  Exit codes: 0
 * success, 1 failure, 2 usage error (nucleus exec has its own, see there).
 */
#ifndef NUCLEUS_CLI_COMMANDS_H
#define NUCLEUS_CLI_COMMANDS_H

#define NU_EXIT_OK 0
#define NU_EXIT_FAIL 1
#define NU_EXIT_USAGE 2

typedef int (*nu_cmd_fn)(int argc, char **argv);

/* Declared weak so that a build without one of them still links; main
 * reports a missing subcommand instead of crashing. */
#define NU_CMD_LIST(X)                                                   \
    X(policy, "check, show, meet, join, leq, eval and test profiles")   \
    X(exec, "run one command in a new pod")                             \
    X(run, "run an orchestrator script with the Lua API loaded")        \
    X(repl, "interactive Lua session with the API loaded")              \
    X(replay, "decide (or execute) the tool calls of a transcript")     \
    X(audit, "verify, export, prove and show the audit log")            \
    X(ca, "create the trust domain's CA and print its bundle")          \
    X(svid, "issue and verify X.509-SVIDs and JWT-SVIDs")               \
    X(serve, "run the JSON-RPC daemon")                                 \
    X(mcp, "serve a pod's tools over MCP on stdio")                     \
    X(vm, "build the microVM image")                                    \
    X(doctor, "report which isolation mechanisms this host supports")

#define NU__CMD_DECL(name, help) \
    int nu_cmd_##name(int argc, char **argv) __attribute__((weak));
NU_CMD_LIST(NU__CMD_DECL)
#undef NU__CMD_DECL

#endif
