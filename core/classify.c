/*
 * classify.c - operation classification of run calls (contract in
 * classify.h; the program tables are documented in docs/commands.md).
 *
 * How a command is classified
 *
 * A shell string is parsed by nu_shell_parse into its simple commands;
 * an argv vector is one simple command.  Each simple command is appended
 * to the analysis and then examined by program base name:
 *
 *   1. Assignments before it (and those given through env(1)) are checked
 *      against the dangerous environment names.
 *   2. A program name that is not a literal after quote removal is
 *      NU_CMDF_DYNAMIC_PROGRAM and nothing else is concluded.
 *   3. Wrappers (env, sudo, timeout, xargs, find -exec, ...) are reported
 *      as they are, and the command they run is classified and appended as
 *      its own simple command, so command rules see both views.
 *   4. Strings that a shell will run (sh -c, eval, trap, su -c, watch, a
 *      heredoc fed to a shell) are parsed again, one nesting level deeper,
 *      and their commands are appended the same way.
 *   5. Program handlers set the operation (git push, gh pr create, curl),
 *      the network flag, inline-code flags and extra redirections (sed w).
 *   6. The exec-option table is matched against the arguments.
 *
 * A command that runs others inherits their flags and the most significant
 * of their operations, so a caller that checks only the outer command
 * still gets every flag and the strongest operation.  Nesting depth is bounded by NU_SHELL_MAX_DEPTH
 * and the number of reported commands by NU_SHELL_MAX_COMMANDS; past
 * either bound the analysis is NU_CMDF_TOO_COMPLEX.
 */
#include <ctype.h>
#include <fnmatch.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "nucleus/classify.h"
#include "nucleus/shell.h"

typedef struct nu__cls {
    nu_cmd_analysis_t *out;
    size_t cap;
    int nomem;
    size_t reason_len;
    unsigned reasoned;      /* flags that already have a reason */
} nu__cls_t;

/* What a command reads on stdin, for interpreters without a script. */
typedef struct nu__stdin {
    int piped;
    const nu_shell_redir_t *redir;  /* last heredoc, here-string or < */
} nu__stdin_t;

/* A simple command as the handlers see it. */
typedef struct nu__view {
    const nu_shell_word_t *words;
    size_t n;
    const nu_shell_word_t *env;
    size_t nenv;
    const nu__stdin_t *in;
    unsigned depth;
    size_t idx;             /* index of the reported command */
    const char *base;       /* program base name */
    int table_done;         /* the handler matched the exec-option table */
} nu__view_t;

static int nu__classify(nu__cls_t *cls, const nu__view_t *parent,
                        const nu_shell_word_t *words, size_t n,
                        const nu_shell_word_t *env, size_t nenv,
                        const nu_shell_redir_t *redirs, size_t nredirs,
                        const nu__stdin_t *in, unsigned depth);
static int nu__classify_string(nu__cls_t *cls, const nu__view_t *v,
                               const char *text, int dynamic);
static int nu__h_joined_string(nu__cls_t *cls, const nu__view_t *v, size_t from);
static int nu__classify_script(nu__cls_t *cls, const nu__view_t *parent,
                               const nu_shell_script_t *script, unsigned depth);
static int nu__h_string_option(nu__cls_t *cls, const nu__view_t *v, size_t i);

/* --- the exec-option table ------------------------------------------- */

const nu_exec_option_t nu_exec_options_builtin[] = {
    { "find", "-exec" }, { "find", "-execdir" }, { "find", "-ok" },
    { "find", "-okdir" }, { "find", "-delete" }, { "find", "-fprint" },
    { "find", "-fprint0" }, { "find", "-fprintf" }, { "find", "-fls" },
    { "xargs", "*" }, { "parallel", "*" },
    { "rg", "--pre=" }, { "sort", "--compress-program=" },
    { "git", "--exec-path=" },
    { "git", "-c core.sshcommand=*" }, { "git", "-c core.fsmonitor=*" },
    { "git", "-c core.pager=*" }, { "git", "-c core.hookspath=*" },
    { "git", "-c core.editor=*" }, { "git", "-c core.askpass=*" },
    { "git", "-c core.gitproxy=*" }, { "git", "-c sequence.editor=*" },
    { "git", "-c diff.external=*" }, { "git", "-c diff.*.textconv=*" },
    { "git", "-c diff.*.command=*" }, { "git", "-c merge.*.driver=*" },
    { "git", "-c filter.*.clean=*" }, { "git", "-c filter.*.smudge=*" },
    { "git", "-c filter.*.process=*" }, { "git", "-c credential.helper=*" },
    { "git", "-c credential.*.helper=*" }, { "git", "-c gpg.program=*" },
    { "git", "-c gpg.*.program=*" }, { "git", "-c uploadpack.packobjectshook=*" },
    { "git", "-c protocol.ext.allow=*" }, { "git", "-c alias.*=!*" },
    { "git", "-c remote.*.uploadpack=*" }, { "git", "-c remote.*.receivepack=*" },
    { "git", "-c difftool.*.cmd=*" }, { "git", "-c mergetool.*.cmd=*" },
    { "git", "-c pager.*=*" }, { "git", "-c web.browser=*" },
    { "git", "-c browser.*.cmd=*" }, { "git", "-c http.proxy=*" },
    { "git difftool", "-x" }, { "git difftool", "--extcmd=" },
    { "git rebase", "-x" }, { "git rebase", "--exec=" },
    { "git bisect", "run" }, { "git submodule", "foreach" },
    { "git filter-branch", "*" }, { "git push", "--receive-pack=" },
    { "git push", "--exec=" }, { "git fetch", "--upload-pack=" },
    { "git pull", "--upload-pack=" }, { "git clone", "--upload-pack=" },
    { "git clone", "-u" }, { "git clone", "--template=" },
    { "git ls-remote", "--upload-pack=" },
    { "man", "-P" }, { "man", "--pager=" }, { "man", "-H" },
    { "man", "--html=" },
    { "tar", "--to-command=" }, { "tar", "--use-compress-program=" },
    { "tar", "-I" }, { "tar", "--checkpoint-action=" },
    { "tar", "--info-script=" }, { "tar", "--new-volume-script=" },
    { "tar", "-F" }, { "tar", "--rsh-command=" }, { "tar", "--rmt-command=" },
    { "rsync", "-e" }, { "rsync", "--rsh=" }, { "rsync", "--rsync-path=" },
    { "zip", "-TT" }, { "zip", "--unzip-command=" },
    { "vim", "-c" }, { "vim", "--cmd" }, { "vim", "-S" }, { "vim", "+*" },
    { "vi", "-c" }, { "vi", "--cmd" }, { "vi", "-S" }, { "vi", "+*" },
    { "nvim", "-c" }, { "nvim", "--cmd" }, { "nvim", "-S" }, { "nvim", "+*" },
    { "ex", "-c" }, { "ex", "+*" }, { "view", "-c" }, { "view", "+*" },
    { "emacs", "--eval=" }, { "emacs", "-l" }, { "emacs", "--load=" },
    { "emacs", "-f" }, { "emacs", "--funcall=" },
    { "less", "+*" },
    { "ssh", "-o*proxycommand*" }, { "ssh", "-o*localcommand*" },
    { "ssh", "-o*knownhostscommand*" },
    { "scp", "-S" }, { "scp", "-o*proxycommand*" },
    { "sftp", "-S" }, { "sftp", "-D" }, { "sftp", "-o*proxycommand*" },
    { "socat", "*exec:*" }, { "socat", "*system:*" },
    { "sqlite3", ".shell*" }, { "sqlite3", ".system*" },
    { "sqlite3", "-cmd" },
    { "gdb", "-ex" }, { "gdb", "--eval-command=" }, { "gdb", "-x" },
    { "gdb", "--command=" },
    { "tcpdump", "-z" },
    { "nc", "-e" }, { "nc", "-c" }, { "netcat", "-e" }, { "netcat", "-c" },
    { "ncat", "-e" }, { "ncat", "-c" }, { "ncat", "--exec=" },
    { "ncat", "--sh-exec=" }, { "ncat", "--lua-exec=" },
    { "apt-get", "-o*invoke*" }, { "apt", "-o*invoke*" },
    { "git", "--config-env=*" },
    { NULL, NULL },
};

static pthread_mutex_t nu__extra_lock = PTHREAD_MUTEX_INITIALIZER;
static nu_exec_option_t *nu__extra;
static size_t nu__nextra;

int nu_classify_add_exec_option(const char *program, const char *option)
{
    if (program == NULL || option == NULL || program[0] == '\0' ||
        option[0] == '\0')
        return NU_EINVAL;

    char *p = strdup(program);
    char *o = strdup(option);
    if (p == NULL || o == NULL) {
        free(p);
        free(o);
        return NU_ENOMEM;
    }

    pthread_mutex_lock(&nu__extra_lock);
    nu_exec_option_t *grown = realloc(nu__extra, (nu__nextra + 1) * sizeof *grown);
    if (grown == NULL) {
        pthread_mutex_unlock(&nu__extra_lock);
        free(p);
        free(o);
        return NU_ENOMEM;
    }
    nu__extra = grown;
    nu__extra[nu__nextra++] = (nu_exec_option_t){ p, o };
    pthread_mutex_unlock(&nu__extra_lock);
    return NU_OK;
}

/* --- analysis output ---------------------------------------------------- */

static int nu__rank(nu_op_t op)
{
    switch (op) {
    case NU_OP_GIT_PUSH:
    case NU_OP_CREATE_PR:
        return 3;
    case NU_OP_WEB_FETCH:
        return 2;
    case NU_OP_GIT_COMMIT:
        return 1;
    default:
        return 0;
    }
}

static nu_op_t nu__max_op(nu_op_t a, nu_op_t b)
{
    return nu__rank(b) > nu__rank(a) ? b : a;
}

