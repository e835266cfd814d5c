/*
 * sandbox_serve.c - the request loop of a pod's PID 1, shared by the pod
 * init (podinit.c) and the vm guest agent (vm/agent/agent.c).
 *
 * A session on the stream, after the tier has opened it:
 *   1. the host sends a hello frame with its version range and the pod's
 *      config; nu__serve_hello negotiates the version;
 *   2. the tier applies its own checks (hardening, the vm tier's pooled
 *      workspace), nu__serve_executor opens the executor on /workspace,
 *      and nu__serve_ready replies with a hello;
 *   3. nu__serve_loop serves request frames one at a time until the host
 *      closes the stream.  Each request gets one response frame with the
 *      request's "id", after output frames for a streaming run.
 * A frame that is not a request with an integer id, or that cannot be
 * read, gets an error frame and ends the loop, which ends the pod.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox_internal.h"
#include "sandbox_serve.h"

/* Milliseconds the loop waits for a request before it reaps again. */
#define NU__SERVE_POLL_MS 1000

/* Milliseconds to receive the rest of a frame once it has started. */
#define NU__SERVE_FRAME_MS 30000

void nu__serve_init(nu__serve_t *s, const char *name, int fd)
{
    memset(s, 0, sizeof *s);
    s->name = name;
    s->fd = fd;
    s->executor.root_fd = -1;
}

void nu__serve_error(int fd, const char *message)
{
    json_t *json = json_pack("{s:s}", "message", message);

    if (json != NULL)
        nu_proto_write(fd, 1, NU_FRAME_ERROR, json, NULL, 0, NULL);
    json_decref(json);
}

static void nu__serve_report(const nu__serve_t *s, const char *message)
{
    if (s->report_error != NULL)
        s->report_error(s->fd, message);
    else
        nu__serve_error(s->fd, message);
}

int nu__serve_hello(nu__serve_t *s, int timeout_ms, nu_frame_t *hello,
                    nu_err_t *err)
{
    int rc;

    memset(hello, 0, sizeof *hello);
    rc = nu_proto_read(s->fd, hello, timeout_ms, err);
    if (rc < 0)
        return rc;
    if (hello->type != NU_FRAME_HELLO) {
        nu_frame_free(hello);
        return nu_err_set(err, NU_EPROTO, "%s: cannot start: expected a "
                          "hello frame first", s->name);
    }

    rc = nu_proto_negotiate(NU_PROTO_VERSION_MIN, NU_PROTO_VERSION_MAX,
        (int)json_integer_value(json_object_get(hello->json, "min_version")),
        (int)json_integer_value(json_object_get(hello->json, "max_version")),
        err);
    if (rc < 0) {
        nu_frame_free(hello);
        return rc;
    }
    s->version = rc;
    return NU_OK;
}

int nu__serve_executor(nu__serve_t *s, const json_t *config,
                       const char *const *base_env, nu_err_t *err)
{
    nu_executor_config_t cfg;
    json_t *value;

    nu_executor_config_init(&cfg);
    cfg.base_env = base_env;
    value = json_object_get(config, "timeout_ms");
    if (json_integer_value(value) > 0)
        cfg.default_timeout_ms = (uint32_t)json_integer_value(value);
    value = json_object_get(config, "output_max");
    if (json_integer_value(value) > 0)
        cfg.max_output_bytes = (size_t)json_integer_value(value);
    s->timeout_ms = cfg.default_timeout_ms;
    s->output_max = cfg.max_output_bytes;
    return nu_executor_init(&s->executor, "/workspace", &cfg, err);
}

int nu__serve_ready(nu__serve_t *s, json_t *fields, nu_err_t *err)
{
    json_t *reply = json_pack("{s:i,s:i}", "version", s->version, "pid",
                              (int)getpid());
    int rc;

    if (reply == NULL || fields == NULL ||
        json_object_update(reply, fields) != 0) {
        json_decref(reply);
        json_decref(fields);
        return nu_err_set(err, NU_ENOMEM, "%s: out of memory", s->name);
    }
    json_decref(fields);
    rc = nu_proto_write(s->fd, (uint8_t)s->version, NU_FRAME_HELLO, reply,
                        NULL, 0, err);
    json_decref(reply);
    return rc;
}

/* --- requests --------------------------------------------------------- */

static json_t *nu__serve_failure(const char *kind, const char *message)
{
    return json_pack("{s:b,s:s,s:s}", "ok", 0, "kind", kind, "error",
                     message);
}

static void nu__serve_free_env(char **env)
{
    for (size_t i = 0; env != NULL && env[i] != NULL; i++) {
        explicit_bzero(env[i], strlen(env[i]));
        free(env[i]);
    }
    free(env);
}

/* Copy the request's "env" array of "NAME=value" strings; NULL with
 * *invalid set for a bad entry, NULL alone when out of memory. */
static char **nu__serve_copy_env(const json_t *list, bool *invalid)
{
    size_t count = json_array_size(list);
    char **env = calloc(count + 1, sizeof *env);

    for (size_t i = 0; env != NULL && i < count; i++) {
        const char *item = json_string_value(json_array_get(list, i));

        if (item == NULL || strchr(item, '=') == NULL || item[0] == '=') {
            *invalid = true;
            nu__serve_free_env(env);
            return NULL;
        }
        env[i] = strdup(item);
        if (env[i] == NULL) {
            nu__serve_free_env(env);
            return NULL;
        }
    }
    return env;
}

/* Replace the base environment of later commands with the request's
 * "env" (the _set_env request), after crediting its blob of host entropy
 * when it has one. */
