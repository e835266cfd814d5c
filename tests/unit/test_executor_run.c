/*
 * test_executor_run.c - the run tool: exit status, output capture, stdin,
 * environment isolation, timeouts and process group cleanup.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "executor_int.h"
#include "test_executor_util.h"

static int setup(void **state)
{
    nu_executor_config_t cfg;
    ws_t *w;

    nu_executor_config_init(&cfg);
    cfg.term_grace_ms = 300;
    w = ws_new(&cfg);
    ws_mkdir(w, "sub");
    ws_puts(w, "plain.txt", "not a program\n");
    ws_symlink(w, "out", w->outside);
    *state = w;
    return 0;
}

static int teardown(void **state)
{
    ws_free(*state);
    return 0;
}

/* Count live (not zombie) processes whose process group is pgid. */
static int live_in_group(long pgid)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    int live = 0;

    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        char path[300], buf[512], state;
        long ppid, pgrp;
        FILE *f;
        char *close_paren;

        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        f = fopen(path, "r");
        if (f == NULL)
            continue;
        if (fgets(buf, sizeof buf, f) != NULL) {
            close_paren = strrchr(buf, ')');
            if (close_paren != NULL &&
                sscanf(close_paren + 1, " %c %ld %ld", &state, &ppid, &pgrp) == 3 &&
                pgrp == pgid && state != 'Z' && state != 'X')
                live++;
        }
        fclose(f);
    }
    closedir(d);
    return live;
}

/* SIGKILL is delivered asynchronously: give the kernel up to two seconds
 * to finish off the group before counting. */
static int live_after_kill(long pgid)
{
    int live = live_in_group(pgid);

    for (int i = 0; i < 200 && live > 0; i++) {
        usleep(10000);
        live = live_in_group(pgid);
    }
    return live;
}

static json_t *run_fails(ws_t *w, const char *call, const char *kind)
{
    int rc;
    json_t *r = ws_call(w, call, &rc);

    assert_int_not_equal(rc, NU_OK);
    assert_string_equal(str_field(r, "kind"), kind);
    return r;
}

static void test_run_argv_echo(void **state)
{
    json_t *r = ws_ok(*state, "{\"tool\":\"run\",\"argv\":[\"echo\",\"hello\",\"world\"]}");

    assert_string_equal(str_field(r, "stdout"), "hello world\n");
    assert_string_equal(str_field(r, "stdout_encoding"), "utf-8");
    assert_string_equal(str_field(r, "stderr"), "");
    assert_int_equal(int_field(r, "exit_code"), 0);
    assert_true(json_is_null(json_object_get(r, "signal")));
    assert_true(json_is_false(json_object_get(r, "truncated")));
    assert_true(int_field(r, "duration_ms") >= 0);
    json_decref(r);
}

static void test_run_shell_command(void **state)
{
    json_t *r = ws_ok(*state, "{\"tool\":\"run\",\"command\":\"printf 'a\\\\nb\\\\n' | wc -l; "
                              "echo err >&2\"}");

    assert_string_equal(str_field(r, "stdout"), "2\n");
    assert_string_equal(str_field(r, "stderr"), "err\n");
    json_decref(r);
}

static void test_run_nonzero_exit_is_success(void **state)
{
    json_t *r = ws_ok(*state, "{\"tool\":\"run\",\"argv\":[\"sh\",\"-c\",\"exit 3\"]}");

    assert_int_equal(int_field(r, "exit_code"), 3);
    json_decref(r);
}

static void test_run_reports_signal(void **state)
{
    json_t *r = ws_ok(*state, "{\"tool\":\"run\",\"command\":\"kill -9 $$\"}");

    assert_int_equal(int_field(r, "signal"), 9);
    assert_true(json_is_null(json_object_get(r, "exit_code")));
    json_decref(r);
}

static void test_run_stdin(void **state)
{
    json_t *r = ws_ok(*state, "{\"tool\":\"run\",\"argv\":[\"cat\"],\"stdin\":\"line one\\n\"}");

    assert_string_equal(str_field(r, "stdout"), "line one\n");
    json_decref(r);

    r = ws_ok(*state, "{\"tool\":\"run\",\"argv\":[\"cat\"],\"stdin\":\"AAEC\","
                      "\"stdin_encoding\":\"base64\"}");
    assert_string_equal(str_field(r, "stdout_encoding"), "base64");
    assert_string_equal(str_field(r, "stdout"), "AAEC");
    json_decref(r);
}