static void nu__reason(nu__cls_t *cls, unsigned flag, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Append a reason for flag, once per flag, while the buffer has room. */
static void nu__reason(nu__cls_t *cls, unsigned flag, const char *fmt, ...)
{
    nu_cmd_analysis_t *a = cls->out;
    size_t size = sizeof a->reason;
    va_list ap;

    if ((cls->reasoned & flag) || cls->reason_len + 3 >= size)
        return;
    cls->reasoned |= flag;
    if (cls->reason_len > 0) {
        memcpy(a->reason + cls->reason_len, "; ", 3);
        cls->reason_len += 2;
    }
    va_start(ap, fmt);
    int n = vsnprintf(a->reason + cls->reason_len, size - cls->reason_len, fmt, ap);
    va_end(ap);
    if (n > 0)
        cls->reason_len += (size_t)n < size - cls->reason_len
                               ? (size_t)n
                               : size - cls->reason_len - 1;
}

static nu_simple_cmd_t *nu__cmd(nu__cls_t *cls, size_t idx)
{
    return &cls->out->cmds[idx];
}

static void nu__flag(nu__cls_t *cls, const nu__view_t *v, unsigned flag)
{
    nu__cmd(cls, v->idx)->flags |= flag;
}

static void nu__set_op(nu__cls_t *cls, const nu__view_t *v, nu_op_t op)
{
    nu_simple_cmd_t *c = nu__cmd(cls, v->idx);
    c->operation = nu__max_op(c->operation, op);
}

static char *nu__dup(nu__cls_t *cls, const char *s)
{
    char *d = strdup(s ? s : "");
    if (d == NULL)
        cls->nomem = 1;
    return d;
}

/* Add a redirection to a reported command. */
static int nu__add_redirect(nu__cls_t *cls, size_t idx, const char *target,
                            int write, int dynamic)
{
    nu_simple_cmd_t *c = nu__cmd(cls, idx);
    nu_redirect_t *r = realloc(c->redirects, (c->nredirects + 1) * sizeof *r);

    if (r == NULL) {
        cls->nomem = 1;
        return -1;
    }
    c->redirects = r;
    r[c->nredirects].target = nu__dup(cls, target);
    if (r[c->nredirects].target == NULL)
        return -1;
    r[c->nredirects].write = write;
    r[c->nredirects].dynamic = dynamic;
    c->nredirects++;
    return 0;
}

static int nu__is_fd_word(const char *s)
{
    if (strcmp(s, "-") == 0)
        return 1;
    for (; *s; s++) {
        if (!isdigit((unsigned char)*s))
            return 0;
    }
    return 1;
}

/* Report the file redirections of a shell command (not fd duplications,
 * heredocs or here-strings). */
static int nu__add_redirects(nu__cls_t *cls, size_t idx,
                             const nu_shell_redir_t *redirs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const nu_shell_redir_t *r = &redirs[i];
        int dynamic = (r->target.flags & (NU_SHELL_W_DYNAMIC | NU_SHELL_W_GLOB)) != 0;
        int write;

        switch (r->kind) {
        case NU_SHELL_R_IN:
            write = 0;
            break;
        case NU_SHELL_R_DUP_IN:
        case NU_SHELL_R_DUP_OUT:
            if (!dynamic && nu__is_fd_word(r->target.text))
                continue;
            write = r->kind == NU_SHELL_R_DUP_OUT;
            break;
        case NU_SHELL_R_HEREDOC:
        case NU_SHELL_R_HERESTRING:
            continue;
        default:
            write = 1;
            break;
        }
        if (nu__add_redirect(cls, idx, r->target.text, write, dynamic) != 0)
            return -1;
    }
    return 0;
}

/* Append a simple command; returns its index, or -1 (out of memory or
 * over the command limit, which sets NU_CMDF_TOO_COMPLEX). */
static long nu__append(nu__cls_t *cls, const nu_shell_word_t *words, size_t n,
                       const nu_shell_word_t *env, size_t nenv)
{
    nu_cmd_analysis_t *a = cls->out;

    if (a->ncmds >= NU_SHELL_MAX_COMMANDS) {
        a->flags |= NU_CMDF_TOO_COMPLEX;
        nu__reason(cls, NU_CMDF_TOO_COMPLEX, "more than %d commands",
                   NU_SHELL_MAX_COMMANDS);
        return -1;
    }
    if (a->ncmds == cls->cap) {
        size_t cap = cls->cap ? cls->cap * 2 : 8;
        nu_simple_cmd_t *p = realloc(a->cmds, cap * sizeof *p);
        if (p == NULL) {
            cls->nomem = 1;
            return -1;
        }
        a->cmds = p;
        cls->cap = cap;
    }

    nu_simple_cmd_t *c = &a->cmds[a->ncmds++];
    memset(c, 0, sizeof *c);
    c->operation = NU_OP_RUN_BASH;
    c->argv = calloc(n + 1, sizeof *c->argv);
    c->env = calloc(nenv + 1, sizeof *c->env);
    if (c->argv == NULL || c->env == NULL) {
        cls->nomem = 1;
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if ((c->argv[i] = nu__dup(cls, words[i].text)) == NULL)
            return -1;
        c->argc++;
    }
    for (size_t i = 0; i < nenv; i++) {
        if ((c->env[i] = nu__dup(cls, env[i].text)) == NULL)
            return -1;
        c->nenv++;
    }
    return (long)(a->ncmds - 1);
}

/* Merge what a command runs into the command that runs it. */
static void nu__inherit(nu__cls_t *cls, const nu__view_t *v, size_t child)
{
    nu_simple_cmd_t *c = nu__cmd(cls, child);

    nu__flag(cls, v, c->flags & ~NU_CMDF_BACKGROUND);
    nu__set_op(cls, v, c->operation);
}

/* --- names and words ---------------------------------------------------- */

