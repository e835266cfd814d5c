/*
 * sandbox_stream.c - run a command in the pod init and stream its output.
 *
 * A run request with "stream": true is served here instead of by the
 * executor, because the executor returns a command's output only when it
 * ends.  The command is started as the executor's run starts one.  It
 * gets its own process group, stdin from /dev/null, only fds 0-2, the
 * pod's environment and a cwd resolved beneath /workspace.  The whole
 * group is killed at the timeout and when the command exits.  Each chunk of output
 * goes to the host as an output frame {"id", "stream"} + blob as soon as
 * it is read; at most output_max bytes per stream are forwarded and the
 * rest is read and dropped.  The response then carries exit_code, signal,
 * timed_out, the truncation flags and duration_ms, without the output.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "nucleus/executor.h"
#include "nucleus/proto.h"
#include "sandbox_internal.h"

extern char **environ;

#define NU__STREAM_CHUNK 65536
#define NU__STREAM_DRAIN_MS 200
#define NU__STREAM_MAX_ARGV 4096

typedef struct nu__pipe {
    int fd;
    const char *name;
    size_t forwarded;
    bool truncated;
} nu__pipe_t;

static int64_t nu__mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static json_t *nu__stream_error(const char *kind, const char *message)
{
    return json_pack("{s:b,s:s,s:s}", "ok", 0, "kind", kind, "error",
                     message);
}

/* Copy the request's argv into a NULL-terminated array of borrowed
 * strings; returns NULL when it is not a non-empty array of strings. */
static char **nu__stream_argv(const json_t *request)
{
    json_t *list = json_object_get(request, "argv");
    size_t n = json_array_size(list);
    char **argv;

    if (!json_is_array(list) || n == 0 || n > NU__STREAM_MAX_ARGV)
        return NULL;
    argv = calloc(n + 1, sizeof *argv);
    if (argv == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        argv[i] = (char *)json_string_value(json_array_get(list, i));
        if (argv[i] == NULL) {
            free(argv);
            return NULL;
        }
    }
    return argv;
}

/* Forward what is readable on p; closes it at end of file. */
static int nu__stream_pump(int host_fd, int version, json_t *id,
                           nu__pipe_t *p, size_t output_max)
{
    static char buf[NU__STREAM_CHUNK];
    ssize_t n = read(p->fd, buf, sizeof buf);
    size_t room;
    json_t *head;
    int rc;

    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return NU_OK;
    if (n <= 0) {
        close(p->fd);
        p->fd = -1;
        return NU_OK;
    }

    room = output_max - p->forwarded;
    if ((size_t)n > room) {
        p->truncated = true;
        n = (ssize_t)room;
    }
    if (n == 0)
        return NU_OK;

    head = json_pack("{s:O,s:s}", "id", id, "stream", p->name);
    if (head == NULL)
        return NU_ENOMEM;
    rc = nu_proto_write(host_fd, (uint8_t)version, NU_FRAME_OUTPUT, head,
                        buf, (size_t)n, NULL);
    json_decref(head);
    p->forwarded += (size_t)n;
    return rc;
}

static int nu__stream_spawn(char **argv, char *const *envp,
                            const char *cwd, int out_w, int err_w, pid_t *pid)
{
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    sigset_t none;
    sigset_t defaults;
    int rc;

    posix_spawn_file_actions_init(&actions);
    posix_spawnattr_init(&attr);
    sigemptyset(&none);
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGPIPE);

    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, out_w, 1);
    posix_spawn_file_actions_adddup2(&actions, err_w, 2);
    posix_spawn_file_actions_addclosefrom_np(&actions, 3);
    posix_spawn_file_actions_addchdir_np(&actions, cwd);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP |
                             POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    posix_spawnattr_setsigdefault(&attr, &defaults);

    rc = posix_spawnp(pid, argv[0], &actions, &attr, argv, envp);

    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&actions);
    return rc;
}

/* The cwd inside the pod: "/workspace" or the request's "cwd" resolved
 * beneath it (symlinks may not leave the workspace). */
static int nu__stream_cwd(const nu_executor_t *ex, const json_t *request,
                          char *out, size_t size, nu_err_t *err)
{
    const char *cwd = json_string_value(json_object_get(request, "cwd"));
    char *rel = NULL;
    int rc;

    if (cwd == NULL) {
        snprintf(out, size, "/workspace");
        return NU_OK;
    }
    rc = nu_resolve_path(ex->root_fd, "/workspace", cwd, &rel, err);
    if (rc < 0)
        return rc;
    snprintf(out, size, "/workspace/%s", rel);
    free(rel);
    return NU_OK;
}

static json_t *nu__stream_result(int status, bool timed_out,
                                 const nu__pipe_t *out,
                                 const nu__pipe_t *err, int64_t start,
                                 uint32_t timeout_ms)
{
    json_t *res = json_pack("{s:b,s:b,s:b,s:b,s:b,s:I,s:I}", "ok", 1,
                            "timed_out", timed_out,
                            "stdout_truncated", out->truncated,
                            "stderr_truncated", err->truncated,
                            "truncated", out->truncated || err->truncated,
                            "duration_ms", (json_int_t)(nu__mono_ms() -
                                                        start),
                            "timeout_ms", (json_int_t)timeout_ms);

    if (res == NULL)
        return NULL;
    if (WIFEXITED(status)) {
        json_object_set_new(res, "exit_code",
                            json_integer(WEXITSTATUS(status)));
        json_object_set_new(res, "signal", json_null());
    } else {
        json_object_set_new(res, "exit_code", json_null());
        json_object_set_new(res, "signal", json_integer(WTERMSIG(status)));
    }
    if (timed_out) {
        json_object_set_new(res, "ok", json_false());
        json_object_set_new(res, "kind", json_string("timeout"));
        json_object_set_new(res, "error", json_sprintf(
            "run: command timed out after %u ms and its process group was "
            "killed (raise 'timeout' if the command needs longer)",
            timeout_ms));
    }
    return res;
}

