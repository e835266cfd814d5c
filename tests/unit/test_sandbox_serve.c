/*
 * test_sandbox_serve.c - the request loop shared by the pod init and the
 * vm guest agent (sandbox_serve.c), driven over a socketpair in one
 * process.  The test writes the host's frames, closes its side for
 * writing, runs the loop until it reads the end of the stream and then
 * reads the frames that the loop sent.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "sandbox_serve.h"

typedef struct fixture {
    int host;                /* the test's end */
    nu__serve_t serve;       /* serves the other end */
    char workspace[64];
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    int sv[2];

    if (f == NULL || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
                                sv) != 0)
        return -1;
    f->host = sv[0];
    nu__serve_init(&f->serve, "test", sv[1]);
    snprintf(f->workspace, sizeof f->workspace, "/tmp/nu-servetest-XXXXXX");
    if (mkdtemp(f->workspace) == NULL)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    char cmd[128];

    nu__serve_close(&f->serve);
    close(f->serve.fd);
    close(f->host);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->workspace);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

static void send_frame(fixture_t *f, uint8_t type, json_t *json)
{
    assert_non_null(json);
    assert_int_equal(nu_proto_write(f->host, 1, type, json, NULL, 0, NULL),
                     NU_OK);
    json_decref(json);
}

static void read_frame(fixture_t *f, nu_frame_t *frame)
{
    nu_err_t err = { 0 };

    memset(frame, 0, sizeof *frame);
    assert_int_equal(nu_proto_read(f->host, frame, 5000, &err), NU_OK);
}

/* End the stream after the frames already sent and serve them.  Returns
 * the loop's status. */
static int serve_all(fixture_t *f)
{
    assert_int_equal(shutdown(f->host, SHUT_WR), 0);
    return nu__serve_loop(&f->serve);
}

static void open_executor(fixture_t *f)
{
    nu_executor_config_t cfg;
    nu_err_t err = { 0 };

    nu_executor_config_init(&cfg);
    assert_int_equal(nu_executor_init(&f->serve.executor, f->workspace, &cfg,
                                      &err), NU_OK);
}

static void test_serve_hello_negotiates(void **state)
{
    fixture_t *f = *state;
    nu_frame_t hello;
    nu_err_t err = { 0 };

    send_frame(f, NU_FRAME_HELLO, json_pack("{s:i,s:i,s:{s:i}}",
                                            "min_version", 1, "max_version",
                                            9, "config", "timeout_ms", 5));
    assert_int_equal(nu__serve_hello(&f->serve, 1000, &hello, &err), NU_OK);
    assert_int_equal(f->serve.version, NU_PROTO_VERSION_MAX);
    assert_non_null(json_object_get(hello.json, "config"));
    nu_frame_free(&hello);
}

static void test_serve_hello_rejects_request(void **state)
{
    fixture_t *f = *state;
    nu_frame_t hello;
    nu_err_t err = { 0 };

    send_frame(f, NU_FRAME_REQUEST, json_pack("{s:i,s:s}", "id", 1, "tool",
                                              "ping"));
    assert_int_equal(nu__serve_hello(&f->serve, 1000, &hello, &err),
                     NU_EPROTO);
    assert_string_equal(err.msg, "test: cannot start: expected a hello "
                        "frame first");
}

static void test_serve_hello_rejects_version(void **state)
{
    fixture_t *f = *state;
    nu_frame_t hello;
    nu_err_t err = { 0 };

    send_frame(f, NU_FRAME_HELLO, json_pack("{s:i,s:i}", "min_version",
                                            NU_PROTO_VERSION_MAX + 1,
                                            "max_version",
                                            NU_PROTO_VERSION_MAX + 5));
    assert_true(nu__serve_hello(&f->serve, 1000, &hello, &err) < 0);
}