static const char *nu__basename(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

static int nu__in(const char *s, const char *const *list)
{
    for (size_t i = 0; list[i] != NULL; i++) {
        if (strcmp(s, list[i]) == 0)
            return 1;
    }
    return 0;
}

static const char *nu__arg(const nu__view_t *v, size_t i)
{
    return i < v->n ? v->words[i].text : NULL;
}

static int nu__literal(const nu_shell_word_t *w)
{
    return (w->flags & (NU_SHELL_W_DYNAMIC | NU_SHELL_W_GLOB)) == 0;
}

/* "python3.11" -> "python": the name without a trailing version. */
static void nu__strip_version(const char *base, char *out, size_t size)
{
    size_t n = strlen(base);

    while (n > 1 && (isdigit((unsigned char)base[n - 1]) || base[n - 1] == '.'))
        n--;
    if (n >= size)
        n = size - 1;
    memcpy(out, base, n);
    out[n] = '\0';
}

/* --- dangerous environment names ---------------------------------------- */

static const char *const nu__danger_env[] = {
    "PATH", "BASH_ENV", "ENV", "SHELLOPTS", "BASHOPTS", "PS4",
    "PROMPT_COMMAND", "IFS", "HOME", "ZDOTDIR", "XDG_CONFIG_HOME", "PAGER",
    "EDITOR", "VISUAL", "MANPAGER", "BROWSER", "LESSOPEN", "LESSCLOSE",
    "GIT_SSH", "GIT_SSH_COMMAND", "GIT_EXEC_PATH", "GIT_ASKPASS",
    "SSH_ASKPASS", "SUDO_ASKPASS", "GIT_EDITOR", "GIT_SEQUENCE_EDITOR",
    "GIT_PAGER", "GIT_PROXY_COMMAND", "GIT_EXTERNAL_DIFF", "GIT_TEMPLATE_DIR",
    "GIT_DIR", "GIT_WORK_TREE", "PYTHONPATH", "PYTHONSTARTUP", "PYTHONHOME",
    "PERL5LIB", "PERL5OPT", "PERLLIB", "PERL5DB", "RUBYOPT", "RUBYLIB",
    "NODE_OPTIONS", "NODE_PATH", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS",
    "JDK_JAVA_OPTIONS", "CLASSPATH", "GCONV_PATH", "HOSTALIASES", "VIMINIT",
    "EXINIT", "MYVIMRC", "PHPRC", "PHP_INI_SCAN_DIR", "RUSTC_WRAPPER",
    NULL,
};

static const char *const nu__danger_env_prefix[] = {
    "LD_", "DYLD_", "GIT_CONFIG", "BASH_FUNC_", "LUA_PATH", "LUA_CPATH",
    "LUA_INIT", NULL,
};

/* Is the NAME of "NAME=value" (or "NAME+=value") dangerous? */
static int nu__env_dangerous(const char *assign)
{
    char name[128];
    size_t n = strcspn(assign, "=+[");

    if (n == 0 || n >= sizeof name)
        return n != 0;
    memcpy(name, assign, n);
    name[n] = '\0';
    if (nu__in(name, nu__danger_env))
        return 1;
    for (size_t i = 0; nu__danger_env_prefix[i] != NULL; i++) {
        const char *p = nu__danger_env_prefix[i];
        if (strncmp(name, p, strlen(p)) == 0)
            return 1;
    }
    return 0;
}

static void nu__check_assign(nu__cls_t *cls, const nu__view_t *v,
                             const char *assign)
{
    if (!nu__env_dangerous(assign))
        return;
    nu__flag(cls, v, NU_CMDF_DANGEROUS_ENV);
    nu__reason(cls, NU_CMDF_DANGEROUS_ENV, "'%.*s' is set",
               (int)strcspn(assign, "=+["), assign);
}

/* Is the word NAME=value with a valid name? */
static int nu__is_assign_word(const char *s)
{
    if (!(isalpha((unsigned char)s[0]) || s[0] == '_'))
        return 0;
    while (isalnum((unsigned char)*s) || *s == '_')
        s++;
    return *s == '=';
}

/* --- shared steps -------------------------------------------------------- */

/* Classify words[from..] as the command a wrapper runs. */
static int nu__wrapped(nu__cls_t *cls, const nu__view_t *v, size_t from,
                       const nu_shell_word_t *env, size_t nenv)
{
    if (from >= v->n)
        return 0;
    return nu__classify(cls, v, v->words + from, v->n - from, env, nenv, NULL,
                        0, v->in, v->depth + 1);
}

/* Parse text as a shell string run by this command. */
static int nu__classify_string(nu__cls_t *cls, const nu__view_t *v,
                               const char *text, int dynamic)
{
    nu_shell_script_t script;

    if (dynamic) {
        nu__flag(cls, v, NU_CMDF_DYNAMIC_PROGRAM);
        nu__reason(cls, NU_CMDF_DYNAMIC_PROGRAM,
                   "'%.40s' runs a shell string that is not a literal", v->base);
    }
    if (nu_shell_parse(text, strlen(text), v->depth + 1, &script) != NU_OK) {
        cls->nomem = 1;
        return -1;
    }
    if (script.flags != 0) {
        nu__flag(cls, v, script.flags);
        nu__reason(cls, script.flags, "in the string run by '%.40s': %s",
                   v->base, script.error);
    }

    int rc = nu__classify_script(cls, v, &script, v->depth + 1);
    nu_shell_script_free(&script);
    return rc;
}

/* The code an interpreter reads on stdin: a heredoc or here-string is
 * inline code; a pipe is code from another program. */
static int nu__stdin_code(nu__cls_t *cls, const nu__view_t *v, int is_shell)
{
    const nu_shell_redir_t *r = v->in ? v->in->redir : NULL;

    if (r != NULL && (r->kind == NU_SHELL_R_HEREDOC ||
                      r->kind == NU_SHELL_R_HERESTRING)) {
        unsigned f = NU_CMDF_INLINE_CODE | (is_shell ? NU_CMDF_SHELL_EVAL : 0);
        nu__flag(cls, v, f);
        nu__reason(cls, f, "'%.40s' runs code from a heredoc", v->base);
        if (is_shell && r->body != NULL)
            return nu__classify_string(cls, v, r->body, !r->body_literal);
        return 0;
    }
    if (r == NULL && v->in != NULL && v->in->piped) {
        nu__flag(cls, v, NU_CMDF_SHELL_EVAL);
        nu__reason(cls, NU_CMDF_SHELL_EVAL, "a pipe feeds code into '%.40s'",
                   v->base);
    }
    return 0;
}

static void nu__inline(nu__cls_t *cls, const nu__view_t *v, const char *opt)
{
    nu__flag(cls, v, NU_CMDF_INLINE_CODE);
    nu__reason(cls, NU_CMDF_INLINE_CODE, "'%.40s %.20s' runs inline code",
               v->base, opt);
}

static void nu__network(nu__cls_t *cls, const nu__view_t *v)
{
    nu__flag(cls, v, NU_CMDF_NETWORK);
    nu__reason(cls, NU_CMDF_NETWORK, "'%.40s' reaches the network", v->base);
}

/* --- wrappers ------------------------------------------------------------ */

/* A program that runs the command given in its remaining arguments. */
typedef struct nu__wrapper {
    const char *name;
    const char *short_arg;          /* short options that take a value */
    const char *const *long_arg;    /* long options that take a value */
    int positional;                 /* operands before the command */
    int assigns;                    /* NAME=value operands set the environment */
} nu__wrapper_t;

static const char *const nu__env_long[] = { "--unset", "--chdir",
                                            "--split-string", NULL };
static const char *const nu__sudo_long[] = { "--user", "--group", "--close-from",
                                             "--chdir", "--host", "--prompt",
                                             "--role", "--type", "--other-user",
                                             "--command-timeout", NULL };
static const char *const nu__nice_long[] = { "--adjustment", NULL };
static const char *const nu__timeout_long[] = { "--signal", "--kill-after", NULL };
static const char *const nu__time_long[] = { "--format", "--output", NULL };
static const char *const nu__stdbuf_long[] = { "--input", "--output", "--error",
                                               NULL };
static const char *const nu__xargs_long[] = { "--arg-file", "--delimiter", "--eof",
                                              "--replace", "--max-lines",
                                              "--max-args", "--max-procs",
                                              "--max-chars",
                                              "--process-slot-var", NULL };
static const char *const nu__chroot_long[] = { "--userspec", "--groups", NULL };
static const char *const nu__none[] = { NULL };

static const nu__wrapper_t nu__wrappers[] = {
    { "env", "uCS", nu__env_long, 0, 1 },
    { "sudo", "ugCDhprtTU", nu__sudo_long, 0, 1 },
    { "doas", "uC", nu__none, 0, 0 },
    { "nice", "n", nu__nice_long, 0, 0 },
    { "nohup", "", nu__none, 0, 0 },
    { "timeout", "sk", nu__timeout_long, 1, 0 },
    { "time", "fo", nu__time_long, 0, 0 },
    { "stdbuf", "ioe", nu__stdbuf_long, 0, 0 },
    { "command", "", nu__none, 0, 0 },
    { "builtin", "", nu__none, 0, 0 },
    { "exec", "a", nu__none, 0, 0 },
    { "ionice", "cnp", nu__none, 0, 0 },
    { "setsid", "", nu__none, 0, 0 },
    { "xargs", "adEILnPs", nu__xargs_long, 0, 0 },
    { "chroot", "", nu__chroot_long, 1, 0 },
    { "taskset", "", nu__none, 1, 0 },
    { "chrt", "", nu__none, 1, 0 },
    { "flock", "wE", nu__none, 1, 0 },
    { "unshare", "SGRw", nu__none, 0, 0 },
    { "nsenter", "tSG", nu__none, 0, 0 },
    { "strace", "eoOpPsSuEabIX", nu__none, 0, 0 },
    { "ltrace", "eoapsuSnxlA", nu__none, 0, 0 },
    { "sshpass", "pfdP", nu__none, 0, 0 },
    { "busybox", "", nu__none, 0, 0 },
    { "proxychains", "f", nu__none, 0, 0 },
    { "proxychains4", "f", nu__none, 0, 0 },
    { "torsocks", "uapP", nu__none, 0, 0 },
    { "fakeroot", "lsi", nu__none, 0, 0 },
    { "catchsegv", "", nu__none, 0, 0 },
    { "valgrind", "", nu__none, 0, 0 },
    { "watch", "nd", nu__none, 0, 0 },
    { "coproc", "", nu__none, 0, 0 },
    { NULL, NULL, NULL, 0, 0 },
};

static const nu__wrapper_t *nu__find_wrapper(const char *base)
{
    for (size_t i = 0; nu__wrappers[i].name != NULL; i++) {
        if (strcmp(base, nu__wrappers[i].name) == 0)
            return &nu__wrappers[i];
    }
    return NULL;
}

/* State collected while a wrapper's options are skipped. */
typedef struct nu__wrap_scan {
    size_t next;                 /* index of the wrapped program */
    const char *split;           /* env -S string */
    int split_dynamic;           /* the env -S string contains expansions */
    int no_command;              /* command -v, ionice -p: nothing is run */
    int exec_direct;             /* watch -x */
} nu__wrap_scan_t;

/* Record the env -S string: attached (text) or the word at index i. */
static void nu__wrap_set_split(const nu__view_t *v, size_t i, const char *text,
                               nu__wrap_scan_t *s)
{
    if (i >= v->n)
        return;
    s->split = text != NULL ? text : v->words[i].text;
    s->split_dynamic = !nu__literal(&v->words[i]);
}

static void nu__wrap_option(const nu__wrapper_t *w, const nu__view_t *v,
                            size_t *i, nu__wrap_scan_t *s)
{
    const char *a = v->words[*i].text;

    if (a[1] == '-') {
        const char *eq = strchr(a, '=');
        size_t n = eq ? (size_t)(eq - a) : strlen(a);
        int takes = 0;
        for (size_t j = 0; w->long_arg[j] != NULL; j++) {
            if (strlen(w->long_arg[j]) == n && strncmp(a, w->long_arg[j], n) == 0)
                takes = 1;
        }
        if (takes && strncmp(a, "--split-string", n) == 0)
            nu__wrap_set_split(v, eq ? *i : *i + 1, eq ? eq + 1 : NULL, s);
        *i += (takes && eq == NULL) ? 2 : 1;
        return;
    }

    for (size_t j = 1; a[j] != '\0'; j++) {
        if ((a[j] == 'v' || a[j] == 'V') && strcmp(w->name, "command") == 0)
            s->no_command = 1;
        if (a[j] == 'x' && strcmp(w->name, "watch") == 0)
            s->exec_direct = 1;
        if (strchr(w->short_arg, a[j]) == NULL)
            continue;
        if (a[j] == 'p' && strcmp(w->name, "ionice") == 0)
            s->no_command = 1;
        if (a[j] == 'S' && strcmp(w->name, "env") == 0)
            nu__wrap_set_split(v, a[j + 1] ? *i : *i + 1,
                               a[j + 1] ? a + j + 1 : NULL, s);
        if (a[j + 1] == '\0')
            (*i)++;
        break;
    }
    (*i)++;
}

/* Collect env(1)-style NAME=value operands. */
static int nu__wrap_assigns(nu__cls_t *cls, const nu__view_t *v, size_t *i,
                            nu_shell_word_t *env, size_t *nenv)
{
    while (*i < v->n && nu__is_assign_word(v->words[*i].text)) {
        nu__check_assign(cls, v, v->words[*i].text);
        env[(*nenv)++] = v->words[*i];
        (*i)++;
    }
    return 0;
}

/* env -S "string": the string is split into words like a shell would. */
static int nu__wrap_split(nu__cls_t *cls, const nu__view_t *v,
                          const nu__wrap_scan_t *s)
{
    nu__flag(cls, v, NU_CMDF_SHELL_EVAL);
    nu__reason(cls, NU_CMDF_SHELL_EVAL, "'env -S' splits a string into a command");
    return nu__classify_string(cls, v, s->split, s->split_dynamic);
}

static int nu__h_wrapper(nu__cls_t *cls, const nu__view_t *v)
{
    const nu__wrapper_t *w = nu__find_wrapper(v->base);
    nu__wrap_scan_t s = { 0 };
    size_t i = 1;
    int rc;

    while (i < v->n) {
        const char *a = v->words[i].text;
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if (a[0] != '-' || a[1] == '\0')
            break;
        nu__wrap_option(w, v, &i, &s);
    }

    nu_shell_word_t *env = malloc((v->nenv + v->n + 1) * sizeof *env);
    size_t nenv = v->nenv;
    if (env == NULL) {
        cls->nomem = 1;
        return -1;
    }
    if (v->nenv > 0)
        memcpy(env, v->env, v->nenv * sizeof *env);
    if (w->assigns)
        nu__wrap_assigns(cls, v, &i, env, &nenv);
    i += (size_t)w->positional;

    if (strcmp(w->name, "xargs") == 0) {
        nu__flag(cls, v, NU_CMDF_EXEC_OPTION);
        nu__reason(cls, NU_CMDF_EXEC_OPTION, "'xargs' runs a command with input as arguments");
    }
    if (strcmp(w->name, "exec") == 0 && i < v->n && !nu__literal(&v->words[i])) {
        nu__flag(cls, v, NU_CMDF_SHELL_EVAL);
        nu__reason(cls, NU_CMDF_SHELL_EVAL, "'exec' runs a program named by an expansion");
    }

    if (s.split != NULL)
        rc = nu__wrap_split(cls, v, &s);
    else if (i < v->n && (strcmp(v->words[i].text, "-c") == 0 ||
                          strcmp(v->words[i].text, "--command") == 0))
        rc = nu__h_string_option(cls, v, i + 1);
    else if (s.no_command)
        rc = 0;
    else if (strcmp(w->name, "watch") == 0 && !s.exec_direct)
        rc = nu__h_joined_string(cls, v, i);
    else
        rc = nu__wrapped(cls, v, i, env, nenv);
    free(env);
    return rc;
}

/* --- shell strings ------------------------------------------------------- */

/* Run words[i] as a shell string (sh -c, su -c, flock -c). */
static int nu__h_string_option(nu__cls_t *cls, const nu__view_t *v, size_t i)
{
    unsigned f = NU_CMDF_SHELL_EVAL | NU_CMDF_INLINE_CODE;

    nu__flag(cls, v, f);
    nu__reason(cls, f, "'%.40s -c' runs a shell string", v->base);
    if (i >= v->n)
        return 0;
    return nu__classify_string(cls, v, v->words[i].text, !nu__literal(&v->words[i]));
}

/* Run words[from..] joined by spaces as a shell string (eval, watch). */
static int nu__h_joined_string(nu__cls_t *cls, const nu__view_t *v, size_t from)
{
    size_t len = 1;
    int dynamic = 0;

    for (size_t i = from; i < v->n; i++) {
        len += strlen(v->words[i].text) + 1;
        dynamic |= !nu__literal(&v->words[i]);
    }

    char *joined = malloc(len);
    if (joined == NULL) {
        cls->nomem = 1;
        return -1;
    }
    joined[0] = '\0';
    for (size_t i = from; i < v->n; i++) {
        if (i > from)
            strcat(joined, " ");
        strcat(joined, v->words[i].text);
    }

    int rc = nu__classify_string(cls, v, joined, dynamic);
    free(joined);
    return rc;
}

static int nu__h_eval(nu__cls_t *cls, const nu__view_t *v)
{
    nu__flag(cls, v, NU_CMDF_SHELL_EVAL);
    nu__reason(cls, NU_CMDF_SHELL_EVAL, "'eval' runs its arguments as shell code");
    return nu__h_joined_string(cls, v, 1);
}

static int nu__h_source(nu__cls_t *cls, const nu__view_t *v)
{
    nu__flag(cls, v, NU_CMDF_SHELL_EVAL);
    nu__reason(cls, NU_CMDF_SHELL_EVAL, "'%.40s' runs the shell code in a file",
               v->base);
    return 0;
}

/* trap 'commands' SIGNAL...: the commands run later in this shell. */
static int nu__h_trap(nu__cls_t *cls, const nu__view_t *v)
{
    size_t i = 1;

    if (i < v->n && strcmp(v->words[i].text, "--") == 0)
        i++;
    if (i + 1 >= v->n || v->words[i].text[0] == '-')
        return 0;
    nu__flag(cls, v, NU_CMDF_SHELL_EVAL);
    nu__reason(cls, NU_CMDF_SHELL_EVAL, "'trap' stores shell code to run later");
    return nu__classify_string(cls, v, v->words[i].text, !nu__literal(&v->words[i]));
}

/* alias NAME=VALUE: bash expands aliases in scripts only with
 * expand_aliases, but a definition is still code under another name. */
static int nu__h_alias(nu__cls_t *cls, const nu__view_t *v)
{
    for (size_t i = 1; i < v->n; i++) {
        if (strchr(v->words[i].text, '=') == NULL)
            continue;
        nu__flag(cls, v, NU_CMDF_SHELL_EVAL);
        nu__reason(cls, NU_CMDF_SHELL_EVAL, "'alias' defines a command name");
        return nu__classify_string(cls, v, strchr(v->words[i].text, '=') + 1,
                                   !nu__literal(&v->words[i]));
    }
    return 0;
}

/* export, declare, local...: NAME=value arguments set variables. */
static int nu__h_declare(nu__cls_t *cls, const nu__view_t *v)
{
    for (size_t i = 1; i < v->n; i++) {
        if (v->words[i].text[0] != '-' && strchr(v->words[i].text, '=') != NULL)
            nu__check_assign(cls, v, v->words[i].text);
    }
    return 0;
}

/* su, runuser and script run "-c string" through a shell; -c may end a
 * cluster of flags ("script -qc"). */
static int nu__h_su(nu__cls_t *cls, const nu__view_t *v)
{
    for (size_t i = 1; i < v->n; i++) {
        const char *a = v->words[i].text;
        size_t n = strlen(a);
        int cluster_c = n >= 2 && a[0] == '-' && a[1] != '-' && a[n - 1] == 'c';
        if (cluster_c || strcmp(a, "--command") == 0 ||
            strcmp(a, "--session-command") == 0)
            return nu__h_string_option(cls, v, i + 1);
        if (strncmp(a, "--command=", 10) == 0 ||
            strncmp(a, "--session-command=", 18) == 0) {
            nu__flag(cls, v, NU_CMDF_SHELL_EVAL | NU_CMDF_INLINE_CODE);
            return nu__classify_string(cls, v, strchr(a, '=') + 1,
                                       !nu__literal(&v->words[i]));
        }
    }
    return 0;
}

/* sh, bash, zsh...: -c string, a script file, or code on stdin. */
static int nu__h_shell(nu__cls_t *cls, const nu__view_t *v)
{
    int has_c = 0;
    int reads_stdin = 0;
    size_t i = 1;

    while (i < v->n) {
        const char *a = v->words[i].text;
        if (strcmp(a, "--") == 0 || strcmp(a, "-") == 0) {
            i++;
            break;
        }
        if ((a[0] != '-' && a[0] != '+') || a[1] == '\0')
            break;
        if (a[1] == '-') {
            int takes = strcmp(a, "--rcfile") == 0 || strcmp(a, "--init-file") == 0;
            i += takes ? 2 : 1;
            continue;
        }
        if (strcmp(a + 1, "o") == 0 || strcmp(a + 1, "O") == 0) {
            i += 2;
            continue;
        }
        if (a[0] == '-' && strchr(a, 'c') != NULL)
            has_c = 1;
        if (strchr(a, 's') != NULL)
            reads_stdin = 1;
        i++;
    }

    if (has_c)
        return nu__h_string_option(cls, v, i);
    if (i >= v->n || reads_stdin)
        return nu__stdin_code(cls, v, 1);
    return 0;
}

/* --- interpreters -------------------------------------------------------- */

typedef enum {
    NU__I_PYTHON, NU__I_NODE, NU__I_PERL, NU__I_RUBY, NU__I_PHP, NU__I_LUA,
    NU__I_EVAL_OPT, NU__I_PWSH, NU__I_DENO
} nu__interp_kind_t;

typedef struct nu__interp {
    const char *name;           /* base name without a version suffix */
    nu__interp_kind_t kind;
} nu__interp_t;

static const nu__interp_t nu__interps[] = {
    { "python", NU__I_PYTHON }, { "pypy", NU__I_PYTHON },
    { "node", NU__I_NODE }, { "nodejs", NU__I_NODE }, { "bun", NU__I_NODE },
    { "deno", NU__I_DENO },
    { "perl", NU__I_PERL }, { "ruby", NU__I_RUBY }, { "php", NU__I_PHP },
    { "lua", NU__I_LUA }, { "luajit", NU__I_LUA },
    { "Rscript", NU__I_EVAL_OPT }, { "R", NU__I_EVAL_OPT },
    { "julia", NU__I_EVAL_OPT }, { "osascript", NU__I_EVAL_OPT },
    { "groovy", NU__I_EVAL_OPT }, { "tclsh", NU__I_EVAL_OPT },
    { "pwsh", NU__I_PWSH }, { "powershell", NU__I_PWSH },
    { NULL, 0 },
};

/* Result of scanning an interpreter's options. */
typedef struct nu__code {
    const char *inline_opt;     /* the option that gave inline code */
    int script;                 /* a script file or module is named */
} nu__code_t;

/* Option clusters of perl and ruby: letters in value_letters take the rest
 * of the cluster (or the next word when in next_letters) as a value. */
static void nu__scan_cluster(const nu__view_t *v, size_t *i, const char *code,
                             const char *value_letters, const char *next_letters,
                             nu__code_t *c)
{
    const char *a = v->words[*i].text;

    for (size_t j = 1; a[j] != '\0'; j++) {
        if (strchr(code, a[j]) != NULL) {
            c->inline_opt = a;
            (*i)++;
            return;
        }
        if (strchr(value_letters, a[j]) == NULL)
            continue;
        if (a[j + 1] == '\0' && strchr(next_letters, a[j]) != NULL)
            (*i)++;
        if (a[j] == 'l' || a[j] == '0') {
            while (isxdigit((unsigned char)a[j + 1]) || a[j + 1] == 'x')
                j++;
            continue;
        }
        break;
    }
    (*i)++;
}

static void nu__scan_python(const nu__view_t *v, size_t *i, nu__code_t *c)
{
    const char *a = v->words[*i].text;

    if (a[1] == '-') {
        *i += strcmp(a, "--check-hash-based-pycs") == 0 ? 2 : 1;
        return;
    }
    for (size_t j = 1; a[j] != '\0'; j++) {
        if (a[j] == 'c') {
            c->inline_opt = "-c";
            break;
        }
        if (a[j] == 'm') {
            c->script = 1;
            break;
        }
        if (a[j] == 'W' || a[j] == 'X') {
            if (a[j + 1] == '\0')
                (*i)++;
            break;
        }
    }
    (*i)++;
}

static void nu__scan_node(const nu__view_t *v, size_t *i, nu__code_t *c)
{
    static const char *const code[] = { "-e", "--eval", "-p", "--print", "-pe",
                                        "-ep", NULL };
    static const char *const takes[] = { "-r", "--require", "--import",
                                         "--loader", "--experimental-loader",
                                         "-C", "--conditions", "--input-type",
                                         NULL };
    const char *a = v->words[*i].text;

    if (nu__in(a, code) || strncmp(a, "--eval=", 7) == 0 ||
        strncmp(a, "--print=", 8) == 0)
        c->inline_opt = a;
    *i += nu__in(a, takes) ? 2 : 1;
}

static void nu__scan_php(const nu__view_t *v, size_t *i, nu__code_t *c)
{
    static const char *const code[] = { "-r", "--run", "-B", "--process-begin",
                                        "-R", "--process-code", "-E",
                                        "--process-end", NULL };
    static const char *const takes[] = { "-c", "-d", "-z", "-t", "-S", NULL };
    const char *a = v->words[*i].text;

    if (nu__in(a, code) || (strncmp(a, "-r", 2) == 0 && a[2] != '\0'))
        c->inline_opt = a;
    else if (strcmp(a, "-f") == 0)
        c->script = 1;
    *i += nu__in(a, takes) ? 2 : 1;
}

static void nu__scan_eval_opt(const nu__view_t *v, size_t *i, nu__code_t *c)
{
    static const char *const code[] = { "-e", "-E", "--eval", "--print", "--expr",
                                        NULL };
    const char *a = v->words[*i].text;

    if (nu__in(a, code) || strncmp(a, "--eval=", 7) == 0 ||
        strncmp(a, "-e", 2) == 0)
        c->inline_opt = a;
    (*i)++;
}

static void nu__scan_pwsh(const nu__view_t *v, size_t *i, nu__code_t *c)
{
    const char *a = v->words[*i].text;

    if (strncasecmp(a, "-c", 2) == 0 || strncasecmp(a, "-e", 2) == 0 ||
        strncasecmp(a, "/c", 2) == 0)
        c->inline_opt = a;
    else if (strncasecmp(a, "-f", 2) == 0)
        c->script = 1;
    (*i)++;
}

/* Scan the options of an interpreter up to its first operand. */
static nu__code_t nu__scan_interp(const nu__view_t *v, nu__interp_kind_t kind,
                                  size_t *operand)
{
    nu__code_t c = { 0 };
    size_t i = 1;

    while (i < v->n && c.inline_opt == NULL && !c.script) {
        const char *a = v->words[i].text;
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if (a[0] != '-' || a[1] == '\0')
            break;
        switch (kind) {
        case NU__I_PYTHON: nu__scan_python(v, &i, &c); break;
        case NU__I_NODE: nu__scan_node(v, &i, &c); break;
        case NU__I_PERL: nu__scan_cluster(v, &i, "eE", "iIFMmdDxCl0", "I", &c); break;
        case NU__I_RUBY: nu__scan_cluster(v, &i, "e", "IrCEFKxi0TW", "IrCE", &c); break;
        case NU__I_PHP: nu__scan_php(v, &i, &c); break;
        case NU__I_LUA: nu__scan_cluster(v, &i, "e", "l", "l", &c); break;
        case NU__I_PWSH: nu__scan_pwsh(v, &i, &c); break;
        default: nu__scan_eval_opt(v, &i, &c); break;
        }
    }
    *operand = i;
    return c;
}

static const nu__interp_t *nu__find_interp(const char *base)
{
    char name[64];

    nu__strip_version(base, name, sizeof name);
    for (size_t i = 0; nu__interps[i].name != NULL; i++) {
        if (strcmp(name, nu__interps[i].name) == 0 ||
            strcmp(base, nu__interps[i].name) == 0)
            return &nu__interps[i];
    }
    return NULL;
}

static int nu__h_interp(nu__cls_t *cls, const nu__view_t *v)
{
    const nu__interp_t *it = nu__find_interp(v->base);
    size_t operand;
    nu__code_t c = nu__scan_interp(v, it->kind, &operand);
    const char *first = nu__arg(v, operand);

    if (c.inline_opt != NULL) {
        nu__inline(cls, v, c.inline_opt);
        return 0;
    }
    if ((it->kind == NU__I_DENO || strcmp(v->base, "bun") == 0) && first &&
        strcmp(first, "eval") == 0) {
        nu__inline(cls, v, "eval");
        return 0;
    }
    if (it->kind == NU__I_DENO && first && operand + 1 < v->n) {
        for (size_t i = operand + 1; i < v->n; i++) {
            if (strncmp(v->words[i].text, "http://", 7) == 0 ||
                strncmp(v->words[i].text, "https://", 8) == 0)
                nu__network(cls, v);
        }
    }
    if (c.script || (first != NULL && strcmp(first, "-") != 0))
        return 0;
    return nu__stdin_code(cls, v, 0);
}

/* --- the exec-option table, matched -------------------------------------- */

/* Does one table option match an argument?  pattern is nonzero when the
 * option contains a wildcard, computed once per entry by the caller. */
static int nu__opt_match(const char *opt, int pattern, const char *arg)
{
    size_t n;

    if (pattern) {
        /* A different first character rules the pattern out cheaply. */
        int wild = opt[0] == '*' || opt[0] == '?' || opt[0] == '[';
        if (!wild && tolower((unsigned char)opt[0]) != tolower((unsigned char)arg[0]))
            return 0;
        return fnmatch(opt, arg, FNM_CASEFOLD) == 0;
    }
    if (strcmp(arg, opt) == 0)
        return 1;
    n = strlen(opt);
    if (n > 1 && opt[n - 1] == '=')
        return strncmp(arg, opt, n) == 0 ||
               (strncmp(arg, opt, n - 1) == 0 && arg[n - 1] == '\0');
    if (n == 2 && opt[0] == '-' && opt[1] != '-' && arg[0] == '-' &&
        arg[1] != '-') {
        /* A short option inside a cluster: "-avze" holds "-e". */
        for (const char *p = arg + 1; isalnum((unsigned char)*p); p++) {
            if (*p == opt[1])
                return 1;
        }
    }
    return 0;
}

/* Does the table entry's program ("tar" or "git rebase") apply? */
static int nu__prog_match(const char *prog, const char *base, const char *sub)
{
    const char *space;

    if (prog[0] != base[0])
        return 0;
    space = strchr(prog, ' ');
    if (space == NULL)
        return strcmp(prog, base) == 0;
    return (size_t)(space - prog) == strlen(base) &&
           strncmp(prog, base, strlen(base)) == 0 && sub != NULL &&
           strcmp(space + 1, sub) == 0;
}

/* Match a pattern against a short option and its value written as one
 * word.  Allocation failure counts as a match, so nothing passes unchecked. */
static int nu__joined_match(const char *pattern, const char *opt,
                            const char *value)
{
    size_t n = strlen(value);
    char *joined = malloc(n + 3);
    int hit;

    if (joined == NULL)
        return 1;
    memcpy(joined, opt, 2);
    memcpy(joined + 2, value, n + 1);
    hit = nu__opt_match(pattern, 1, joined);
    free(joined);
    return hit;
}

static int nu__entry_hits(const nu_exec_option_t *e, const char *base,
                          const char *sub, const nu_shell_word_t *args,
                          size_t nargs, char *const *extra, size_t nextra)
{
    int pattern;

    if (!nu__prog_match(e->program, base, sub))
        return 0;
    if (strcmp(e->option, "*") == 0)
        return 1;

    pattern = strpbrk(e->option, "*?[") != NULL;
    for (size_t i = 0; i < nargs; i++) {
        const char *arg = args[i].text;
        if (nu__opt_match(e->option, pattern, arg))
            return 1;

        /* "-o ProxyCommand=x" is also tried as "-oProxyCommand=x". */
        if (pattern && i + 1 < nargs && arg[0] == '-' && arg[1] != '\0' &&
            arg[2] == '\0' && nu__joined_match(e->option, arg, args[i + 1].text))
            return 1;
    }
    for (size_t i = 0; i < nextra; i++) {
        if (nu__opt_match(e->option, pattern, extra[i]))
            return 1;
    }
    return 0;
}

/* Match args (and extra synthetic arguments such as git's "-c key=value")
 * against the built-in and the added table entries. */
static void nu__match_table(nu__cls_t *cls, const nu__view_t *v, const char *sub,
                            const nu_shell_word_t *args, size_t nargs,
                            char *const *extra, size_t nextra)
{
    const nu_exec_option_t *hit = NULL;

    for (size_t i = 0; nu_exec_options_builtin[i].program != NULL && !hit; i++) {
        if (nu__entry_hits(&nu_exec_options_builtin[i], v->base, sub, args, nargs,
                           extra, nextra))
            hit = &nu_exec_options_builtin[i];
    }

    char prog[64] = "", opt[64] = "";
    if (hit != NULL) {
        snprintf(prog, sizeof prog, "%s", hit->program);
        snprintf(opt, sizeof opt, "%s", hit->option);
    } else {
        pthread_mutex_lock(&nu__extra_lock);
        for (size_t i = 0; i < nu__nextra; i++) {
            if (nu__entry_hits(&nu__extra[i], v->base, sub, args, nargs, extra,
                               nextra)) {
                snprintf(prog, sizeof prog, "%s", nu__extra[i].program);
                snprintf(opt, sizeof opt, "%s", nu__extra[i].option);
                break;
            }
        }
        pthread_mutex_unlock(&nu__extra_lock);
    }
    if (prog[0] == '\0')
        return;
    nu__flag(cls, v, NU_CMDF_EXEC_OPTION);
    nu__reason(cls, NU_CMDF_EXEC_OPTION, "'%s %s' can run other programs", prog,
               opt);
}

/* The first operand that does not start with '-'. */
static const char *nu__first_operand(const nu__view_t *v)
{
    for (size_t i = 1; i < v->n; i++) {
        if (v->words[i].text[0] != '-')
            return v->words[i].text;
    }
    return NULL;
}

/* --- git and code forges ------------------------------------------------- */

/* Synthetic "-c key=value" strings for the table. */
typedef struct nu__strs {
    char **items;
    size_t n;
} nu__strs_t;

static void nu__strs_add(nu__cls_t *cls, nu__strs_t *s, const char *a,
                         const char *b, const char *c)
{
    size_t len = strlen(a) + strlen(b) + strlen(c) + 1;
    char **items = realloc(s->items, (s->n + 1) * sizeof *items);
    char *p;

    if (items == NULL) {
        cls->nomem = 1;
        return;
    }
    s->items = items;
    p = malloc(len);
    if (p == NULL) {
        cls->nomem = 1;
        return;
    }
    snprintf(p, len, "%s%s%s", a, b, c);
    s->items[s->n++] = p;
}

static void nu__strs_free(nu__strs_t *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->items[i]);
    free(s->items);
    s->items = NULL;
    s->n = 0;
}

