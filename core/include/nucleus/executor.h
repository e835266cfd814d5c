/*
 * executor.h - the in-pod tool executor: read, write, edit, glob, grep, run.
 *
 * The executor performs one tool call against a workspace directory, which
 * it keeps as an open file descriptor.  It runs wherever the workspace is: in
 * the namespace sandbox's pod init (after pivot_root, workspace at
 * /workspace), in the microVM guest agent, and in tests on a temporary
 * directory.  It depends on libc, jansson and PCRE2 only, so that it links
 * into a static guest binary.
 *
 * Policy is not checked here.  The host pipeline decides whether a call is
 * allowed; the executor enforces the properties that must hold whatever the
 * policy says:
 *   1. every path is resolved beneath the workspace root: ".." cannot climb
 *      above it, symbolic links are followed only while their target stays
 *      inside it, and absolute paths must lie under root_prefix;
 *   2. every output is capped by a limit in nu_executor_config_t, and a
 *      capped output says so ("truncated": true);
 *   3. a command runs in its own process group with a clean environment and
 *      is killed, group and all, at its timeout or when it exits.
 *
 * Call and result format
 * ----------------------
 * A call is a JSON object {"tool": NAME, ARGUMENTS...}.  The arguments may
 * also be nested as {"tool": NAME, "args": {ARGUMENTS...}}.  Unknown
 * argument names are ignored.  The tools and their arguments are listed in
 * docs/tools.md.
 *
 * A result is a JSON object.  On success it is {"ok": true, FIELDS...}.  On
 * failure it is {"ok": false, "kind": KIND, "error": MESSAGE, FIELDS...},
 * where KIND is a nu_kind_t wire name (invalid_request, path_denied,
 * not_found, io_error, timeout, internal) and MESSAGE is one line in the
 * project's voice.  A failed run still carries the output it collected.
 *
 * Byte strings (file content, command output, stdin) are carried as JSON
 * strings when they are valid UTF-8 without NUL, and as base64 otherwise.
 * A field X is accompanied by X_encoding: "utf-8" or "base64".  A caller
 * that passes blob_out receives read content as raw bytes instead, and the
 * result says "content_encoding": "blob".
 */
#ifndef NUCLEUS_EXECUTOR_H
#define NUCLEUS_EXECUTOR_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "nucleus/error.h"

/* Limits and environment of an executor.  nu_executor_config_init fills
 * every field with the default named in its comment. */
typedef struct nu_executor_config {
    /* Absolute path under which the workspace is visible to the agent.
     * Absolute request paths and absolute symlink targets are accepted only
     * under it.  Default "/workspace". */
    const char *root_prefix;

    size_t max_read_bytes;      /* bytes returned by one read; 8 MiB */
    size_t max_write_bytes;     /* size of a file written or edited; 16 MiB */
    size_t max_output_bytes;    /* run: bytes kept per stream; 1 MiB */
    size_t max_stdin_bytes;     /* run: bytes of stdin accepted; 8 MiB */
    size_t max_glob_matches;    /* glob: matches returned; 1000 */
    size_t max_grep_matches;    /* grep: matching lines returned; 500 */
    size_t max_grep_file_bytes; /* grep: larger files are skipped; 8 MiB */
    size_t max_grep_line_bytes; /* grep: longer lines are cut; 1000 */
    size_t max_grep_context;    /* grep: context lines on each side; 20 */
    size_t max_walk_entries;    /* glob, grep: directory entries visited
                                 * before the walk stops; 200000 */
    uint32_t grep_match_limit;  /* PCRE2 match limit per line; 1000000 */
    uint32_t grep_depth_limit;  /* PCRE2 depth limit per line; 10000 */

    uint32_t default_timeout_ms; /* run without "timeout"; 120000 */
    uint32_t max_timeout_ms;     /* larger requested timeouts are clamped;
                                  * 600000 */
    uint32_t term_grace_ms;      /* SIGTERM to SIGKILL delay; 2000 */
    uint32_t drain_ms;           /* after the command exits, wait this long
                                  * for its pipes to close; 200 */

    int fsync;                  /* write, edit: fsync before rename; 0 */

    /* run: the environment every command starts from, as "NAME=value"
     * strings, NULL-terminated.  NULL selects PATH=/usr/local/bin:/usr/bin:
     * /bin, HOME=<root_prefix>, LANG=C.UTF-8, TERM=dumb. */
    const char *const *base_env;

    /* run: variables the embedding process adds after the call's own "env"
     * (SVID paths, credentials), so a call cannot override them.  NULL for
     * none.  Never logged and never copied into a result. */
    const char *const *extra_env;
} nu_executor_config_t;

/* An executor: a workspace root descriptor plus its configuration. */
typedef struct nu_executor {
    int root_fd;                /* O_PATH|O_DIRECTORY, owned */
    nu_executor_config_t cfg;   /* strings are borrowed from the caller */
    uint64_t last_exec_ns;      /* duration of the last nu_exec_tool call,
                                 * for pipeline overhead measurements */
} nu_executor_t;

/* Raw bytes handed out instead of a base64 string.  Free with
 * nu_blob_free. */
typedef struct nu_blob {
    unsigned char *data;
    size_t len;
} nu_blob_t;

void nu_blob_free(nu_blob_t *blob);

/* Fill cfg with the defaults documented above. */
void nu_executor_config_init(nu_executor_config_t *cfg);

/* Open root (a directory path) and set up ex.  cfg may be NULL for the
 * defaults; it is copied, but the strings and arrays it points to must
 * outlive ex.  Returns NU_OK, NU_ENOENT or NU_EINVAL (root missing or not a
 * directory, root_prefix not absolute) with err filled. */