static void test_serve_ready_reply(void **state)
{
    fixture_t *f = *state;
    nu_frame_t reply;
    nu_err_t err = { 0 };

    f->serve.version = 1;
    assert_int_equal(nu__serve_ready(&f->serve, json_pack("{s:i}",
                                                          "landlock_abi", 4),
                                     &err), NU_OK);
    read_frame(f, &reply);
    assert_int_equal(reply.type, NU_FRAME_HELLO);
    assert_int_equal(json_integer_value(json_object_get(reply.json,
                                                        "version")), 1);
    assert_int_equal(json_integer_value(json_object_get(reply.json, "pid")),
                     getpid());
    assert_int_equal(json_integer_value(json_object_get(reply.json,
                                                        "landlock_abi")), 4);
    nu_frame_free(&reply);
}

static void test_serve_ping_echoes_id(void **state)
{
    fixture_t *f = *state;
    nu_frame_t response;

    f->serve.version = 1;
    send_frame(f, NU_FRAME_REQUEST, json_pack("{s:i,s:s}", "id", 7, "tool",
                                              "ping"));
    assert_int_equal(serve_all(f), 0);
    read_frame(f, &response);
    assert_int_equal(response.type, NU_FRAME_RESPONSE);
    assert_int_equal(json_integer_value(json_object_get(response.json, "id")),
                     7);
    assert_true(json_is_true(json_object_get(response.json, "ok")));
    assert_int_equal(json_integer_value(json_object_get(response.json,
                                                        "pid")), getpid());
    nu_frame_free(&response);
}

static void test_serve_rejects_missing_id(void **state)
{
    fixture_t *f = *state;
    nu_frame_t frame;

    f->serve.version = 1;
    send_frame(f, NU_FRAME_REQUEST, json_pack("{s:s}", "tool", "ping"));
    assert_int_equal(serve_all(f), 1);
    read_frame(f, &frame);
    assert_int_equal(frame.type, NU_FRAME_ERROR);
    assert_string_equal(json_string_value(json_object_get(frame.json,
                                                          "message")),
                        "test: cannot serve: expected a request frame with "
                        "an integer id");
    nu_frame_free(&frame);
}

static char reported[256];

static void report_error(int fd, const char *message)
{
    snprintf(reported, sizeof reported, "%s", message);
    nu__serve_error(fd, message);
}

static void test_serve_report_error_hook(void **state)
{
    fixture_t *f = *state;
    nu_frame_t frame;

    f->serve.version = 1;
    f->serve.report_error = report_error;
    reported[0] = '\0';
    send_frame(f, NU_FRAME_HELLO, json_pack("{s:i}", "id", 1));
    assert_int_equal(serve_all(f), 1);
    assert_non_null(strstr(reported, "cannot serve"));
    read_frame(f, &frame);
    assert_int_equal(frame.type, NU_FRAME_ERROR);
    nu_frame_free(&frame);
}

static void test_serve_executor_tools(void **state)
{
    fixture_t *f = *state;
    nu_frame_t response;

    f->serve.version = 1;
    open_executor(f);
    send_frame(f, NU_FRAME_REQUEST, json_pack("{s:i,s:s,s:s,s:s}", "id", 1,
                                              "tool", "write", "path",
                                              "notes.txt", "content",
                                              "hello"));
    send_frame(f, NU_FRAME_REQUEST, json_pack("{s:i,s:s,s:s,s:b}", "id", 2,
                                              "tool", "read", "path",
                                              "notes.txt", "want_blob", 1));
    send_frame(f, NU_FRAME_REQUEST, json_pack("{s:i,s:s,s:s}", "id", 3,
                                              "tool", "read", "path",
                                              "notes.txt"));
    assert_int_equal(serve_all(f), 0);

    read_frame(f, &response);
    assert_int_equal(json_integer_value(json_object_get(response.json, "id")),
                     1);
    assert_true(json_is_true(json_object_get(response.json, "ok")));
    nu_frame_free(&response);

    /* want_blob: the content travels as the frame's blob. */
    read_frame(f, &response);
    assert_int_equal(json_integer_value(json_object_get(response.json, "id")),
                     2);
    assert_int_equal(response.blob_len, 5);
    assert_memory_equal(response.blob, "hello", 5);
    nu_frame_free(&response);

    read_frame(f, &response);
    assert_int_equal(response.blob_len, 0);
    assert_non_null(strstr(json_string_value(json_object_get(response.json,
                                                             "content")),
                           "hello"));
    nu_frame_free(&response);
}