/* Skip git's global options; records -c and --config-env values. */
static size_t nu__git_globals(nu__cls_t *cls, const nu__view_t *v, nu__strs_t *cfg)
{
    static const char *const takes[] = { "-C", "--git-dir", "--work-tree",
                                         "--namespace", "--super-prefix",
                                         "--list-cmds", NULL };
    size_t i = 1;

    while (i < v->n && v->words[i].text[0] == '-') {
        const char *a = v->words[i].text;
        const char *next = nu__arg(v, i + 1);
        if (strcmp(a, "-c") == 0 && next != NULL) {
            nu__strs_add(cls, cfg, "-c ", next, "");
            i += 2;
        } else if (strcmp(a, "--config-env") == 0 && next != NULL) {
            nu__strs_add(cls, cfg, "-c ", next, " (from the environment)");
            i += 2;
        } else if (strncmp(a, "--config-env=", 13) == 0) {
            nu__strs_add(cls, cfg, "-c ", a + 13, " (from the environment)");
            i++;
        } else {
            i += nu__in(a, takes) && next != NULL ? 2 : 1;
        }
    }
    return i;
}

/* git -c alias.NAME=VALUE: the subcommand an alias stands for. */
static void nu__git_alias(const nu__strs_t *cfg, char *sub, size_t size)
{
    for (size_t i = 0; i < cfg->n; i++) {
        const char *kv = cfg->items[i] + 3;
        const char *eq = strchr(kv, '=');
        if (strncasecmp(kv, "alias.", 6) != 0 || eq == NULL)
            continue;
        if ((size_t)(eq - kv - 6) != strlen(sub) ||
            strncasecmp(kv + 6, sub, strlen(sub)) != 0 || eq[1] == '!')
            continue;
        size_t n = strcspn(eq + 1, " \t");
        if (n >= size)
            n = size - 1;
        memcpy(sub, eq + 1, n);
        sub[n] = '\0';
        return;
    }
}