static void test_run_stdin_defaults_to_empty(void **state)
{
    json_t *r = ws_ok(*state, "{\"tool\":\"run\",\"argv\":[\"cat\"],\"timeout\":5}");

    assert_string_equal(str_field(r, "stdout"), "");
    json_decref(r);
}

/* A megabyte through cat while its output is read: no pipe may fill up
 * and block the other. */
static void test_run_large_stdin_no_deadlock(void **state)
{
    size_t n = 1u << 20;
    json_t *call = json_object(), *args, *r = NULL;
    char *data = malloc(n + 1);
    nu_err_t err;
    ws_t *w = *state;

    assert_non_null(data);
    memset(data, 'x', n);
    data[n] = '\0';
    args = json_pack("{s:s, s:[s], s:s, s:i}", "tool", "run", "argv", "cat", "stdin", data,
                     "timeout", 20);
    assert_non_null(args);
    assert_int_equal(nu_exec_tool(&w->ex, args, &r, NULL, &err), NU_OK);
    assert_int_equal(json_string_length(json_object_get(r, "stdout")), n);
    assert_true(json_is_false(json_object_get(r, "truncated")));
    json_decref(r);
    json_decref(args);
    json_decref(call);
    free(data);
}

static void test_run_both_streams_large(void **state)
{
    json_t *r = ws_ok(*state, "{\"tool\":\"run\",\"command\":"
                              "\"head -c 300000 /dev/zero | tr '\\\\0' a; "
                              "head -c 300000 /dev/zero | tr '\\\\0' b >&2\"}");

    assert_int_equal(json_string_length(json_object_get(r, "stdout")), 300000);
    assert_int_equal(json_string_length(json_object_get(r, "stderr")), 300000);
    json_decref(r);
}

static void test_run_output_cap(void **state)
{
    nu_executor_config_t cfg;
    ws_t *w;
    json_t *r;

    (void)state;
    nu_executor_config_init(&cfg);
    cfg.max_output_bytes = 1000;
    w = ws_new(&cfg);
    r = ws_ok(w, "{\"tool\":\"run\",\"command\":\"yes | head -c 100000\"}");
    assert_int_equal(json_string_length(json_object_get(r, "stdout")), 1000);
    assert_true(json_is_true(json_object_get(r, "truncated")));
    assert_true(json_is_true(json_object_get(r, "stdout_truncated")));
    assert_true(json_is_false(json_object_get(r, "stderr_truncated")));
    assert_int_equal(int_field(r, "exit_code"), 0);
    json_decref(r);
    ws_free(w);
}

static void test_run_env_isolated(void **state)
{
    json_t *r;
    const char *out;

    setenv("NU_HOST_SECRET", "leaked", 1);
    r = ws_ok(*state, "{\"tool\":\"run\",\"argv\":[\"env\"]}");
    out = str_field(r, "stdout");
    assert_null(strstr(out, "NU_HOST_SECRET"));
    assert_non_null(strstr(out, "PATH=/usr/local/bin:/usr/bin:/bin\n"));
    assert_non_null(strstr(out, "HOME=/workspace\n"));
    assert_non_null(strstr(out, "LANG=C.UTF-8\n"));
    assert_non_null(strstr(out, "TERM=dumb\n"));
    json_decref(r);
    unsetenv("NU_HOST_SECRET");
}

static void test_run_call_env(void **state)
{
    json_t *r = ws_ok(*state, "{\"tool\":\"run\",\"argv\":[\"env\"],"
                              "\"env\":{\"FOO\":\"bar baz\",\"TERM\":\"xterm\"}}");
    const char *out = str_field(r, "stdout");

    assert_non_null(strstr(out, "FOO=bar baz\n"));
    assert_non_null(strstr(out, "TERM=xterm\n"));
    assert_null(strstr(out, "TERM=dumb"));
    json_decref(r);

    ws_fails(*state, "{\"tool\":\"run\",\"argv\":[\"env\"],\"env\":{\"A=B\":\"x\"}}",
             "invalid_request");
    ws_fails(*state, "{\"tool\":\"run\",\"argv\":[\"env\"],\"env\":{\"A\":1}}",
             "invalid_request");
    ws_fails(*state, "{\"tool\":\"run\",\"argv\":[\"env\"],\"env\":[\"A=B\"]}",
             "invalid_request");
}

