/*
 * shell.h - a static parser for the POSIX sh subset that agents send.
 *
 * nu_shell_parse turns a shell string into the flat list of simple
 * commands it would run, in the order they would start: a command
 * substitution's commands come before the command that uses its output.
 * It never executes or expands anything.  Words keep their expansions as
 * written ("$HOME/x" stays "$HOME/x") and carry flags that say whether
 * quote removal left a literal.
 *
 * Grammar covered: quoting ('..', "..", \, $'..', $".."), parameter,
 * command (both forms), arithmetic and process substitution, pipelines,
 * && || ; & and newlines, redirections with fd numbers, heredocs (<<,
 * <<-, quoted delimiters), here-strings, subshells, brace groups,
 * if/while/until/for/select/case, [[ ]], (( )), function definitions and
 * bash array assignments.  Compound commands are not kept as a tree: only
 * the simple commands inside them are reported, plus an empty command that
 * carries the compound's trailing redirections.
 *
 * Limits (classify.h): NU_SHELL_MAX_INPUT bytes, NU_SHELL_MAX_COMMANDS
 * commands, NU_SHELL_MAX_DEPTH nesting of compounds and substitutions,
 * NU_SHELL_MAX_WORDS words per command.  Every recursive function checks
 * the nesting depth first.
 */
#ifndef NUCLEUS_SHELL_H
#define NUCLEUS_SHELL_H

#include <stddef.h>

/* Word flags. */
#define NU_SHELL_W_QUOTED  0x1u /* some character was quoted or escaped */
#define NU_SHELL_W_DYNAMIC 0x2u /* contains $.., `..`, <(..) or >(..) */
#define NU_SHELL_W_GLOB    0x4u /* unquoted * ? [ or a brace expansion */

typedef struct nu_shell_word {
    char *text;        /* after quote removal, expansions kept as written */
    unsigned flags;    /* NU_SHELL_W_* */
} nu_shell_word_t;

typedef enum {
    NU_SHELL_R_IN,          /* <    */
    NU_SHELL_R_OUT,         /* >    */
    NU_SHELL_R_APPEND,      /* >>   */
    NU_SHELL_R_CLOBBER,     /* >|   */
    NU_SHELL_R_INOUT,       /* <>   */
    NU_SHELL_R_DUP_IN,      /* <&   */
    NU_SHELL_R_DUP_OUT,     /* >&   (a file when the word is not a fd or -) */
    NU_SHELL_R_BOTH,        /* &>   */
    NU_SHELL_R_BOTH_APPEND, /* &>>  */
    NU_SHELL_R_HEREDOC,     /* << and <<- */
    NU_SHELL_R_HERESTRING   /* <<<  */
} nu_shell_redir_kind_t;

typedef struct nu_shell_redir {
    int fd;                      /* explicit fd number, -1 for the default */
    nu_shell_redir_kind_t kind;
    nu_shell_word_t target;      /* file, fd, heredoc delimiter or string */
    char *body;                  /* heredoc body or here-string; else NULL */
    int body_literal;            /* body undergoes no expansion */
    size_t body_slot;            /* internal: 1 + index of the body while parsing */
} nu_shell_redir_t;

/* Command flags. */
#define NU_SHELL_C_PIPE_IN    0x1u /* stdin comes from a pipe */
#define NU_SHELL_C_BACKGROUND 0x2u /* run with '&' */

typedef struct nu_shell_cmd {
    size_t nwords;
    nu_shell_word_t *words;      /* program and arguments; may be empty */
    size_t nassigns;
    nu_shell_word_t *assigns;    /* NAME=value words before the program */
    size_t nredirs;
    nu_shell_redir_t *redirs;
    unsigned flags;              /* NU_SHELL_C_* */
} nu_shell_cmd_t;

typedef struct nu_shell_script {
    size_t ncmds;
    size_t cap;
    nu_shell_cmd_t *cmds;
    unsigned flags;              /* NU_CMDF_PARSE_ERROR or NU_CMDF_TOO_COMPLEX */
    char error[160];             /* the reason, with the byte offset */
} nu_shell_script_t;

/* Parse len bytes of src.  depth is the nesting already used by callers
 * that parse strings found inside other commands (sh -c, eval); pass 0.
 * Returns NU_OK with out filled, also for invalid or oversized input.
 * Then out->flags and out->error give the reason, and out keeps the
 * commands parsed before the error.  Returns NU_ENOMEM (out empty) when
 * memory runs out.  Free out with nu_shell_script_free. */
int nu_shell_parse(const char *src, size_t len, unsigned depth,
                   nu_shell_script_t *out);

void nu_shell_script_free(nu_shell_script_t *s);

#endif