static json_t *nu__serve_set_env(nu__serve_t *s, const nu_frame_t *frame)
{
    const json_t *request = frame->json;
    const json_t *list = json_object_get(request, "env");
    bool invalid = false;
    char message[160];
    char **env;

    if (!json_is_array(list) || json_array_size(list) > NU__SET_ENV_MAX) {
        snprintf(message, sizeof message, "%s: cannot set environment: "
                 "expected an array of at most %d strings", s->name,
                 NU__SET_ENV_MAX);
        return nu__serve_failure("invalid_request", message);
    }
    env = nu__serve_copy_env(list, &invalid);
    if (env == NULL) {
        snprintf(message, sizeof message, invalid ? "%s: cannot set "
                 "environment: every entry must be NAME=value" :
                 "%s: out of memory", s->name);
        return nu__serve_failure(invalid ? "invalid_request" : "internal",
                                 message);
    }
    if (frame->blob_len > 0 &&
        (s->credit_entropy == NULL ||
         s->credit_entropy(frame->blob, frame->blob_len) != 0)) {
        snprintf(message, sizeof message, "%s: cannot credit the host's "
                 "entropy: %s", s->name, s->credit_entropy == NULL ?
                 "not supported here" : strerror(errno));
        nu__serve_free_env(env);
        return nu__serve_failure("internal", message);
    }

    nu__serve_free_env(s->env);
    s->env = env;
    s->executor.cfg.base_env = (const char *const *)env;
    return json_pack("{s:b,s:i,s:i}", "ok", 1, "count",
                     (int)json_array_size(list), "seeded",
                     (int)frame->blob_len);
}

/* Build the response object for one request (NULL only when out of
 * memory).  Read content travels as the response's blob (into *blob) only
 * when the request sets "want_blob", so that nu_sandbox_tool callers get
 * the executor's usual JSON. */
static json_t *nu__serve_handle(nu__serve_t *s, const nu_frame_t *frame,
                                nu_blob_t *blob)
{
    const json_t *request = frame->json;
    const char *tool = json_string_value(json_object_get(request, "tool"));
    json_t *result = NULL;
    nu_err_t err;

    if (tool == NULL)
        tool = "";
    if (strcmp(tool, "ping") == 0)
        return json_pack("{s:b,s:i}", "ok", 1, "pid", (int)getpid());
    if (s->accept_set_env && strcmp(tool, NU__SET_ENV) == 0)
        return nu__serve_set_env(s, frame);
    if (strcmp(tool, NU__PUT_RUN_FILE) == 0)
        return json_object_get(request, "link") != NULL
               ? nu__put_run_link(request)
               : nu__put_run_file(request, frame->blob, frame->blob_len);
    if (strcmp(tool, "run") == 0 &&
        json_is_true(json_object_get(request, "stream")))
        return nu__stream_run(&s->executor, s->fd, s->version, request,
                              s->output_max, s->timeout_ms);

    nu_exec_tool(&s->executor, request, &result,
                 json_is_true(json_object_get(request, "want_blob")) ? blob :
                 NULL, &err);
    return result;
}

/* Handle one request frame and write its response.  Returns 0, or 1 when
 * the response could not be written. */
static int nu__serve_answer(nu__serve_t *s, const nu_frame_t *frame)
{
    nu_blob_t blob = { 0 };
    json_t *result;
    nu_err_t err;
    char message[96];
    int rc;

    result = nu__serve_handle(s, frame, &blob);
    if (result == NULL) {
        snprintf(message, sizeof message, "%s: out of memory", s->name);
        result = nu__serve_failure("internal", message);
    }
    json_object_set(result, "id", json_object_get(frame->json, "id"));
    rc = nu_proto_write(s->fd, (uint8_t)s->version, NU_FRAME_RESPONSE,
                        result, blob.data, blob.len, &err);
    json_decref(result);
    nu_blob_free(&blob);
    return rc < 0 ? 1 : 0;
}

/* Reap orphans that were re-parented to PID 1.  nu__serve_loop calls it
 * only between requests, so that the executor's own waitpid never loses
 * its child. */
static void nu__serve_reap(void)
{
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
}

int nu__serve_loop(nu__serve_t *s)
{
    char message[128];

    for (;;) {
        struct pollfd p = { .fd = s->fd, .events = POLLIN };
        nu_frame_t frame = { 0 };
        nu_err_t err;
        int rc;

        nu__serve_reap();
        rc = poll(&p, 1, NU__SERVE_POLL_MS);
        if (rc == 0 || (rc < 0 && errno == EINTR))
            continue;
        /* A virtio serial port reports POLLHUP while the host side is
         * disconnected, and the host never reconnects. */
        if (s->hangup_ends && rc > 0 && (p.revents & POLLIN) == 0)
            return 0;

        rc = nu_proto_read(s->fd, &frame, NU__SERVE_FRAME_MS, &err);
        if (rc == NU_EIO)
            return 0;  /* the host closed the stream */
        if (rc < 0) {
            nu__serve_report(s, err.msg);
            return 1;
        }
        if (frame.type != NU_FRAME_REQUEST ||
            !json_is_integer(json_object_get(frame.json, "id"))) {
            snprintf(message, sizeof message, "%s: cannot serve: expected "
                     "a request frame with an integer id", s->name);
            nu__serve_report(s, message);
            nu_frame_free(&frame);
            return 1;
        }

        rc = nu__serve_answer(s, &frame);
        nu_frame_free(&frame);
        if (rc != 0)
            return 1;
    }
}

void nu__serve_close(nu__serve_t *s)
{
    nu_executor_close(&s->executor);
    nu__serve_free_env(s->env);
    s->env = NULL;
}