static void test_serve_set_env(void **state)
{
    fixture_t *f = *state;
    nu_frame_t response;

    f->serve.version = 1;
    f->serve.accept_set_env = true;
    send_frame(f, NU_FRAME_REQUEST, json_pack("{s:i,s:s,s:[s,s]}", "id", 1,
                                              "tool", NU__SET_ENV, "env",
                                              "A=1", "TOKEN=secret"));
    assert_int_equal(serve_all(f), 0);
    read_frame(f, &response);
    assert_true(json_is_true(json_object_get(response.json, "ok")));
    assert_int_equal(json_integer_value(json_object_get(response.json,
                                                        "count")), 2);
    nu_frame_free(&response);

    assert_non_null(f->serve.env);
    assert_string_equal(f->serve.env[0], "A=1");
    assert_string_equal(f->serve.env[1], "TOKEN=secret");
    assert_null(f->serve.env[2]);
    assert_ptr_equal(f->serve.executor.cfg.base_env, f->serve.env);
}

static void test_serve_set_env_rejects_bad_input(void **state)
{
    fixture_t *f = *state;
    json_t *too_many = json_array();
    nu_frame_t response;
    const char *kind;

    for (int i = 0; i <= NU__SET_ENV_MAX; i++)
        json_array_append_new(too_many, json_string("A=1"));
    f->serve.version = 1;
    f->serve.accept_set_env = true;
    send_frame(f, NU_FRAME_REQUEST, json_pack("{s:i,s:s,s:[s]}", "id", 1,
                                              "tool", NU__SET_ENV, "env",
                                              "=value"));
    send_frame(f, NU_FRAME_REQUEST, json_pack("{s:i,s:s,s:s}", "id", 2,
                                              "tool", NU__SET_ENV, "env",
                                              "A=1"));
    send_frame(f, NU_FRAME_REQUEST, json_pack("{s:i,s:s,s:o}", "id", 3,
                                              "tool", NU__SET_ENV, "env",
                                              too_many));
    assert_int_equal(serve_all(f), 0);

    for (int id = 1; id <= 3; id++) {
        read_frame(f, &response);
        assert_int_equal(json_integer_value(json_object_get(response.json,
                                                            "id")), id);
        assert_false(json_is_true(json_object_get(response.json, "ok")));
        kind = json_string_value(json_object_get(response.json, "kind"));
        assert_string_equal(kind, "invalid_request");
        nu_frame_free(&response);
    }
    assert_null(f->serve.env);
}

/* The pod init does not accept _set_env: the name goes to the executor,
 * which does not know it. */
static void test_serve_set_env_off_by_default(void **state)
{
    fixture_t *f = *state;
    nu_frame_t response;

    f->serve.version = 1;
    open_executor(f);
    send_frame(f, NU_FRAME_REQUEST, json_pack("{s:i,s:s,s:[s]}", "id", 1,
                                              "tool", NU__SET_ENV, "env",
                                              "A=1"));
    assert_int_equal(serve_all(f), 0);
    read_frame(f, &response);
    assert_false(json_is_true(json_object_get(response.json, "ok")));
    nu_frame_free(&response);
    assert_null(f->serve.env);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_serve_hello_negotiates, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_serve_hello_rejects_request,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_serve_hello_rejects_version,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_serve_ready_reply, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_serve_ping_echoes_id, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_serve_rejects_missing_id, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_serve_report_error_hook, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_serve_executor_tools, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_serve_set_env, setup, teardown),
        cmocka_unit_test_setup_teardown(test_serve_set_env_rejects_bad_input,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_serve_set_env_off_by_default,
                                        setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