static void test_run_extra_env_wins(void **state)
{
    static const char *const extra[] = { "NU_CRED=from-host", NULL };
    nu_executor_config_t cfg;
    ws_t *w;
    json_t *r;

    (void)state;
    nu_executor_config_init(&cfg);
    cfg.extra_env = extra;
    w = ws_new(&cfg);
    r = ws_ok(w, "{\"tool\":\"run\",\"argv\":[\"env\"],\"env\":{\"NU_CRED\":\"forged\"}}");
    assert_non_null(strstr(str_field(r, "stdout"), "NU_CRED=from-host\n"));
    assert_null(strstr(str_field(r, "stdout"), "forged"));
    json_decref(r);
    ws_free(w);
}

static void test_run_cwd(void **state)
{
    json_t *r = ws_ok(*state, "{\"tool\":\"run\",\"argv\":[\"pwd\"],\"cwd\":\"sub\"}");
    const char *out = str_field(r, "stdout");

    assert_string_equal(str_field(r, "cwd"), "sub");
    assert_true(strlen(out) > 9);
    assert_string_equal(out + strlen(out) - 9, "root/sub\n");
    json_decref(r);

    ws_fails(*state, "{\"tool\":\"run\",\"argv\":[\"pwd\"],\"cwd\":\"../outside\"}", "path_denied");
    ws_fails(*state, "{\"tool\":\"run\",\"argv\":[\"pwd\"],\"cwd\":\"out\"}", "path_denied");
    ws_fails(*state, "{\"tool\":\"run\",\"argv\":[\"pwd\"],\"cwd\":\"/tmp\"}", "path_denied");
    ws_fails(*state, "{\"tool\":\"run\",\"argv\":[\"pwd\"],\"cwd\":\"plain.txt\"}",
             "invalid_request");
    ws_fails(*state, "{\"tool\":\"run\",\"argv\":[\"pwd\"],\"cwd\":\"nope\"}", "not_found");
}

static void test_run_program_not_found(void **state)
{
    json_t *r = run_fails(*state, "{\"tool\":\"run\",\"argv\":[\"no-such-program-nu\"]}",
                          "not_found");

    assert_int_equal(int_field(r, "exit_code"), 127);
    json_decref(r);

    r = run_fails(*state, "{\"tool\":\"run\",\"command\":\"no-such-program-nu\"}", "not_found");
    assert_int_equal(int_field(r, "exit_code"), 127);
    assert_non_null(strstr(str_field(r, "stderr"), "not found"));
    json_decref(r);

    r = run_fails(*state, "{\"tool\":\"run\",\"argv\":[\"/no/such/path\"]}", "not_found");
    json_decref(r);
}

static void test_run_not_executable(void **state)
{
    json_t *r = run_fails(*state, "{\"tool\":\"run\",\"argv\":[\"./plain.txt\"]}", "io_error");

    assert_int_equal(int_field(r, "exit_code"), 126);
    json_decref(r);
}

static void test_run_timeout_kills_group(void **state)
{
    json_t *r = run_fails(*state, "{\"tool\":\"run\",\"command\":\"sleep 100 & sleep 100\","
                                  "\"timeout\":0.5}", "timeout");

    assert_true(json_is_true(json_object_get(r, "timed_out")));
    assert_true(int_field(r, "duration_ms") >= 500);
    assert_true(int_field(r, "duration_ms") < 5000);
    assert_int_equal(live_after_kill(int_field(r, "pid")), 0);
    json_decref(r);
}

static void test_run_timeout_ignoring_sigterm(void **state)
{
    json_t *r = run_fails(*state, "{\"tool\":\"run\",\"command\":"
                                  "\"trap '' TERM; echo started; sleep 100\","
                                  "\"timeout\":0.3}", "timeout");

    assert_string_equal(str_field(r, "stdout"), "started\n");
    assert_int_equal(int_field(r, "signal"), 9);
    assert_true(int_field(r, "duration_ms") < 5000);
    assert_int_equal(live_after_kill(int_field(r, "pid")), 0);
    json_decref(r);
}

