/*
 * replay_rebase.c - move the redirection targets of a recorded command
 * onto the replay workspace.
 *
 * The shell parser reports each redirection's target after quote removal
 * but not where it sits in the command string, so the rewrite works in
 * three steps and keeps the command unchanged unless all of them agree:
 *
 *   1. parse the command and count the file targets under the transcript's
 *      cwd (rejecting any that contains an expansion);
 *   2. scan the text for a redirection operator (a run of < > & |),
 *      optional blanks and an optional opening quote, followed by cwd and
 *      a word boundary; the number of such places must equal the count of
 *      step 1, so a "> /testbed/x" inside a quoted string or a heredoc
 *      body makes the count differ and the call is rejected;
 *   3. replace cwd by /workspace at those places, parse the result and
 *      check that it has the same commands and redirections, each target
 *      under cwd now under /workspace.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/replay_rebase.h"
#include "nucleus/error.h"
#include "nucleus/shell.h"

static bool nu__under(const char *path, const char *cwd, size_t n)
{
    return strncmp(path, cwd, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/* Whether a redirection's target names a file (not a heredoc delimiter,
 * a here-string or a file descriptor). */
static bool nu__file_target(const nu_shell_redir_t *redir)
{
    return redir->kind != NU_SHELL_R_HEREDOC &&
           redir->kind != NU_SHELL_R_HERESTRING;
}

/*
 * Step 1: count the file targets under cwd.  Returns the count, or -1
 * with reason set when one of them contains an expansion.
 */
static long nu__count_targets(const nu_shell_script_t *script,
                              const char *cwd, size_t n, char *reason,
                              size_t size)
{
    long count = 0;

    for (size_t c = 0; c < script->ncmds; c++) {
        const nu_shell_cmd_t *cmd = &script->cmds[c];

        for (size_t i = 0; i < cmd->nredirs; i++) {
            const nu_shell_word_t *t = &cmd->redirs[i].target;

            if (!nu__file_target(&cmd->redirs[i]) || t->text == NULL ||
                !nu__under(t->text, cwd, n))
                continue;
            if (t->flags & NU_SHELL_W_DYNAMIC) {
                snprintf(reason, size, "replay: cannot rebase redirect "
                         "target '%.200s' onto the workspace: it contains an "
                         "expansion (rewrite the step with a path relative "
                         "to the workspace)", t->text);
                return -1;
            }
            count++;
        }
    }
    return count;
}

/* Step 2: the offset of cwd after the redirection operator at src[i], or
 * 0 when the text there does not redirect to a path under cwd. */
static size_t nu__target_at(const char *src, size_t i, const char *cwd,
                            size_t n)
{
    size_t j = i;
    char after;

    while (src[j] == '<' || src[j] == '>' || src[j] == '&' || src[j] == '|')
        j++;
    while (src[j] == ' ' || src[j] == '\t')
        j++;
    if (src[j] == '"' || src[j] == '\'')
        j++;
    if (strncmp(src + j, cwd, n) != 0)
        return 0;

    after = src[j + n];
    if (after == '\0' || strchr("/\"' \t\n;&|)", after) != NULL)
        return j;
    return 0;
}

/* Step 3: copy src with cwd replaced by /workspace at every place step 2
 * finds.  Returns a malloc'd string (NULL when out of memory) and the
 * number of places in *places. */
static char *nu__rewrite(const char *src, const char *cwd, size_t n,
                         long *places)
{
    size_t len = strlen(src), ws = strlen(NU_REPLAY_WORKSPACE);
    size_t cap = len + 1, out_len = 0, i = 0;
    char *out;

    /* Each place grows the text by at most ws bytes. */
    for (size_t k = 0; k < len; k++)
        if (src[k] == '<' || src[k] == '>')
            cap += ws;
    out = malloc(cap);
    if (out == NULL)
        return NULL;

    *places = 0;
    while (i < len) {
        size_t j = (src[i] == '<' || src[i] == '>')
                 ? nu__target_at(src, i, cwd, n) : 0;

        if (j == 0) {
            out[out_len++] = src[i++];
            continue;
        }
        memcpy(out + out_len, src + i, j - i);
        out_len += j - i;
        memcpy(out + out_len, NU_REPLAY_WORKSPACE, ws);
        out_len += ws;
        i = j + n;
        (*places)++;
    }
    out[out_len] = '\0';
    return out;
}

/* Whether after has the commands and redirections of before, with each
 * target under cwd moved under /workspace. */
static bool nu__same_shape(const nu_shell_script_t *before,
                           const nu_shell_script_t *after, const char *cwd,
                           size_t n)
{
    char moved[4096];

    if (before->ncmds != after->ncmds || before->flags != after->flags)
        return false;
    for (size_t c = 0; c < before->ncmds; c++) {
        const nu_shell_cmd_t *b = &before->cmds[c], *a = &after->cmds[c];

        if (b->nredirs != a->nredirs || b->nwords != a->nwords)
            return false;
        for (size_t i = 0; i < b->nwords; i++)
            if (strcmp(b->words[i].text, a->words[i].text) != 0)
                return false;
        for (size_t i = 0; i < b->nredirs; i++) {
            const nu_shell_redir_t *rb = &b->redirs[i], *ra = &a->redirs[i];
            const char *want = rb->target.text;

            if (rb->kind != ra->kind || rb->fd != ra->fd ||
                (want == NULL) != (ra->target.text == NULL))
                return false;
            if (want != NULL && nu__file_target(rb) && nu__under(want, cwd, n)) {
                snprintf(moved, sizeof moved, "%s%s", NU_REPLAY_WORKSPACE,
                         want + n);
                want = moved;
            }
            if (want != NULL && strcmp(want, ra->target.text) != 0)
                return false;
        }
    }
    return true;
}

int nu__replay_rebase_redirects(const char *cwd, json_t *call, char *reason,
                                size_t size)
{
    const char *src = json_string_value(json_object_get(call, "command"));
    nu_shell_script_t before = { 0 }, after = { 0 };
    char *rewritten = NULL;
    size_t n = cwd != NULL ? strlen(cwd) : 0;
    long expected, places = 0;
    int rc = 0;

    while (n > 0 && cwd[n - 1] == '/')
        n--;
    if (src == NULL || n == 0)
        return 0;

    if (nu_shell_parse(src, strlen(src), 0, &before) != NU_OK)
        return 0;   /* out of memory: the decision reports the command */
    expected = nu__count_targets(&before, cwd, n, reason, size);
    if (expected <= 0) {
        rc = expected < 0 ? -1 : 0;
        goto cleanup;
    }

    rewritten = nu__rewrite(src, cwd, n, &places);
    if (rewritten == NULL ||
        nu_shell_parse(rewritten, strlen(rewritten), 0, &after) != NU_OK) {
        snprintf(reason, size, "replay: cannot rebase redirect targets onto "
                 "the workspace: out of memory");
        rc = -1;
        goto cleanup;
    }
    if (places != expected || !nu__same_shape(&before, &after, cwd, n)) {
        snprintf(reason, size, "replay: cannot rebase the redirect targets "
                 "under '%.*s' onto the workspace: the same path also "
                 "appears in a quoted string or heredoc (rewrite the step "
                 "with paths relative to the workspace)", (int)n, cwd);
        rc = -1;
        goto cleanup;
    }
    json_object_set_new(call, "command", json_string(rewritten));

cleanup:
    nu_shell_script_free(&before);
    nu_shell_script_free(&after);
    free(rewritten);
    return rc;
}
