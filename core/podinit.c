/*
 * podinit.c - the pod init: PID 1 of a namespace pod.
 *
 * The init is not a fork of the host: the child of clone() executes a
 * sealed memfd copy of a program that links libnucleus (see sandbox.c),
 * with argv NU_PODINIT_ARGV0 NU_PODINIT_ARGV1.  The constructor below
 * recognizes that argv and runs nu__podinit_main before main(), so any
 * such program can serve as the init.
 *
 * The init:
 *   1. re-arms PR_SET_PDEATHSIG and exits if the host is already gone;
 *   2. reads the host's hello frame and negotiates the protocol version;
 *   3. hardens itself (sandbox_harden.c): no capabilities left,
 *      no_new_privs, not dumpable, Landlock, seccomp;
 *   4. replies with its own hello: version, Landlock ABI, warnings;
 *   5. serves requests one at a time through the executor (executor.h),
 *      or sandbox_stream.c for a run with "stream": true, until the host
 *      closes the stream.  Between requests it reaps orphaned processes,
 *      as PID 1 of the pod's pid namespace must.
 * Any failure before step 4 is sent as an error frame; the init then
 * exits, which ends the pod.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nucleus/executor.h"
#include "nucleus/proto.h"
#include "sandbox_internal.h"

extern char **environ;

/* Referenced by sandbox.c so that linking the sandbox links the init. */
const int nu__podinit_linked = 1;

typedef struct nu__podinit {
    int fd;
    int version;
    int landlock_abi;
    uint32_t timeout_ms;        /* default run timeout */
    size_t output_max;          /* bytes forwarded per output stream */
    char warning[256];
    nu_executor_t executor;
} nu__podinit_t;

static void nu__send_error(int fd, const char *message)
{
    json_t *json = json_pack("{s:s}", "message", message);

    if (json != NULL)
        nu_proto_write(fd, 1, NU_FRAME_ERROR, json, NULL, 0, NULL);
    json_decref(json);
}

/* Steps 2 and 3. */
static int nu__podinit_start(nu__podinit_t *pi, nu_err_t *err)
{
    nu_frame_t hello = { 0 };
    nu_executor_config_t cfg;
    json_t *config;
    json_t *value;
    bool require_landlock;
    int rc;

    rc = nu_proto_read(pi->fd, &hello, 10000, err);
    if (rc < 0)
        return rc;
    if (hello.type != NU_FRAME_HELLO) {
        nu_frame_free(&hello);
        return nu_err_set(err, NU_EPROTO, "podinit: cannot start: expected "
                          "a hello frame first");
    }

    rc = nu_proto_negotiate(NU_PROTO_VERSION_MIN, NU_PROTO_VERSION_MAX,
        (int)json_integer_value(json_object_get(hello.json, "min_version")),
        (int)json_integer_value(json_object_get(hello.json, "max_version")),
        err);
    if (rc < 0)
        goto out;
    pi->version = rc;

    config = json_object_get(hello.json, "config");
    require_landlock = json_is_true(json_object_get(config,
                                                    "require_landlock"));
    rc = nu__harden(require_landlock, &pi->landlock_abi, pi->warning,
                    sizeof pi->warning, err);
    if (rc < 0)
        goto out;

    nu_executor_config_init(&cfg);
    cfg.base_env = (const char *const *)environ;
    value = json_object_get(config, "timeout_ms");
    if (json_integer_value(value) > 0)
        cfg.default_timeout_ms = (uint32_t)json_integer_value(value);
    value = json_object_get(config, "output_max");
    if (json_integer_value(value) > 0)
        cfg.max_output_bytes = (size_t)json_integer_value(value);
    pi->timeout_ms = cfg.default_timeout_ms;
    pi->output_max = cfg.max_output_bytes;
    rc = nu_executor_init(&pi->executor, "/workspace", &cfg, err);

out:
    nu_frame_free(&hello);
    return rc;
}

static int nu__podinit_ready(nu__podinit_t *pi, nu_err_t *err)
{
    json_t *reply = json_pack("{s:i,s:i,s:i}", "version", pi->version,
                              "pid", (int)getpid(), "landlock_abi",
                              pi->landlock_abi);
    int rc;

    if (reply == NULL)
        return nu_err_set(err, NU_ENOMEM, "podinit: out of memory");
    if (pi->warning[0] != '\0')
        json_object_set_new(reply, "warning", json_string(pi->warning));
    rc = nu_proto_write(pi->fd, (uint8_t)pi->version, NU_FRAME_HELLO, reply,
                        NULL, 0, err);
    json_decref(reply);
    return rc;
}

/* Reap orphans that were re-parented to us; only between requests, so
 * that the executor's own waitpid never loses its child. */