/* git config KEY VALUE sets the same keys as git -c KEY=VALUE. */
static void nu__git_config(nu__cls_t *cls, const nu__view_t *v, size_t i,
                           nu__strs_t *cfg)
{
    static const char *const takes[] = { "-f", "--file", "--blob", "--type",
                                         "--default", "--comment", NULL };
    const char *operands[2] = { NULL, NULL };
    size_t n = 0;

    for (; i < v->n && n < 2; i++) {
        const char *a = v->words[i].text;
        if (a[0] == '-') {
            i += nu__in(a, takes) ? 1 : 0;
            continue;
        }
        operands[n++] = a;
    }
    if (n == 2)
        nu__strs_add(cls, cfg, "-c ", operands[0], "=");
    if (n == 2 && cfg->n > 0) {
        char *last = cfg->items[cfg->n - 1];
        size_t len = strlen(last) + strlen(operands[1]) + 1;
        char *p = realloc(last, len);
        if (p == NULL) {
            cls->nomem = 1;
            return;
        }
        strcat(p, operands[1]);
        cfg->items[cfg->n - 1] = p;
    }
}

static void nu__git_op(nu__cls_t *cls, const nu__view_t *v, const char *sub,
                       const char *next)
{
    static const char *const push[] = { "push", "send-pack", "http-push", NULL };
    static const char *const commit[] = { "commit", "commit-tree", "merge",
                                          "cherry-pick", "revert", "am", "pull",
                                          NULL };
    static const char *const net[] = { "fetch", "pull", "clone", "ls-remote",
                                       "remote", "submodule", "archive",
                                       "request-pull", NULL };
    next = next ? next : "";

    if (nu__in(sub, push) || (strcmp(sub, "subtree") == 0 && strcmp(next, "push") == 0) ||
        (strcmp(sub, "svn") == 0 && strcmp(next, "dcommit") == 0) ||
        (strcmp(sub, "p4") == 0 && strcmp(next, "submit") == 0))
        nu__set_op(cls, v, NU_OP_GIT_PUSH);
    if (nu__in(sub, commit))
        nu__set_op(cls, v, NU_OP_GIT_COMMIT);
    if (nu__in(sub, net))
        nu__network(cls, v);
    if (strcmp(v->base, "hub") == 0 && strcmp(sub, "pull-request") == 0)
        nu__set_op(cls, v, NU_OP_CREATE_PR);
}