static void test_run_background_process_killed(void **state)
{
    json_t *r = ws_ok(*state, "{\"tool\":\"run\",\"command\":\"sleep 100 & echo started\","
                              "\"timeout\":10}");

    assert_string_equal(str_field(r, "stdout"), "started\n");
    assert_true(int_field(r, "duration_ms") < 5000);
    assert_int_equal(live_after_kill(int_field(r, "pid")), 0);
    json_decref(r);
}

static void test_run_closes_descriptors(void **state)
{
    int leak = fcntl(2, F_DUPFD, 50);
    json_t *r;
    const char *out;

    assert_true(leak >= 50);
    r = ws_ok(*state, "{\"tool\":\"run\",\"argv\":[\"ls\",\"/proc/self/fd\"]}");
    out = str_field(r, "stdout");
    assert_string_equal(out, "0\n1\n2\n3\n");
    json_decref(r);
    close(leak);
}

static void test_run_stdin_limit(void **state)
{
    nu_executor_config_t cfg;
    ws_t *w;

    (void)state;
    nu_executor_config_init(&cfg);
    cfg.max_stdin_bytes = 4;
    w = ws_new(&cfg);
    json_decref(ws_ok(w, "{\"tool\":\"run\",\"argv\":[\"cat\"],\"stdin\":\"1234\"}"));
    ws_fails(w, "{\"tool\":\"run\",\"argv\":[\"cat\"],\"stdin\":\"12345\"}",
             "invalid_request");
    ws_free(w);
}

static void test_run_timeout_clamped(void **state)
{
    nu_executor_config_t cfg;
    ws_t *w;
    json_t *r;

    (void)state;
    nu_executor_config_init(&cfg);
    cfg.max_timeout_ms = 1000;
    w = ws_new(&cfg);
    r = ws_ok(w, "{\"tool\":\"run\",\"argv\":[\"true\"],\"timeout\":999999}");
    assert_int_equal(int_field(r, "timeout_ms"), 1000);
    json_decref(r);
    ws_free(w);
}

static void test_run_invalid_requests(void **state)
{
    ws_t *w = *state;

    ws_fails(w, "{\"tool\":\"run\"}", "invalid_request");
    ws_fails(w, "{\"tool\":\"run\",\"argv\":[\"echo\"],\"command\":\"echo\"}", "invalid_request");
    ws_fails(w, "{\"tool\":\"run\",\"argv\":[]}", "invalid_request");
    ws_fails(w, "{\"tool\":\"run\",\"argv\":\"echo hi\"}", "invalid_request");
    ws_fails(w, "{\"tool\":\"run\",\"argv\":[\"echo\",1]}", "invalid_request");
    ws_fails(w, "{\"tool\":\"run\",\"argv\":[\"\"]}", "invalid_request");
    ws_fails(w, "{\"tool\":\"run\",\"argv\":[\"echo\\u0000x\"]}", "invalid_request");
    ws_fails(w, "{\"tool\":\"run\",\"argv\":[\"true\"],\"timeout\":0}", "invalid_request");
    ws_fails(w, "{\"tool\":\"run\",\"argv\":[\"true\"],\"timeout\":\"1s\"}", "invalid_request");
    ws_fails(w, "{\"tool\":\"run\",\"argv\":[\"true\"],\"stdin\":5}", "invalid_request");
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_run_argv_echo),
        T(test_run_shell_command),
        T(test_run_nonzero_exit_is_success),
        T(test_run_reports_signal),
        T(test_run_stdin),
        T(test_run_stdin_defaults_to_empty),
        T(test_run_large_stdin_no_deadlock),
        T(test_run_both_streams_large),
        T(test_run_output_cap),
        T(test_run_env_isolated),
        T(test_run_call_env),
        T(test_run_extra_env_wins),
        T(test_run_cwd),
        T(test_run_program_not_found),
        T(test_run_not_executable),
        T(test_run_timeout_kills_group),
        T(test_run_timeout_ignoring_sigterm),
        T(test_run_background_process_killed),
        T(test_run_closes_descriptors),
        T(test_run_stdin_limit),
        T(test_run_timeout_clamped),
        T(test_run_invalid_requests),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
