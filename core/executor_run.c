/*
 * executor_run.c - the run tool: one command in its own process group.
 *
 * Lifecycle of a call:
 *   1. The arguments, environment and working directory are prepared
 *      before fork, so the child only calls async-signal-safe functions
 *      (the caller may be multi-threaded).
 *   2. The child makes itself a process group leader, and the parent also
 *      calls setpgid to close the race.  The child restores default signal
 *      handling and an empty signal mask, and connects stdin (the call's
 *      bytes through a pipe, or /dev/null), stdout and stderr.  It changes
 *      to the working directory, marks every other descriptor
 *      close-on-exec with close_range(2) and executes the program.  PATH is
 *      searched in the command's own environment, not the caller's.  An
 *      exec failure reaches the parent as an errno value through a
 *      close-on-exec pipe, and the child exits with 127 (126 when the
 *      program exists but cannot be executed).
 *   3. The parent polls stdout, stderr, the stdin pipe and a pidfd of the
 *      child in one loop, so no pipe can fill up and deadlock.  Output past
 *      max_output_bytes per stream is read and discarded, and the result
 *      says "truncated": true.
 *   4. At the timeout the whole group gets SIGTERM, and SIGKILL
 *      term_grace_ms later.
 *   5. When the leader has exited, the loop waits up to drain_ms for the
 *      pipes to close (a background process may hold them open), then
 *      sends SIGKILL to what is left of the group.  A process that moved
 *      to another group or session escapes this; the sandbox's cgroup
 *      limits bound those.
 *   6. The leader is detected with waitid(WNOWAIT) and reaped only after
 *      the group kill, so its pid (and thus the group id) cannot be reused
 *      by an unrelated process while the group is signalled.
 *
 * SIGPIPE is blocked in the calling thread while stdin is written, and a
 * SIGPIPE raised by that write is consumed before returning.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "executor_int.h"

#define NU__RUN_MAX_ARGS 4096
#define NU__RUN_MAX_ENV 1024
#define NU__RUN_POLL_FALLBACK_MS 10

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

typedef struct nu__stream {
    int fd;
    char *buf;
    size_t len, max;
    int truncated;
} nu__stream_t;

typedef struct nu__run {
    char **argv;
    size_t argc;
    char **envp;
    size_t envc;
    int shell;             /* argv came from "command" */
    int cwd_fd;
    char *cwd_rel;
    unsigned char *stdin_data;
    size_t stdin_len, stdin_off;
    uint64_t timeout_ms;

    pid_t pid;
    int pidfd;
    int exec_errno;
    int exited, status;
    int timed_out;
    nu__stream_t out, err;
    int in_fd;
    uint64_t start_ms, duration_ms;
} nu__run_t;

static uint64_t nu__now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void nu__close(int *fd)
{
    if (*fd >= 0) {
        int saved = errno;
        close(*fd);
        errno = saved;
    }
    *fd = -1;
}