static int nu__h_git(nu__cls_t *cls, nu__view_t *v)
{
    nu__strs_t cfg = { NULL, 0 };
    char sub[64] = "";
    size_t i = 1;

    if (strncmp(v->base, "git-", 4) == 0) {
        snprintf(sub, sizeof sub, "%s", v->base + 4);
    } else {
        i = nu__git_globals(cls, v, &cfg);
        if (i < v->n && !nu__literal(&v->words[i])) {
            nu__flag(cls, v, NU_CMDF_DYNAMIC_PROGRAM);
            nu__reason(cls, NU_CMDF_DYNAMIC_PROGRAM,
                       "the git subcommand '%.40s' is not a literal",
                       v->words[i].text);
        }
        if (i < v->n)
            snprintf(sub, sizeof sub, "%s", v->words[i].text);
        nu__git_alias(&cfg, sub, sizeof sub);
        if (strcmp(sub, "config") == 0)
            nu__git_config(cls, v, i + 1, &cfg);
    }

    nu__git_op(cls, v, sub, nu__arg(v, i + 1));

    /* Table: "git" entries see every argument, "git <sub>" entries too. */
    const char *save = v->base;
    v->base = "git";
    nu__match_table(cls, v, sub, v->words + 1, v->n - 1, cfg.items, cfg.n);
    v->base = save;
    v->table_done = 1;
    nu__strs_free(&cfg);
    return 0;
}

/* gh and glab: the first two operands name the action. */
static int nu__h_forge(nu__cls_t *cls, const nu__view_t *v)
{
    static const char *const takes[] = { "-R", "--repo", "-X", "--method",
                                         "-H", "--header", "--hostname", NULL };
    const char *ops[2] = { NULL, NULL };
    size_t n = 0;
    int post = 0, pulls = 0;

    nu__network(cls, v);
    for (size_t i = 1; i < v->n; i++) {
        const char *a = v->words[i].text;
        const char *next = nu__arg(v, i + 1);
        if (nu__in(a, takes)) {
            if ((strcmp(a, "-X") == 0 || strcmp(a, "--method") == 0) && next &&
                strcasecmp(next, "GET") != 0)
                post = 1;
            i++;
            continue;
        }
        if (strcmp(a, "-f") == 0 || strcmp(a, "-F") == 0 ||
            strcmp(a, "--field") == 0 || strcmp(a, "--raw-field") == 0)
            post = 1;
        if (strstr(a, "/pulls") != NULL || strstr(a, "merge_requests") != NULL)
            pulls = 1;
        if (a[0] == '-' || n >= 2)
            continue;
        if (!nu__literal(&v->words[i])) {
            nu__flag(cls, v, NU_CMDF_DYNAMIC_PROGRAM);
            nu__reason(cls, NU_CMDF_DYNAMIC_PROGRAM,
                       "the '%.20s' subcommand '%.40s' is not a literal", v->base, a);
        }
        ops[n++] = a;
    }

    const char *group = strcmp(v->base, "glab") == 0 ? "mr" : "pr";
    if (n == 2 && strcmp(ops[0], group) == 0 && strcmp(ops[1], "create") == 0)
        nu__set_op(cls, v, NU_OP_CREATE_PR);
    if (n >= 1 && strcmp(ops[0], "api") == 0 && post && pulls)
        nu__set_op(cls, v, NU_OP_CREATE_PR);
    return 0;
}

/* --- network clients ----------------------------------------------------- */

static const char *const nu__fetchers[] = {
    "curl", "wget", "wget2", "http", "https", "httpie", "xh", "xhs", "aria2c",
    "axel", "lwp-request", "GET", "POST", "HEAD", "lynx", "links", "w3m",
    "elinks", NULL,
};

