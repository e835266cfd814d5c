/*
 * replay_rebase.h - move the redirection targets of a recorded command
 * onto the replay workspace (nucleus replay).
 */
#ifndef NUCLEUS_CLI_REPLAY_REBASE_H
#define NUCLEUS_CLI_REPLAY_REBASE_H

#include <stddef.h>

#include <jansson.h>

/* Mount point of the workspace in every pod. */
#define NU_REPLAY_WORKSPACE "/workspace"

/*
 * Rewrite the redirection targets of call's "command" that lie under the
 * transcript's cwd (cwd itself or cwd/...) to the same path under
 * /workspace, so "echo x > /testbed/out.txt" writes /workspace/out.txt.
 * Relative targets need no change: they resolve against the call's cwd,
 * which is rebased like the other path fields.
 *
 * Returns 0 when the call needs no change or was rewritten.  Returns -1
 * and writes a one-line reason when a target under cwd cannot be
 * rewritten safely, and leaves the call unchanged.  That happens when the
 * target contains an expansion, when the same text also appears inside a
 * quoted string or a heredoc, or when the rewritten command does not
 * parse to the same redirections.  cwd "/" (or empty) rebases nothing.
 */
int nu__replay_rebase_redirects(const char *cwd, json_t *call, char *reason,
                                size_t size);

#endif