static void nu__reap_orphans(void)
{
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
}

static json_t *nu__handle(nu__podinit_t *pi, const nu_frame_t *frame,
                          nu_blob_t *blob)
{
    const json_t *request = frame->json;
    const char *tool = json_string_value(json_object_get(request, "tool"));
    json_t *result = NULL;
    nu_err_t err;

    if (tool != NULL && strcmp(tool, "ping") == 0)
        return json_pack("{s:b,s:i}", "ok", 1, "pid", (int)getpid());
    if (tool != NULL && strcmp(tool, NU__PUT_RUN_FILE) == 0)
        result = json_object_get(request, "link") != NULL
               ? nu__put_run_link(request)
               : nu__put_run_file(request, frame->blob, frame->blob_len);
    if (tool != NULL && strcmp(tool, "run") == 0 &&
        json_is_true(json_object_get(request, "stream")))
        result = nu__stream_run(&pi->executor, pi->fd, pi->version, request,
                                pi->output_max, pi->timeout_ms);
    if (result != NULL)
        return result;

    /* Read content travels as the response's blob only on request, so
     * that nu_sandbox_tool callers get the executor's usual JSON. */
    nu_exec_tool(&pi->executor, request, &result,
                 json_is_true(json_object_get(request, "want_blob")) ? blob :
                 NULL, &err);
    if (result == NULL)
        result = json_pack("{s:b,s:s,s:s}", "ok", 0, "kind", "internal",
                           "error", "podinit: out of memory");
    return result;
}

/* Step 5. */
static int nu__podinit_serve(nu__podinit_t *pi)
{
    for (;;) {
        struct pollfd p = { .fd = pi->fd, .events = POLLIN };
        nu_frame_t frame = { 0 };
        nu_blob_t blob = { 0 };
        json_t *result;
        nu_err_t err;
        int rc;

        nu__reap_orphans();
        rc = poll(&p, 1, 1000);
        if (rc == 0 || (rc < 0 && errno == EINTR))
            continue;

        rc = nu_proto_read(pi->fd, &frame, 30000, &err);
        if (rc == NU_EIO)
            return 0;  /* the host closed the stream */
        if (rc < 0) {
            nu__send_error(pi->fd, err.msg);
            return 1;
        }
        if (frame.type != NU_FRAME_REQUEST ||
            !json_is_integer(json_object_get(frame.json, "id"))) {
            nu__send_error(pi->fd, "podinit: cannot serve: expected a "
                           "request frame with an integer id");
            nu_frame_free(&frame);
            return 1;
        }

        result = nu__handle(pi, &frame, &blob);
        json_object_set(result, "id", json_object_get(frame.json, "id"));
        rc = nu_proto_write(pi->fd, (uint8_t)pi->version, NU_FRAME_RESPONSE,
                            result, blob.data, blob.len, &err);
        json_decref(result);
        nu_blob_free(&blob);
        nu_frame_free(&frame);
        if (rc < 0)
            return 1;
    }
}

int nu__podinit_main(int fd)
{
    nu__podinit_t pi;
    nu_err_t err;
    int status;

    memset(&pi, 0, sizeof pi);
    pi.fd = fd;
    pi.executor.root_fd = -1;

    /* Step 1: the death signal survives this exec, and setting it again
     * makes the init independent of how it was started.  A host that died
     * before the signal was armed has closed its end of the stream. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);

    /* A session of its own: the pod has no controlling terminal, so no
     * command in it can open /dev/tty, read what the operator types or
     * move the operator's shell out of the foreground. */
    setsid();
    {
        struct pollfd p = { .fd = fd, .events = POLLRDHUP };
        if (poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLRDHUP)) != 0)
            return 1;
    }

    if (nu__podinit_start(&pi, &err) < 0 || nu__podinit_ready(&pi, &err) < 0) {
        nu__send_error(fd, err.msg);
        return 1;
    }

    status = nu__podinit_serve(&pi);
    nu_executor_close(&pi.executor);
    return status;
}

__attribute__((constructor)) static void nu__podinit_entry(int argc,
                                                           char **argv,
                                                           char **envp)
{
    const char *name = argc > 0 ? strrchr(argv[0], '/') : NULL;

    (void)envp;
    /* OCI runtimes set argv[0] to the executable's path, so the oci tier
     * starts the init as ".../nucleus-podinit". */
    name = name != NULL ? name + 1 : argc > 0 ? argv[0] : "";
    if (argc == 2 && strcmp(name, NU_PODINIT_ARGV0) == 0 &&
        strcmp(argv[1], NU_PODINIT_ARGV1) == 0)
        _exit(nu__podinit_main(NU_PODINIT_FD));
}