static const char *const nu__net_clients[] = {
    "nc", "ncat", "netcat", "socat", "ssh", "scp", "sftp", "telnet", "ftp",
    "tftp", "mosh", "sshfs", "dig", "nslookup", "host", "ping", "ping6",
    "traceroute", NULL,
};

static int nu__h_fetch(nu__cls_t *cls, const nu__view_t *v)
{
    nu__set_op(cls, v, NU_OP_WEB_FETCH);
    nu__network(cls, v);
    return 0;
}

static int nu__h_net(nu__cls_t *cls, const nu__view_t *v)
{
    nu__network(cls, v);
    return 0;
}

/* rsync reaches the network for host:path, rsync:// or a remote shell. */
static int nu__h_rsync(nu__cls_t *cls, const nu__view_t *v)
{
    for (size_t i = 1; i < v->n; i++) {
        const char *a = v->words[i].text;
        const char *colon = strchr(a, ':');
        const char *slash = strchr(a, '/');
        if (a[0] == '-') {
            if (strcmp(a, "-e") == 0 || strncmp(a, "--rsh", 5) == 0)
                nu__network(cls, v);
            continue;
        }
        if (strncmp(a, "rsync://", 8) == 0 ||
            (colon != NULL && (slash == NULL || colon < slash)))
            nu__network(cls, v);
    }
    return 0;
}

static int nu__h_openssl(nu__cls_t *cls, const nu__view_t *v)
{
    const char *sub = nu__first_operand(v);

    if (sub != NULL && (strcmp(sub, "s_client") == 0 || strcmp(sub, "ocsp") == 0))
        nu__network(cls, v);
    return 0;
}

/* --- find, sed, awk, tee ------------------------------------------------- */

/* find -exec CMD ;  -> CMD is classified as a wrapped command. */
static int nu__h_find(nu__cls_t *cls, const nu__view_t *v)
{
    static const char *const exec[] = { "-exec", "-execdir", "-ok", "-okdir", NULL };

    for (size_t i = 1; i < v->n; i++) {
        if (!nu__in(v->words[i].text, exec))
            continue;
        size_t j = i + 1;
        while (j < v->n && strcmp(v->words[j].text, ";") != 0 &&
               strcmp(v->words[j].text, "+") != 0)
            j++;
        if (j > i + 1 &&
            nu__classify(cls, v, v->words + i + 1, j - i - 1, v->env, v->nenv,
                         NULL, 0, NULL, v->depth + 1) != 0)
            return -1;
        i = j;
    }
    return 0;
}

/* Skip one delimited part of an s or y command (the delimiter included). */
static size_t nu__sed_part(const char *s, size_t i, char delim)
{
    while (s[i] != '\0' && s[i] != delim) {
        if (s[i] == '\\' && s[i + 1] != '\0')
            i++;
        else if (s[i] == '\n' && delim != '\n')
            break;
        i++;
    }
    return s[i] == delim ? i + 1 : i;
}

static size_t nu__sed_address(const char *s, size_t i)
{
    if (s[i] == '/' || s[i] == '\\') {
        char delim = s[i] == '\\' && s[i + 1] != '\0' ? s[++i] : '/';
        i = nu__sed_part(s, i + 1, delim);
        while (s[i] == 'I' || s[i] == 'M')
            i++;
        return i;
    }
    if (s[i] == '$')
        return i + 1;
    if (s[i] == '+' || s[i] == '~')
        i++;
    while (isdigit((unsigned char)s[i]) || s[i] == '~')
        i++;
    return i;
}

/* The rest of the line, trimmed, as a file name. */
static size_t nu__sed_file(nu__cls_t *cls, const nu__view_t *v, const char *s,
                           size_t i, int write)
{
    size_t n;

    while (s[i] == ' ' || s[i] == '\t')
        i++;
    n = strcspn(s + i, "\n");
    if (n > 0) {
        char *name = strndup(s + i, n);
        if (name == NULL) {
            cls->nomem = 1;
            return i + n;
        }
        nu__add_redirect(cls, v->idx, name, write, 0);
        free(name);
    }
    return i + n;
}

/* Scan a GNU sed script: e commands and s///e flags run programs (returns
 * 1); w and r files are reported as redirections; an unknown command also
 * returns 1, so nothing unparsed passes as harmless. */
static int nu__sed_scan(nu__cls_t *cls, const nu__view_t *v, const char *s)
{
    size_t i = 0;

    for (;;) {
        while (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == ';')
            i++;
        if (s[i] == '\0')
            return 0;
        i = nu__sed_address(s, i);
        if (s[i] == ',')
            i = nu__sed_address(s, i + 1);
        while (s[i] == ' ' || s[i] == '!')
            i++;

        char c = s[i] ? s[i++] : '\0';
        char delim;
        switch (c) {
        case '{': case '}': case '=': case 'd': case 'D': case 'g': case 'G':
        case 'h': case 'H': case 'n': case 'N': case 'p': case 'P': case 'x':
        case 'z': case 'F': case '\0':
            break;
        case 'q': case 'Q': case 'l': case 'L':
            while (isdigit((unsigned char)s[i]) || s[i] == ' ')
                i++;
            break;
        case '#': case ':': case 'b': case 't': case 'T': case 'v':
            i += strcspn(s + i, c == '#' || c == ':' ? "\n" : ";\n}");
            break;
        case 'a': case 'i': case 'c':
            while (s[i] != '\0' && s[i] != '\n') {
                if (s[i] == '\\' && s[i + 1] != '\0')
                    i++;
                i++;
            }
            break;
        case 'r': case 'R': case 'w': case 'W':
            i = nu__sed_file(cls, v, s, i, c == 'w' || c == 'W');
            break;
        case 'e':
            return 1;
        case 's':
        case 'y':
            delim = s[i];
            if (delim == '\0' || delim == '\n' || delim == '\\')
                return 1;
            i = nu__sed_part(s, nu__sed_part(s, i + 1, delim), delim);
            while (c == 's' && s[i] != '\0' && strchr("gpiImMe0123456789w", s[i])) {
                if (s[i] == 'e')
                    return 1;
                if (s[i] == 'w') {
                    i = nu__sed_file(cls, v, s, i + 1, 1);
                    break;
                }
                i++;
            }
            break;
        default:
            return 1;
        }
    }
}

static void nu__sed_exec(nu__cls_t *cls, const nu__view_t *v, const char *why)
{
    nu__flag(cls, v, NU_CMDF_EXEC_OPTION);
    nu__reason(cls, NU_CMDF_EXEC_OPTION, "'sed' %s", why);
}

static int nu__h_sed(nu__cls_t *cls, const nu__view_t *v)
{
    int have_script = 0, in_place = 0, sandbox = 0, runs = 0, from_file = 0;

    for (size_t i = 1; i < v->n; i++) {
        const char *a = v->words[i].text;
        const char *script = NULL;
        if (strcmp(a, "--sandbox") == 0) {
            sandbox = 1;
        } else if (strncmp(a, "--expression=", 13) == 0) {
            script = a + 13;
        } else if (strcmp(a, "--expression") == 0 || strcmp(a, "-e") == 0) {
            script = nu__arg(v, ++i);
        } else if (strncmp(a, "--file", 6) == 0 || strncmp(a, "-f", 2) == 0) {
            from_file = 1;
            if (strcmp(a, "-f") == 0 || strcmp(a, "--file") == 0)
                i++;
        } else if (strncmp(a, "--in-place", 10) == 0) {
            in_place = 1;
        } else if (a[0] == '-' && a[1] != '-' && a[1] != '\0') {
            const char *e = strpbrk(a + 1, "eif");
            if (e != NULL && *e == 'i')
                in_place = 1;
            else if (e != NULL && *e == 'e')
                script = e[1] ? e + 1 : nu__arg(v, ++i);
            else if (e != NULL)
                from_file = 1;
        } else if (a[0] != '-' && !have_script) {
            script = a;
        } else if (in_place && a[0] != '-') {
            nu__add_redirect(cls, v->idx, a, 1, !nu__literal(&v->words[i]));
        }
        if (script != NULL) {
            have_script = 1;
            runs |= nu__sed_scan(cls, v, script);
        }
    }

    if (sandbox)
        return 0;
    if (runs)
        nu__sed_exec(cls, v, "script runs a command or is not understood");
    if (from_file)
        nu__sed_exec(cls, v, "script comes from a file");
    return 0;
}

/* awk programs can run commands with system() and pipes. */
static int nu__h_awk(nu__cls_t *cls, const nu__view_t *v)
{
    static const char *const takes[] = { "-F", "-v", "-f", "-e", "-i", "-l",
                                         "-E", "--file", "--source", "--include",
                                         "--load", "--exec", "--assign",
                                         "--field-separator", NULL };
    const char *program = NULL;
    int from_file = 0;

    for (size_t i = 1; i < v->n && program == NULL; i++) {
        const char *a = v->words[i].text;
        if (strcmp(a, "--") == 0) {
            program = nu__arg(v, i + 1);
            break;
        }
        if (a[0] != '-' || a[1] == '\0') {
            program = from_file ? "" : a;
            break;
        }
        if (strncmp(a, "-f", 2) == 0 || strncmp(a, "--file", 6) == 0 ||
            strncmp(a, "-l", 2) == 0 || strncmp(a, "--load", 6) == 0 ||
            strncmp(a, "-E", 2) == 0 || strncmp(a, "--exec", 6) == 0)
            from_file = 1;
        if ((strcmp(a, "-e") == 0 || strcmp(a, "--source") == 0) && i + 1 < v->n)
            program = v->words[i + 1].text;
        i += nu__in(a, takes) ? 1 : 0;
    }

    int runs = from_file;
    if (program != NULL) {
        for (const char *p = program; *p; p++) {
            if (*p == '|' && p[1] != '|' && (p == program || p[-1] != '|'))
                runs = 1;
        }
        if (strstr(program, "system") != NULL)
            runs = 1;
    }
    if (runs) {
        nu__flag(cls, v, NU_CMDF_EXEC_OPTION);
        nu__reason(cls, NU_CMDF_EXEC_OPTION,
                   "'%.20s' program can run commands (system, pipes or a program file)",
                   v->base);
    }
    return 0;
}

