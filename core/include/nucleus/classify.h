/*
 * classify.h - operation classification of tool calls and shell commands.
 *
 * A "run" call carries either argv (no shell) or a shell string.  A shell
 * string is parsed (POSIX sh grammar subset: quoting, escapes, pipelines,
 * lists with && || ; &, subshells, brace groups, command and process
 * substitution, redirections, heredocs, variable assignments) into the
 * simple commands it would run.  Every simple command is reported, so the
 * caller checks each against the command rules and the strictest result
 * wins.
 *
 * Classification never executes anything and never expands variables.
 * What it cannot resolve statically is flagged, and the policy layer
 * denies or gates flagged commands; nothing flagged is treated as safe.
 */
#ifndef NUCLEUS_CLASSIFY_H
#define NUCLEUS_CLASSIFY_H

#include <stddef.h>

#include "nucleus/error.h"
#include "nucleus/lattice.h"

/* Flags on a simple command or a whole analysis. */
#define NU_CMDF_DYNAMIC_PROGRAM  0x0001 /* program name not a literal ($x, $(..), `..`) */
#define NU_CMDF_SHELL_EVAL       0x0002 /* eval, source, ., sh -c, pipe into a shell */
#define NU_CMDF_INLINE_CODE      0x0004 /* interpreter with inline code (python -c, node -e, perl -e) */
#define NU_CMDF_EXEC_OPTION      0x0008 /* option that runs other programs (find -exec, xargs, ...) */
#define NU_CMDF_DANGEROUS_ENV    0x0010 /* LD_PRELOAD=, PATH=, BASH_ENV=, GIT_SSH_COMMAND=, ... */
#define NU_CMDF_NETWORK          0x0020 /* curl, wget, nc, ssh, ... */
#define NU_CMDF_TOO_COMPLEX      0x0040 /* over the parser's limits */
#define NU_CMDF_PARSE_ERROR      0x0080 /* not valid shell */
#define NU_CMDF_BACKGROUND       0x0100 /* '&' */

/* Parser limits: input bytes, simple commands, nesting, words per command. */
#define NU_SHELL_MAX_INPUT 65536
#define NU_SHELL_MAX_COMMANDS 256
#define NU_SHELL_MAX_DEPTH 32
#define NU_SHELL_MAX_WORDS 4096

typedef struct nu_redirect {
    char *target;                /* file name after quote removal */
    int write;                   /* 1 for > >> >| <> &>, 0 for < */
    int dynamic;                 /* target contains an expansion */
} nu_redirect_t;

typedef struct nu_simple_cmd {
    int argc;
    char **argv;                 /* after quote removal; NULL-terminated */
    size_t nenv;
    char **env;                  /* "NAME=value" assignments before it, and those given through env(1) */
    size_t nredirects;
    nu_redirect_t *redirects;
    unsigned flags;              /* NU_CMDF_* for this command */
    nu_op_t operation;           /* what this command exercises */
} nu_simple_cmd_t;

typedef struct nu_cmd_analysis {
    nu_op_t operation;           /* the most significant operation of all commands:
                                    git_push / create_pr over web_fetch over git_commit
                                    over run_bash */
    nu_opset_t ops;              /* every operation exercised */
    unsigned flags;              /* union of command flags */
    size_t ncmds;
    nu_simple_cmd_t *cmds;
    char reason[256];            /* why flags were set, for the decision's reason */
} nu_cmd_analysis_t;

/* Analyze a shell string.  Returns NU_OK and fills out (free it with
 * nu_cmd_analysis_free) even for input it cannot parse: then
 * NU_CMDF_PARSE_ERROR or NU_CMDF_TOO_COMPLEX is set.  Returns NU_ENOMEM
 * only on allocation failure, and NU_EINVAL when command is NULL.
 * A wrapper (sudo, env, timeout, xargs, find -exec) and the command it
 * runs are reported as two simple commands; docs/commands.md lists the
 * programs, options and environment names the classifier acts on. */
int nu_classify_shell(const char *command, nu_cmd_analysis_t *out);

/* Analyze an argv vector run without a shell.  Returns NU_EINVAL when
 * argc is negative or argv is NULL with argc > 0. */
int nu_classify_argv(int argc, char *const argv[], nu_cmd_analysis_t *out);

void nu_cmd_analysis_free(nu_cmd_analysis_t *a);

/* The data table of options that make otherwise harmless programs run other
 * programs: program base name, option (prefix match when it ends in '=').
 * Operators extend it with nu_classify_add_exec_option. */
typedef struct nu_exec_option {
    const char *program;
    const char *option;
} nu_exec_option_t;
extern const nu_exec_option_t nu_exec_options_builtin[];
int nu_classify_add_exec_option(const char *program, const char *option);

#endif