static void nu__strv_free(char **v, size_t n)
{
    if (v == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void nu__run_free(nu__run_t *r)
{
    nu__strv_free(r->argv, r->argc);
    nu__strv_free(r->envp, r->envc);
    nu__close(&r->cwd_fd);
    nu__close(&r->pidfd);
    nu__close(&r->out.fd);
    nu__close(&r->err.fd);
    nu__close(&r->in_fd);
    free(r->cwd_rel);
    free(r->stdin_data);
    free(r->out.buf);
    free(r->err.buf);
}

/* --- preparing the call -------------------------------------------------- */

static int nu__run_argv(nu__run_t *r, const json_t *args, nu_err_t *err)
{
    json_t *argv = json_object_get(args, "argv");
    const char *command = NULL;
    int rc = nu__exec_arg_string("run", args, "command", 0, &command, err);

    if (rc < 0)
        return rc;
    if (argv != NULL && json_is_null(argv))
        argv = NULL;
    if ((argv == NULL) == (command == NULL))
        return nu_err_set(err, NU_EINVAL,
                          "run: cannot run the call: give exactly one of 'argv' (a list "
                          "of strings) and 'command' (a shell command line)");

    if (command != NULL) {
        r->shell = 1;
        r->argc = 3;
        r->argv = calloc(4, sizeof *r->argv);
        if (r->argv == NULL)
            return nu_err_set(err, NU_ENOMEM, "run: out of memory");
        r->argv[0] = strdup("/bin/sh");
        r->argv[1] = strdup("-c");
        r->argv[2] = strdup(command);
        if (r->argv[0] == NULL || r->argv[1] == NULL || r->argv[2] == NULL)
            return nu_err_set(err, NU_ENOMEM, "run: out of memory");
        return NU_OK;
    }

    if (!json_is_array(argv) || json_array_size(argv) == 0 ||
        json_array_size(argv) > NU__RUN_MAX_ARGS)
        return nu_err_set(err, NU_EINVAL,
                          "run: cannot use argument 'argv': expected a list of 1 to %d "
                          "strings", NU__RUN_MAX_ARGS);

    r->argv = calloc(json_array_size(argv) + 1, sizeof *r->argv);
    if (r->argv == NULL)
        return nu_err_set(err, NU_ENOMEM, "run: out of memory");
    for (size_t i = 0; i < json_array_size(argv); i++) {
        json_t *a = json_array_get(argv, i);
        if (!json_is_string(a) || strlen(json_string_value(a)) != json_string_length(a))
            return nu_err_set(err, NU_EINVAL,
                              "run: cannot use argv[%zu]: expected a string without NUL",
                              i);
        r->argv[i] = strdup(json_string_value(a));
        if (r->argv[i] == NULL)
            return nu_err_set(err, NU_ENOMEM, "run: out of memory");
        r->argc = i + 1;
    }
    if (r->argv[0][0] == '\0')
        return nu_err_set(err, NU_EINVAL, "run: cannot run an empty program name");
    return NU_OK;
}

/* Set NAME=value in envp, replacing an earlier entry with the same name. */
static int nu__env_set(nu__run_t *r, const char *entry, size_t name_len)
{
    char *copy = strdup(entry);

    if (copy == NULL)
        return NU_ENOMEM;
    for (size_t i = 0; i < r->envc; i++) {
        if (strncmp(r->envp[i], entry, name_len + 1) == 0) {
            free(r->envp[i]);
            r->envp[i] = copy;
            return NU_OK;
        }
    }
    if (r->envc == NU__RUN_MAX_ENV) {
        free(copy);
        return NU_ELIMIT;
    }
    r->envp[r->envc++] = copy;
    return NU_OK;
}

static int nu__env_add_list(nu__run_t *r, const char *const *list, nu_err_t *err)
{
    for (size_t i = 0; list != NULL && list[i] != NULL; i++) {
        const char *eq = strchr(list[i], '=');
        int rc;

        if (eq == NULL || eq == list[i])
            continue; /* not NAME=value: the embedding process's mistake */
        rc = nu__env_set(r, list[i], (size_t)(eq - list[i]));
        if (rc < 0)
            return nu_err_set(err, rc, "run: cannot build the environment: %s",
                              nu_strerror(rc));
    }
    return NU_OK;
}

/* Check and add the call's "env" object. */
static int nu__env_add_call(nu__run_t *r, const json_t *env, nu_err_t *err)
{
    const char *name;
    json_t *value;

    if (env == NULL || json_is_null(env))
        return NU_OK;
    if (!json_is_object(env))
        return nu_err_set(err, NU_EINVAL,
                          "run: cannot use argument 'env': expected an object of strings");

    json_object_foreach((json_t *)env, name, value) {
        size_t n = strlen(name);
        char *entry;
        int rc;

        if (n == 0 || strchr(name, '=') != NULL)
            return nu_err_set(err, NU_EINVAL,
                              "run: cannot set environment variable '%s': the name must "
                              "be non-empty and contain no '='", name);
        if (!json_is_string(value) ||
            strlen(json_string_value(value)) != json_string_length(value))
            return nu_err_set(err, NU_EINVAL,
                              "run: cannot set environment variable '%s': expected a "
                              "string without NUL", name);

        entry = malloc(n + json_string_length(value) + 2);
        if (entry == NULL)
            return nu_err_set(err, NU_ENOMEM, "run: out of memory");
        sprintf(entry, "%s=%s", name, json_string_value(value));
        rc = nu__env_set(r, entry, n);
        free(entry);
        if (rc < 0)
            return nu_err_set(err, rc, "run: cannot set environment variable '%s': %s",
                              name, rc == NU_ELIMIT ? "more than 1024 variables"
                                                    : nu_strerror(rc));
    }
    return NU_OK;
}

static int nu__run_env(nu_executor_t *ex, nu__run_t *r, const json_t *args, nu_err_t *err)
{
    char home[PATH_MAX + 8];
    const char *defaults[] = {
        "PATH=/usr/local/bin:/usr/bin:/bin", home, "LANG=C.UTF-8", "TERM=dumb", NULL,
    };
    int rc;

    snprintf(home, sizeof home, "HOME=%s", ex->cfg.root_prefix);
    r->envp = calloc(NU__RUN_MAX_ENV + 1, sizeof *r->envp);
    if (r->envp == NULL)
        return nu_err_set(err, NU_ENOMEM, "run: out of memory");

    rc = nu__env_add_list(r, ex->cfg.base_env != NULL ? ex->cfg.base_env : defaults, err);
    if (rc == NU_OK)
        rc = nu__env_add_call(r, json_object_get(args, "env"), err);
    if (rc == NU_OK)
        rc = nu__env_add_list(r, ex->cfg.extra_env, err);
    return rc;
}

static int nu__run_cwd(nu_executor_t *ex, nu__run_t *r, const json_t *args, nu_err_t *err)
{
    nu_resolved_t res = { .dir_fd = -1 };
    const char *cwd = NULL;
    int rc = nu__exec_arg_string("run", args, "cwd", 0, &cwd, err);

    if (rc == NU_OK)
        rc = nu__exec_resolve(ex, "run", cwd != NULL ? cwd : ".", NU_RESOLVE_FOLLOW_FINAL,
                              &res, err);
    if (rc < 0)
        return rc;

    r->cwd_fd = openat(res.dir_fd, res.name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (r->cwd_fd < 0) {
        rc = errno == ENOTDIR
                 ? nu_err_set(err, NU_EINVAL, "run: cannot use cwd '%s': not a directory",
                              res.rel)
                 : nu_err_errno(err, errno, "run: cannot open cwd '%s'", res.rel);
        nu_resolved_free(&res);
        return rc;
    }
    r->cwd_rel = res.rel;
    res.rel = NULL;
    nu_resolved_free(&res);
    return NU_OK;
}

/* The call's "timeout" is in seconds (a JSON number, fractions allowed),
 * as everywhere else in the tool-call API; the executor works in
 * milliseconds. */
static int nu__run_timeout(nu_executor_t *ex, const json_t *args,
                           uint64_t *timeout_ms, nu_err_t *err)
{
    json_t *v = json_object_get(args, "timeout");
    double seconds;

    *timeout_ms = ex->cfg.default_timeout_ms;
    if (v == NULL || json_is_null(v))
        return NU_OK;
    seconds = json_number_value(v);
    if (!json_is_number(v) || !(seconds >= 0) || seconds > 4294967.0)
        return nu_err_set(err, NU_EINVAL, "run: cannot use argument 'timeout': "
                          "expected seconds from 0.001 to 4294967");
    *timeout_ms = (uint64_t)(seconds * 1000.0 + 0.5);
    return NU_OK;
}

static int nu__run_prepare(nu_executor_t *ex, nu__run_t *r, const json_t *args,
                           nu_err_t *err)
{
    uint64_t max_timeout = ex->cfg.max_timeout_ms ? ex->cfg.max_timeout_ms : 1;
    int rc;

    rc = nu__run_argv(r, args, err);
    if (rc == NU_OK)
        rc = nu__run_timeout(ex, args, &r->timeout_ms, err);
    if (rc == NU_OK && r->timeout_ms == 0)
        rc = nu_err_set(err, NU_EINVAL,
                        "run: cannot use timeout 0: give seconds from 0.001 to %.3f",
                        (double)max_timeout / 1000.0);
    if (rc == NU_OK)
        rc = nu__exec_arg_bytes("run", args, "stdin", 0, ex->cfg.max_stdin_bytes,
                                &r->stdin_data, &r->stdin_len, err);
    if (rc == NU_OK)
        rc = nu__run_env(ex, r, args, err);
    if (rc == NU_OK)
        rc = nu__run_cwd(ex, r, args, err);

    if (r->timeout_ms > max_timeout)
        r->timeout_ms = max_timeout;
    return rc;
}

/* --- the child ---------------------------------------------------------- */

/* Execute argv[0], searching PATH from envp.  Returns only on failure,
 * with errno set to EACCES when any candidate was not executable and
 * ENOENT otherwise, as execvp(3) does. */
static void nu__child_exec(char **argv, char **envp)
{
    const char *path = "/usr/local/bin:/usr/bin:/bin";
    const char *file = argv[0];
    size_t file_len = strlen(file);
    int saw_eacces = 0;
    char buf[PATH_MAX];

    if (strchr(file, '/') != NULL) {
        execve(file, argv, envp);
        return;
    }
    for (size_t i = 0; envp[i] != NULL; i++)
        if (strncmp(envp[i], "PATH=", 5) == 0)
            path = envp[i] + 5;

    while (*path != '\0' || path[-1] == ':') {
        const char *end = strchr(path, ':');
        size_t dir_len = end != NULL ? (size_t)(end - path) : strlen(path);

        if (dir_len == 0)
            dir_len = 1, memcpy(buf, ".", 1);
        else if (dir_len + file_len + 2 <= sizeof buf)
            memcpy(buf, path, dir_len);
        else
            dir_len = 0;

        if (dir_len > 0 && dir_len + file_len + 2 <= sizeof buf) {
            buf[dir_len] = '/';
            memcpy(buf + dir_len + 1, file, file_len + 1);
            execve(buf, argv, envp);
            if (errno == EACCES)
                saw_eacces = 1;
        }
        if (end == NULL)
            break;
        path = end + 1;
    }
    errno = saw_eacces ? EACCES : ENOENT;
}

static void nu__child_cloexec_all(void)
{
    struct rlimit rl;

    if (syscall(SYS_close_range, 3u, ~0u, CLOSE_RANGE_CLOEXEC) == 0)
        return;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur > 65536)
        rl.rlim_cur = 65536;
    for (int fd = 3; fd < (int)rl.rlim_cur; fd++)
        fcntl(fd, F_SETFD, FD_CLOEXEC);
}

/* Runs in the forked child: async-signal-safe calls only. */
static void nu__child(nu__run_t *r, int stdin_fd, int out_fd, int err_fd, int report_fd)
{
    struct sigaction dfl;
    sigset_t none;
    int e;

    setpgid(0, 0);

    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++)
        sigaction(sig, &dfl, NULL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    /* Move the three ends above 2 first: when the caller runs with closed
     * standard descriptors, a pipe end may itself be 0, 1 or 2. */
    stdin_fd = fcntl(stdin_fd, F_DUPFD_CLOEXEC, 3);
    out_fd = fcntl(out_fd, F_DUPFD_CLOEXEC, 3);
    err_fd = fcntl(err_fd, F_DUPFD_CLOEXEC, 3);
    if (stdin_fd < 0 || out_fd < 0 || err_fd < 0 || dup2(stdin_fd, 0) < 0 ||
        dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0 || fchdir(r->cwd_fd) < 0)
        goto fail;

    nu__child_cloexec_all();
    nu__child_exec(r->argv, r->envp);

fail:
    e = errno;
    while (write(report_fd, &e, sizeof e) < 0 && errno == EINTR)
        ;
    _exit(e == ENOENT ? 127 : 126);
}

/* --- the parent --------------------------------------------------------- */

static int nu__open_stdin(nu__run_t *r, int *child_end, nu_err_t *err)
{
    int p[2];

    if (r->stdin_data == NULL) {
        *child_end = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (*child_end >= 0)
            return NU_OK;
    }

    /* Call bytes, or an empty pipe (end of file at once) without
     * /dev/null. */
    if (pipe2(p, O_CLOEXEC) < 0)
        return nu_err_errno(err, errno, "run: cannot create the stdin pipe");
    *child_end = p[0];
    r->in_fd = p[1];
    if (r->stdin_data == NULL || r->stdin_len == 0)
        nu__close(&r->in_fd);
    else
        fcntl(r->in_fd, F_SETFL, O_NONBLOCK);
    return NU_OK;
}

/* Fork and exec; on success the child runs and r->pid is set. */
static int nu__run_spawn(nu__run_t *r, nu_err_t *err)
{
    int in_child = -1, out_p[2] = { -1, -1 }, err_p[2] = { -1, -1 }, rep[2] = { -1, -1 };
    int rc = nu__open_stdin(r, &in_child, err);
    ssize_t n;

    if (rc < 0)
        return rc;
    if (pipe2(out_p, O_CLOEXEC) < 0 || pipe2(err_p, O_CLOEXEC) < 0 ||
        pipe2(rep, O_CLOEXEC) < 0) {
        rc = nu_err_errno(err, errno, "run: cannot create pipes");
        goto out;
    }

    r->start_ms = nu__now_ms();
    r->pid = fork();
    if (r->pid < 0) {
        rc = nu_err_errno(err, errno, "run: cannot fork '%s'", r->argv[0]);
        goto out;
    }
    if (r->pid == 0)
        nu__child(r, in_child, out_p[1], err_p[1], rep[1]);

    setpgid(r->pid, r->pid); /* also done by the child; EACCES after exec */
    r->out.fd = out_p[0];
    r->err.fd = err_p[0];
    out_p[0] = err_p[0] = -1;
    nu__close(&rep[1]);

    /* Blocks until exec succeeds (close-on-exec) or the child reports. */
    do
        n = read(rep[0], &r->exec_errno, sizeof r->exec_errno);
    while (n < 0 && errno == EINTR);
    if (n != (ssize_t)sizeof r->exec_errno)
        r->exec_errno = 0;

    r->pidfd = (int)syscall(SYS_pidfd_open, r->pid, 0);
    fcntl(r->out.fd, F_SETFL, O_NONBLOCK);
    fcntl(r->err.fd, F_SETFL, O_NONBLOCK);

out:
    nu__close(&in_child);
    nu__close(&out_p[0]);
    nu__close(&out_p[1]);
    nu__close(&err_p[0]);
    nu__close(&err_p[1]);
    nu__close(&rep[0]);
    nu__close(&rep[1]);
    return rc;
}

/* Read what is available on a stream; closes it at end of file. */
static int nu__stream_read(nu__stream_t *s)
{
    char chunk[65536];

    for (;;) {
        ssize_t n = read(s->fd, chunk, sizeof chunk);
        size_t keep;

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return NU_OK;
        if (n <= 0) {
            nu__close(&s->fd);
            return NU_OK;
        }

        keep = s->len < s->max ? s->max - s->len : 0;
        if ((size_t)n > keep)
            s->truncated = 1;
        else
            keep = (size_t)n;
        if (keep > 0) {
            char *bigger = realloc(s->buf, s->len + keep + 1);
            if (bigger == NULL)
                return NU_ENOMEM;
            s->buf = bigger;
            memcpy(s->buf + s->len, chunk, keep);
            s->len += keep;
        }
    }
}

static void nu__stdin_write(nu__run_t *r)
{
    while (r->stdin_off < r->stdin_len) {
        ssize_t n = write(r->in_fd, r->stdin_data + r->stdin_off, r->stdin_len - r->stdin_off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        if (n < 0)
            break; /* EPIPE: the command does not read its input */
        r->stdin_off += (size_t)n;
    }
    nu__close(&r->in_fd);
}

/* Check, without reaping, whether the leader has exited. */
static void nu__check_exit(nu__run_t *r)
{
    siginfo_t si;

    memset(&si, 0, sizeof si);
    if (waitid(P_PID, (id_t)r->pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0) {
        if (errno == ECHILD)
            r->exited = 1; /* reaped by someone else: status unknown */
        return;
    }
    if (si.si_pid == r->pid)
        r->exited = 1;
}

/* Poll the streams and the child until the deadline handling ends. */
static int nu__run_loop(nu_executor_t *ex, nu__run_t *r)
{
    uint64_t deadline = r->start_ms + r->timeout_ms;
    uint64_t kill_at = 0, drain_until = 0;

    for (;;) {
        struct pollfd p[4];
        nfds_t np = 0;
        uint64_t now = nu__now_ms(), wake;
        int wait_ms, rc;

        if (!r->exited && !r->timed_out && now >= deadline) {
            r->timed_out = 1;
            kill(-r->pid, SIGTERM);
            kill_at = now + ex->cfg.term_grace_ms;
        }
        if (kill_at != 0 && now >= kill_at) {
            kill(-r->pid, SIGKILL);
            kill_at = 0;
        }
        if (r->exited && drain_until == 0)
            drain_until = now + ex->cfg.drain_ms;
        if (r->exited && (now >= drain_until || (r->out.fd < 0 && r->err.fd < 0)))
            return NU_OK;

        if (r->out.fd >= 0)
            p[np++] = (struct pollfd){ .fd = r->out.fd, .events = POLLIN };
        if (r->err.fd >= 0)
            p[np++] = (struct pollfd){ .fd = r->err.fd, .events = POLLIN };
        if (r->in_fd >= 0)
            p[np++] = (struct pollfd){ .fd = r->in_fd, .events = POLLOUT };
        if (r->pidfd >= 0 && !r->exited)
            p[np++] = (struct pollfd){ .fd = r->pidfd, .events = POLLIN };

        if (r->exited)
            wake = drain_until;
        else if (!r->timed_out)
            wake = deadline;
        else if (kill_at != 0)
            wake = kill_at;
        else
            wake = now + 50; /* SIGKILL sent: wait for the exit */
        wait_ms = wake > now ? (int)(wake - now) : 0;
        if (r->pidfd < 0 && !r->exited && wait_ms > NU__RUN_POLL_FALLBACK_MS)
            wait_ms = NU__RUN_POLL_FALLBACK_MS;

        if (poll(p, np, wait_ms) < 0 && errno != EINTR)
            return NU_EIO;

        for (nfds_t i = 0; i < np; i++) {
            if (p[i].revents == 0)
                continue;
            if (p[i].fd == r->out.fd && (rc = nu__stream_read(&r->out)) < 0)
                return rc;
            if (p[i].fd == r->err.fd && (rc = nu__stream_read(&r->err)) < 0)
                return rc;
            if (p[i].fd == r->in_fd)
                nu__stdin_write(r);
        }
        if (!r->exited)
            nu__check_exit(r);
        if (r->exited)
            nu__close(&r->in_fd);
    }
}

/* Kill what is left of the group, then reap the leader. */
static void nu__run_finish(nu__run_t *r)
{
    int status = 0;
    pid_t w;

    if (r->pid <= 0)
        return; /* kill(-pid) with pid -1 would signal process 1 */
    kill(-r->pid, SIGKILL);
    do
        w = waitpid(r->pid, &status, 0);
    while (w < 0 && errno == EINTR);
    r->status = w == r->pid ? status : -1;
    r->duration_ms = nu__now_ms() - r->start_ms;
}

/* --- result --------------------------------------------------------------- */

static int nu__run_result(nu__run_t *r, json_t **res_out)
{
    json_t *res = json_object();
    int exited = r->status >= 0 && WIFEXITED(r->status);
    int signalled = r->status >= 0 && WIFSIGNALED(r->status);
    int truncated = r->out.truncated || r->err.truncated;

    if (res == NULL ||
        json_object_set_new(res, "exit_code",
                            exited ? json_integer(WEXITSTATUS(r->status)) : json_null()) < 0 ||
        json_object_set_new(res, "signal",
                            signalled ? json_integer(WTERMSIG(r->status)) : json_null()) < 0 ||
        nu__exec_set_bytes(res, "stdout", (unsigned char *)r->out.buf, r->out.len) < 0 ||
        nu__exec_set_bytes(res, "stderr", (unsigned char *)r->err.buf, r->err.len) < 0 ||
        json_object_set_new(res, "stdout_truncated", json_boolean(r->out.truncated)) < 0 ||
        json_object_set_new(res, "stderr_truncated", json_boolean(r->err.truncated)) < 0 ||
        json_object_set_new(res, "truncated", json_boolean(truncated)) < 0 ||
        json_object_set_new(res, "timed_out", json_boolean(r->timed_out)) < 0 ||
        json_object_set_new(res, "duration_ms", json_integer((json_int_t)r->duration_ms)) < 0 ||
        json_object_set_new(res, "timeout_ms", json_integer((json_int_t)r->timeout_ms)) < 0 ||
        json_object_set_new(res, "cwd", json_string(r->cwd_rel)) < 0 ||
        json_object_set_new(res, "pid", json_integer(r->pid)) < 0) {
        json_decref(res);
        return NU_ENOMEM;
    }
    *res_out = res;
    return NU_OK;
}

/* Decide success or the failure kind from how the command ended. */
static int nu__run_outcome(nu__run_t *r, nu_err_t *err)
{
    int exited = r->status >= 0 && WIFEXITED(r->status);

    if (r->timed_out)
        return nu_err_set(err, NU_ETIMEDOUT,
                          "run: cannot finish '%s': timed out after %llu ms; the process "
                          "group was killed (raise 'timeout' if the command needs longer)",
                          r->argv[r->shell ? 2 : 0], (unsigned long long)r->timeout_ms);
    if (r->exec_errno == ENOENT)
        return nu_err_set(err, NU_ENOENT,
                          "run: cannot execute '%s': program not found in PATH or at "
                          "that path", r->argv[0]);
    if (r->exec_errno != 0)
    {
        nu_err_errno(err, r->exec_errno, "run: cannot execute '%s'", r->argv[0]);
        if (err != NULL)
            err->code = NU_EIO;
        return NU_EIO;
    }
    if (r->shell && exited && WEXITSTATUS(r->status) == 127)
        return nu_err_set(err, NU_ENOENT,
                          "run: cannot finish the command: the shell exited with 127 "
                          "(command not found)");
    if (r->status < 0)
        return nu_err_set(err, NU_EINTERNAL,
                          "run: cannot read the exit status of '%s': the process was "
                          "reaped by another waiter", r->argv[0]);
    return NU_OK;
}

/* Block SIGPIPE in this thread; returns whether it was already pending. */
static int nu__sigpipe_block(sigset_t *old)
{
    sigset_t set, pending;

    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    sigpending(&pending);
    pthread_sigmask(SIG_BLOCK, &set, old);
    return sigismember(&pending, SIGPIPE);
}

static void nu__sigpipe_restore(const sigset_t *old, int was_pending)
{
    sigset_t set, pending;
    struct timespec zero = { 0, 0 };

    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    sigpending(&pending);
    if (!was_pending && sigismember(&pending, SIGPIPE))
        sigtimedwait(&set, NULL, &zero);
    pthread_sigmask(SIG_SETMASK, old, NULL);
}

int nu_exec_run(nu_executor_t *ex, const json_t *args, json_t **result,
                nu_err_t *err)
{
    nu__run_t r = { .cwd_fd = -1, .pidfd = -1, .in_fd = -1, .pid = -1 };
    json_t *res = NULL;
    sigset_t old_mask;
    int rc, pipe_pending;

    *result = NULL;
    r.out = (nu__stream_t){ .fd = -1, .max = ex->cfg.max_output_bytes };
    r.err = (nu__stream_t){ .fd = -1, .max = ex->cfg.max_output_bytes };

    rc = nu__run_prepare(ex, &r, args, err);
    if (rc < 0)
        goto out;

    pipe_pending = nu__sigpipe_block(&old_mask);
    rc = nu__run_spawn(&r, err);
    if (rc == NU_OK) {
        rc = nu__run_loop(ex, &r);
        if (rc < 0)
            nu_err_set(err, rc, "run: cannot collect the output of '%s': %s", r.argv[0],
                       nu_strerror(rc));
        nu__run_finish(&r);
    }
    nu__sigpipe_restore(&old_mask, pipe_pending);
    if (rc < 0)
        goto out;

    if (nu__run_result(&r, &res) < 0) {
        rc = nu_err_set(err, NU_ENOMEM, "run: cannot build the result: out of memory");
        goto out;
    }
    rc = nu__run_outcome(&r, err);
    if (rc == NU_OK) {
        json_object_set_new(res, "ok", json_true());
        *result = res;
        res = NULL;
    }

out:
    nu__run_free(&r);
    if (rc < 0)
        return nu__exec_fail(result, err, rc, res);
    return NU_OK;
}