/* tee writes its operands: report them like redirection targets. */
static int nu__h_tee(nu__cls_t *cls, const nu__view_t *v)
{
    int options = 1;

    for (size_t i = 1; i < v->n; i++) {
        const char *a = v->words[i].text;
        if (options && strcmp(a, "--") == 0) {
            options = 0;
            continue;
        }
        if (options && a[0] == '-' && a[1] != '\0')
            continue;
        if (nu__add_redirect(cls, v->idx, a, 1, !nu__literal(&v->words[i])) != 0)
            return -1;
    }
    return 0;
}

/* --- dispatch ------------------------------------------------------------ */

static const char *const nu__shells[] = {
    "sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "yash", "posh", "fish",
    "csh", "tcsh", "rbash", "lksh", "oksh", "pdksh", NULL,
};
static const char *const nu__declares[] = {
    "export", "declare", "typeset", "local", "readonly", NULL,
};
static const char *const nu__awks[] = { "awk", "gawk", "mawk", "nawk", NULL };

static int nu__dispatch(nu__cls_t *cls, nu__view_t *v)
{
    const char *b = v->base;

    if (nu__find_wrapper(b) != NULL)
        return nu__h_wrapper(cls, v);
    if (nu__in(b, nu__shells))
        return nu__h_shell(cls, v);
    if (strcmp(b, "eval") == 0)
        return nu__h_eval(cls, v);
    if (strcmp(b, "source") == 0 || strcmp(b, ".") == 0)
        return nu__h_source(cls, v);
    if (strcmp(b, "trap") == 0)
        return nu__h_trap(cls, v);
    if (strcmp(b, "alias") == 0)
        return nu__h_alias(cls, v);
    if (nu__in(b, nu__declares))
        return nu__h_declare(cls, v);
    if (strcmp(b, "su") == 0 || strcmp(b, "runuser") == 0 ||
        strcmp(b, "script") == 0)
        return nu__h_su(cls, v);
    if (strcmp(b, "git") == 0 || strcmp(b, "hub") == 0 || strncmp(b, "git-", 4) == 0)
        return nu__h_git(cls, v);
    if (strcmp(b, "gh") == 0 || strcmp(b, "glab") == 0)
        return nu__h_forge(cls, v);
    if (nu__in(b, nu__fetchers))
        return nu__h_fetch(cls, v);
    if (nu__in(b, nu__net_clients))
        return nu__h_net(cls, v);
    if (strcmp(b, "rsync") == 0)
        return nu__h_rsync(cls, v);
    if (strcmp(b, "openssl") == 0)
        return nu__h_openssl(cls, v);
    if (strcmp(b, "find") == 0)
        return nu__h_find(cls, v);
    if (strcmp(b, "sed") == 0)
        return nu__h_sed(cls, v);
    if (nu__in(b, nu__awks))
        return nu__h_awk(cls, v);
    if (strcmp(b, "tee") == 0)
        return nu__h_tee(cls, v);
    if (nu__find_interp(b) != NULL)
        return nu__h_interp(cls, v);
    return 0;
}

static int nu__classify_program(nu__cls_t *cls, nu__view_t *v)
{
    const nu_shell_word_t *w0 = &v->words[0];

    if (!nu__literal(w0)) {
        nu__flag(cls, v, NU_CMDF_DYNAMIC_PROGRAM);
        nu__reason(cls, NU_CMDF_DYNAMIC_PROGRAM,
                   "the program name '%.60s' is not a literal", w0->text);
        return 0;
    }
    v->base = nu__basename(w0->text);
    if (v->base[0] == '\0')
        return 0;

    int rc = nu__dispatch(cls, v);
    if (rc == 0 && !v->table_done)
        nu__match_table(cls, v, nu__first_operand(v), v->words + 1, v->n - 1,
                        NULL, 0);
    return cls->nomem ? -1 : rc;
}

static int nu__classify(nu__cls_t *cls, const nu__view_t *parent,
                        const nu_shell_word_t *words, size_t n,
                        const nu_shell_word_t *env, size_t nenv,
                        const nu_shell_redir_t *redirs, size_t nredirs,
                        const nu__stdin_t *in, unsigned depth)
{
    if (cls->nomem)
        return -1;
    if (depth > NU_SHELL_MAX_DEPTH) {
        cls->out->flags |= NU_CMDF_TOO_COMPLEX;
        if (parent != NULL)
            nu__flag(cls, parent, NU_CMDF_TOO_COMPLEX);
        nu__reason(cls, NU_CMDF_TOO_COMPLEX, "commands nested deeper than %d",
                   NU_SHELL_MAX_DEPTH);
        return 0;
    }

    long idx = nu__append(cls, words, n, env, nenv);
    if (idx < 0)
        return cls->nomem ? -1 : 0;
    if (nu__add_redirects(cls, (size_t)idx, redirs, nredirs) != 0)
        return -1;

    nu__view_t v = {
        .words = words, .n = n, .env = env, .nenv = nenv, .in = in,
        .depth = depth, .idx = (size_t)idx, .base = "",
    };
    for (size_t i = 0; i < nenv; i++)
        nu__check_assign(cls, &v, env[i].text);

    int rc = n > 0 ? nu__classify_program(cls, &v) : 0;
    if (parent != NULL)
        nu__inherit(cls, parent, (size_t)idx);
    return rc;
}

/* Classify every command of a parsed script. */
static int nu__classify_script(nu__cls_t *cls, const nu__view_t *parent,
                               const nu_shell_script_t *script, unsigned depth)
{
    for (size_t i = 0; i < script->ncmds; i++) {
        const nu_shell_cmd_t *c = &script->cmds[i];
        nu__stdin_t in = { .piped = (c->flags & NU_SHELL_C_PIPE_IN) != 0 };
        size_t first = cls->out->ncmds;

        for (size_t j = 0; j < c->nredirs; j++) {
            const nu_shell_redir_t *r = &c->redirs[j];
            if (r->fd <= 0 && (r->kind == NU_SHELL_R_IN ||
                               r->kind == NU_SHELL_R_HEREDOC ||
                               r->kind == NU_SHELL_R_HERESTRING))
                in.redir = r;
        }
        if (nu__classify(cls, parent, c->words, c->nwords, c->assigns,
                         c->nassigns, c->redirs, c->nredirs, &in, depth) != 0)
            return -1;
        if ((c->flags & NU_SHELL_C_BACKGROUND) && first < cls->out->ncmds)
            cls->out->cmds[first].flags |= NU_CMDF_BACKGROUND;
    }
    return 0;
}

/* --- entry points -------------------------------------------------------- */

static void nu__finish(nu_cmd_analysis_t *a)
{
    a->operation = NU_OP_RUN_BASH;
    a->ops |= NU_OPSET(NU_OP_RUN_BASH);
    for (size_t i = 0; i < a->ncmds; i++) {
        a->flags |= a->cmds[i].flags;
        a->ops |= NU_OPSET(a->cmds[i].operation);
        a->operation = nu__max_op(a->operation, a->cmds[i].operation);
    }
}

static int nu__done(nu__cls_t *cls)
{
    if (cls->nomem) {
        nu_cmd_analysis_free(cls->out);
        return NU_ENOMEM;
    }
    nu__finish(cls->out);
    return NU_OK;
}

int nu_classify_shell(const char *command, nu_cmd_analysis_t *out)
{
    nu__cls_t cls = { .out = out };
    nu_shell_script_t script;

    memset(out, 0, sizeof *out);
    if (command == NULL)
        return NU_EINVAL;
    if (nu_shell_parse(command, strlen(command), 0, &script) != NU_OK)
        return NU_ENOMEM;
    if (script.flags != 0) {
        out->flags |= script.flags;
        nu__reason(&cls, script.flags, "%s", script.error);
    }
    nu__classify_script(&cls, NULL, &script, 0);
    nu_shell_script_free(&script);
    return nu__done(&cls);
}

int nu_classify_argv(int argc, char *const argv[], nu_cmd_analysis_t *out)
{
    nu__cls_t cls = { .out = out };
    nu__stdin_t in = { 0 };

    memset(out, 0, sizeof *out);
    if (argc < 0 || (argc > 0 && argv == NULL))
        return NU_EINVAL;
    if (argc > NU_SHELL_MAX_WORDS) {
        out->flags |= NU_CMDF_TOO_COMPLEX;
        nu__reason(&cls, NU_CMDF_TOO_COMPLEX, "more than %d arguments",
                   NU_SHELL_MAX_WORDS);
        return nu__done(&cls);
    }

    nu_shell_word_t *words = calloc((size_t)argc + 1, sizeof *words);
    if (words == NULL)
        return NU_ENOMEM;
    for (int i = 0; i < argc; i++)
        words[i].text = argv[i] ? argv[i] : "";
    if (argc > 0)
        nu__classify(&cls, NULL, words, (size_t)argc, NULL, 0, NULL, 0, &in, 0);
    free(words);
    return nu__done(&cls);
}

void nu_cmd_analysis_free(nu_cmd_analysis_t *a)
{
    if (a == NULL)
        return;
    for (size_t i = 0; i < a->ncmds; i++) {
        nu_simple_cmd_t *c = &a->cmds[i];
        for (int j = 0; c->argv != NULL && j < c->argc; j++)
            free(c->argv[j]);
        for (size_t j = 0; c->env != NULL && j < c->nenv; j++)
            free(c->env[j]);
        for (size_t j = 0; j < c->nredirects; j++)
            free(c->redirects[j].target);
        free(c->argv);
        free(c->env);
        free(c->redirects);
    }
    free(a->cmds);
    a->cmds = NULL;
    a->ncmds = 0;
}