/* Poll the pipes until the child exits and the pipes close, killing the
 * group at the deadline. */
static int nu__stream_wait(int host_fd, int version, json_t *id, pid_t pid,
                           nu__pipe_t *pipes, size_t output_max,
                           int64_t deadline, bool *timed_out, int *status)
{
    int64_t drain_until = -1;
    bool exited = false;

    for (;;) {
        struct pollfd p[2];
        nu__pipe_t *which[2];
        int64_t now = nu__mono_ms();
        nfds_t n = 0;
        int wait_ms;

        if (!exited && waitpid(pid, status, WNOHANG) == pid) {
            exited = true;
            kill(-pid, SIGKILL);  /* stragglers of the group */
            drain_until = now + NU__STREAM_DRAIN_MS;
        }
        if (!exited && now >= deadline && !*timed_out) {
            *timed_out = true;
            kill(-pid, SIGKILL);
        }
        for (int i = 0; i < 2; i++)
            if (pipes[i].fd >= 0) {
                p[n] = (struct pollfd){ .fd = pipes[i].fd, .events = POLLIN };
                which[n++] = &pipes[i];
            }
        if (exited && (n == 0 || now >= drain_until))
            return NU_OK;

        wait_ms = exited ? (int)(drain_until - now) : 20;
        if (poll(p, n, wait_ms < 0 ? 0 : wait_ms) < 0 && errno != EINTR)
            return NU_EIO;
        for (nfds_t i = 0; i < n; i++)
            if (p[i].revents != 0 &&
                nu__stream_pump(host_fd, version, id, which[i],
                                output_max) < 0)
                return NU_EIO;
    }
}

json_t *nu__stream_run(nu_executor_t *ex, int host_fd, int version,
                       const json_t *request, size_t output_max,
                       uint32_t default_timeout_ms)
{
    nu__pipe_t pipes[2] = { { -1, "stdout", 0, false },
                            { -1, "stderr", 0, false } };
    int out_pipe[2] = { -1, -1 };
    int err_pipe[2] = { -1, -1 };
    json_t *id = json_object_get(request, "id");
    json_t *timeout = json_object_get(request, "timeout");
    uint32_t timeout_ms = default_timeout_ms;
    char cwd[4200];
    char **argv;
    json_t *result = NULL;
    bool timed_out = false;
    int64_t start = nu__mono_ms();
    int status = 0;
    pid_t pid;
    nu_err_t err;
    int rc;

    if (json_object_get(request, "env") != NULL ||
        json_object_get(request, "stdin") != NULL ||
        json_object_get(request, "command") != NULL)
        return nu__stream_error("invalid_request", "run: cannot stream a "
                                "call with 'env', 'stdin' or 'command': "
                                "drop \"stream\" or give only 'argv', 'cwd' "
                                "and 'timeout'");

    argv = nu__stream_argv(request);
    if (argv == NULL)
        return nu__stream_error("invalid_request", "run: cannot stream: "
                                "'argv' must be a non-empty list of "
                                "strings");
    if (json_is_number(timeout) && json_number_value(timeout) > 0 &&
        json_number_value(timeout) <= 86400)
        timeout_ms = (uint32_t)(json_number_value(timeout) * 1000.0 + 0.5);

    if (nu__stream_cwd(ex, request, cwd, sizeof cwd, &err) < 0) {
        result = nu__stream_error("path_denied", err.msg);
        goto out;
    }
    if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0) {
        result = nu__stream_error("io_error", "run: cannot create pipes");
        goto out;
    }

    /* The executor's base environment is the pod's: the vm agent gets it
     * by _set_env and never copies it into its own environ. */
    rc = nu__stream_spawn(argv, ex->cfg.base_env != NULL
                          ? (char *const *)ex->cfg.base_env : environ,
                          cwd, out_pipe[1], err_pipe[1], &pid);
    close(out_pipe[1]);
    close(err_pipe[1]);
    out_pipe[1] = err_pipe[1] = -1;
    if (rc != 0) {
        char message[512];
        snprintf(message, sizeof message, "run: cannot start '%s': %s%s",
                 argv[0], strerror(rc), rc == ENOENT ? " (check the name "
                 "and PATH inside the pod)" : "");
        result = nu__stream_error(rc == ENOENT ? "not_found" : "io_error",
                                  message);
        if (result != NULL)
            json_object_set_new(result, "exit_code",
                                json_integer(rc == ENOENT ? 127 : 126));
        goto out;
    }

    pipes[0].fd = out_pipe[0];
    pipes[1].fd = err_pipe[0];
    out_pipe[0] = err_pipe[0] = -1;
    rc = nu__stream_wait(host_fd, version, id, pid, pipes, output_max,
                         start + timeout_ms, &timed_out, &status);
    if (rc < 0) {
        kill(-pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    result = nu__stream_result(status, timed_out, &pipes[0], &pipes[1],
                               start, timeout_ms);

out:
    for (int i = 0; i < 2; i++) {
        if (pipes[i].fd >= 0)
            close(pipes[i].fd);
        if (out_pipe[i] >= 0)
            close(out_pipe[i]);
        if (err_pipe[i] >= 0)
            close(err_pipe[i]);
    }
    free(argv);
    return result;
}