int nu_executor_init(nu_executor_t *ex, const char *root,
                     const nu_executor_config_t *cfg, nu_err_t *err);

/* Like nu_executor_init with an already open directory descriptor, which
 * ex takes over (it is closed by nu_executor_close, also on failure). */
int nu_executor_init_fd(nu_executor_t *ex, int root_fd,
                        const nu_executor_config_t *cfg, nu_err_t *err);

void nu_executor_close(nu_executor_t *ex);

/* Perform one tool call.
 *
 * *result (OUT) always receives a new result object as described at the top
 * of this file, except on NU_ENOMEM where it may be NULL.  blob_out may be
 * NULL; when it is not, read content goes there (the caller frees it).
 *
 * Returns NU_OK when the tool succeeded.  On failure it returns the
 * negative code below and fills err with the result's "error" message:
 *   NU_EINVAL    invalid_request (bad arguments, ambiguous edit, grep
 *                pattern that does not compile or hits the match limit)
 *   NU_EDENIED   path_denied (the path leaves the workspace)
 *   NU_ENOENT    not_found (missing file, edit text not found, program
 *                not found: exit status 127)
 *   NU_ETIMEDOUT timeout (run killed at its timeout)
 *   NU_EIO       io_error (any other system call failure)
 *   NU_ELIMIT    invalid_request (file larger than max_write_bytes)
 *   NU_ENOMEM    internal
 * A command that runs and exits with a non-zero status is a success. */
int nu_exec_tool(nu_executor_t *ex, const json_t *call, json_t **result,
                 nu_blob_t *blob_out, nu_err_t *err);

/* Per-tool entry points with the same contract; args is the argument
 * object (without "tool"). */
int nu_exec_read(nu_executor_t *ex, const json_t *args, json_t **result,
                 nu_blob_t *blob_out, nu_err_t *err);
int nu_exec_write(nu_executor_t *ex, const json_t *args, json_t **result,
                  nu_err_t *err);
int nu_exec_edit(nu_executor_t *ex, const json_t *args, json_t **result,
                 nu_err_t *err);
int nu_exec_glob(nu_executor_t *ex, const json_t *args, json_t **result,
                 nu_err_t *err);
int nu_exec_grep(nu_executor_t *ex, const json_t *args, json_t **result,
                 nu_err_t *err);
/* NOTE: run forks and later reaps its own child.  While it runs, the
 * calling process must not set SIGCHLD to SIG_IGN or call waitpid(-1),
 * because either takes the exit status away (the result is then
 * "internal"). */
int nu_exec_run(nu_executor_t *ex, const json_t *args, json_t **result,
                nu_err_t *err);

/* Map an executor return code to the result's kind. */
nu_kind_t nu_exec_kind(int code);

/*
 * Path resolution beneath a root (core/resolve.c)
 * -----------------------------------------------
 * The walk opens one component at a time relative to the directory
 * descriptor reached so far, with O_NOFOLLOW (and openat2 RESOLVE_BENEATH |
 * RESOLVE_NO_SYMLINKS where the kernel has it), so the kernel never follows
 * a link on our behalf.  Symbolic links are read and their targets spliced
 * into the remaining path; ".." pops the stack of descriptors already
 * opened.  The walk therefore tracks the real, workspace-relative path of
 * the target, which the host uses to apply path rules: with
 * "notes.txt -> .env" a read of notes.txt resolves to ".env".
 *
 * Rejected (NU_EDENIED, kind path_denied): ".." above the root, absolute
 * paths or link targets outside root_prefix, more than 40 links (loops).
 * Rejected (NU_EINVAL): empty path, NUL byte, path longer than 4095 bytes,
 * component longer than 255 bytes.
 */

#define NU_RESOLVE_FOLLOW_FINAL 1  /* follow a final symlink (inside only) */
#define NU_RESOLVE_MAY_NOT_EXIST 2 /* the final component may be missing */
#define NU_RESOLVE_MKDIRS 4        /* create missing parent directories */

/* A resolved path: the parent directory and the final name, which
 * together name the target without any symlink left to follow. */
typedef struct nu_resolved {
    int dir_fd;       /* O_PATH directory descriptor of the parent, owned */
    char *name;       /* final component; "." when the target is the root */
    char *rel;        /* workspace-relative path of the target, "." for the
                       * root, never containing "." or ".." components */
    int exists;       /* the final component exists */
} nu_resolved_t;

/* Resolve path beneath root_fd.  root_prefix is the absolute name of the
 * root ("/workspace").  On NU_OK, out is filled and must be released with
 * nu_resolved_free.  On failure out needs no freeing, and err names the
 * component that failed.  Returns NU_OK, NU_EDENIED, NU_EINVAL, NU_ENOENT
 * (a component is missing, or the final one without
 * NU_RESOLVE_MAY_NOT_EXIST), NU_EIO or NU_ENOMEM. */
int nu_resolve(int root_fd, const char *root_prefix, const char *path,
               int flags, nu_resolved_t *out, nu_err_t *err);

void nu_resolved_free(nu_resolved_t *r);

/* Return in *rel_out (OUT, malloc'd) the workspace-relative path that path
 * resolves to, following symlinks that stay inside the root.  A missing
 * final component is allowed (writes create it).  Same return codes as
 * nu_resolve. */
int nu_resolve_path(int root_fd, const char *root_prefix, const char *path,
                    char **rel_out, nu_err_t *err);

#endif
