/*
 * test_sandbox.c - pod lifecycle, requests, masks and option checks of the
 * namespace sandbox, against real namespaces.
 *
 * The test program itself links libnucleus, so it serves as the pod init
 * (see podinit.c).  Tests that need user namespaces or root skip with a
 * message when the host lacks them.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <pthread.h>
#include <unistd.h>

#include <cmocka.h>

#include "nucleus/sandbox.h"

typedef struct fixture {
    char workspace[64];
    nu_sandbox_t *sb;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);

    snprintf(f->workspace, sizeof f->workspace, "/tmp/nu-sbtest-XXXXXX");
    if (mkdtemp(f->workspace) == NULL)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    char cmd[128];

    nu_sandbox_close(f->sb);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->workspace);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[256];
    FILE *fp;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static void create_pod(fixture_t *f, const char *const *block,
                       const char *const *write_block)
{
    nu_sandbox_opts_t opts;
    nu_err_t err = { 0 };
    int rc;

    nu_sandbox_opts_init(&opts);
    opts.workspace = f->workspace;
    opts.block_paths = block;
    opts.write_block_paths = write_block;
    rc = nu_sandbox_create(&opts, &f->sb, &err);
    if (rc == NU_ENOTSUP || (rc == NU_ESANDBOX && geteuid() != 0 &&
                             strstr(err.msg, "namespace") != NULL))
        skip();
    if (rc != NU_OK)
        fail_msg("create failed: %s", err.msg);
}

/* Run argv (NULL-terminated) in the pod; returns the result object. */
static json_t *run(fixture_t *f, const char *shell_command)
{
    json_t *call = json_pack("{s:s,s:[s,s,s]}", "tool", "run", "argv",
                             "/bin/sh", "-c", shell_command);
    json_t *result = NULL;
    nu_err_t err = { 0 };

    assert_int_equal(nu_sandbox_tool(f->sb, call, &result, &err), NU_OK);
    json_decref(call);
    assert_non_null(result);
    return result;
}

static const char *field(const json_t *obj, const char *name)
{
    const char *s = json_string_value(json_object_get(obj, name));
    return s != NULL ? s : "";
}

static void test_sandbox_ping_reports_pid_1(void **state)
{
    fixture_t *f = *state;
    json_t *call = json_pack("{s:s}", "tool", "ping");
    json_t *result = NULL;
    nu_err_t err;

    create_pod(f, NULL, NULL);
    assert_int_equal(nu_sandbox_state(f->sb), NU_SANDBOX_READY);
    assert_true(nu_sandbox_pid(f->sb) > 1);
    assert_int_equal(nu_sandbox_tool(f->sb, call, &result, &err), NU_OK);
    assert_true(json_is_true(json_object_get(result, "ok")));
    assert_int_equal(json_integer_value(json_object_get(result, "pid")), 1);
    json_decref(call);
    json_decref(result);
}

static void test_sandbox_run_sees_workspace(void **state)
{
    fixture_t *f = *state;
    json_t *result;

    write_file(f->workspace, "hello.txt", "hello from the host\n");
    create_pod(f, NULL, NULL);
    result = run(f, "cat /workspace/hello.txt; echo made > /workspace/out");
    assert_string_equal(field(result, "stdout"), "hello from the host\n");
    assert_int_equal(json_integer_value(json_object_get(result,
                                                        "exit_code")), 0);
    json_decref(result);

    /* The write went through to the host directory. */
    char path[128];
    struct stat st;
    snprintf(path, sizeof path, "%s/out", f->workspace);
    assert_int_equal(stat(path, &st), 0);
}

static void test_sandbox_init_is_confined(void **state)
{
    fixture_t *f = *state;
    json_t *result;

    create_pod(f, NULL, NULL);
    result = run(f, "grep -E '^(CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' "
                 "/proc/self/status | tr -s '\\t' ' '");
    assert_string_equal(field(result, "stdout"),
                        "CapEff: 0000000000000000\n"
                        "CapBnd: 0000000000000000\n"
                        "CapAmb: 0000000000000000\n"
                        "NoNewPrivs: 1\n"
                        "Seccomp: 2\n");
    json_decref(result);
}

static void test_sandbox_masks_block_and_write_block(void **state)
{
    fixture_t *f = *state;
    static const char *const block[] = { ".env", "secrets", NULL };
    static const char *const write_block[] = { "Makefile", NULL };
    char dir[128];
    json_t *result;

    write_file(f->workspace, ".env", "TOKEN=abc\n");
    write_file(f->workspace, "Makefile", "all:\n");
    snprintf(dir, sizeof dir, "%s/secrets", f->workspace);
    assert_int_equal(mkdir(dir, 0700), 0);
    write_file(dir, "key", "private\n");

    create_pod(f, block, write_block);
    result = run(f, "cat /workspace/.env; ls /workspace/secrets; "
                 "echo x >> /workspace/Makefile || echo readonly; "
                 "cat /workspace/Makefile");
    assert_string_equal(field(result, "stdout"), "readonly\nall:\n");
    json_decref(result);
}

static void test_sandbox_collect_expands_globs(void **state)
{
    fixture_t *f = *state;
    char dir[128];
    char **block = NULL;
    char **write_block = NULL;
    nu_perm_t perm;
    nu_err_t err;

    snprintf(dir, sizeof dir, "%s/sub", f->workspace);
    assert_int_equal(mkdir(dir, 0755), 0);
    write_file(dir, ".env", "x");
    write_file(f->workspace, "id_rsa", "x");
    write_file(f->workspace, ".bashrc", "x");
    write_file(f->workspace, "main.c", "x");

    nu_perm_init_top(&perm);
    assert_int_equal(nu_strset_add(&perm.paths.block, ".env"), NU_OK);
    assert_int_equal(nu_strset_add(&perm.paths.block, "id_rsa"), NU_OK);
    assert_int_equal(nu_strset_add(&perm.paths.write_block, ".bashrc"),
                     NU_OK);

    assert_int_equal(nu_sandbox_collect(f->workspace, &perm, 0, &block,
                                        &write_block, &err), NU_OK);
    assert_non_null(block[0]);
    assert_non_null(block[1]);
    assert_null(block[2]);
    assert_true((strcmp(block[0], "sub/.env") == 0 &&
                 strcmp(block[1], "id_rsa") == 0) ||
                (strcmp(block[1], "sub/.env") == 0 &&
                 strcmp(block[0], "id_rsa") == 0));
    assert_string_equal(write_block[0], ".bashrc");
    assert_null(write_block[1]);

    nu_sandbox_free_list(block);
    nu_sandbox_free_list(write_block);
    nu_perm_free(&perm);
}

static void test_sandbox_kill_marks_dead(void **state)
{
    fixture_t *f = *state;
    json_t *call = json_pack("{s:s}", "tool", "ping");
    json_t *result = NULL;
    nu_err_t err;

    create_pod(f, NULL, NULL);
    assert_int_equal(nu_sandbox_kill(f->sb, SIGKILL), NU_OK);
    assert_int_not_equal(nu_sandbox_tool(f->sb, call, &result, &err), NU_OK);
    assert_string_equal(field(result, "kind"), "sandbox_error");
    assert_int_equal(nu_sandbox_state(f->sb), NU_SANDBOX_DEAD);
    json_decref(call);
    json_decref(result);
}

static void test_sandbox_rejects_bad_options(void **state)
{
    fixture_t *f = *state;
    static const char *const dotdot[] = { "../etc", NULL };
    static const char *const absolute[] = { "/etc/passwd", NULL };
    nu_sandbox_opts_t opts;
    nu_sandbox_t *sb = NULL;
    nu_err_t err;

    nu_sandbox_opts_init(&opts);
    opts.workspace = "relative/dir";
    assert_int_equal(nu_sandbox_create(&opts, &sb, &err), NU_EINVAL);
    assert_non_null(strstr(err.msg, "absolute"));

    opts.workspace = "/nonexistent/nucleus-workspace";
    assert_int_equal(nu_sandbox_create(&opts, &sb, &err), NU_ENOENT);

    opts.workspace = f->workspace;
    opts.block_paths = dotdot;
    assert_int_equal(nu_sandbox_create(&opts, &sb, &err), NU_EINVAL);
    assert_non_null(strstr(err.msg, "'..'"));

    opts.block_paths = absolute;
    assert_int_equal(nu_sandbox_create(&opts, &sb, &err), NU_EINVAL);
    assert_null(sb);
}

static void test_sandbox_reports_init_failure(void **state)
{
    fixture_t *f = *state;
    static const char *const env[] = { "NOEQUALS", NULL };
    nu_sandbox_opts_t opts;
    nu_sandbox_t *sb = NULL;
    nu_err_t err;

    nu_sandbox_opts_init(&opts);
    opts.workspace = f->workspace;
    opts.env = env;
    assert_int_equal(nu_sandbox_create(&opts, &sb, &err), NU_EINVAL);
    assert_non_null(strstr(err.msg, "NAME=value"));

    /* A rootfs without the init's libraries: the child's exec fails and
     * its error frame reaches us. */
    opts.env = NULL;
    opts.rootfs = f->workspace;
    assert_int_equal(nu_sandbox_create(&opts, &sb, &err), NU_ESANDBOX);
    assert_non_null(strstr(err.msg, "sandbox: cannot"));
    assert_null(sb);
}

typedef struct collected {
    char out[256];
    char err[256];
    int frames;
} collected_t;

static void collect(const char *stream, const void *data, size_t len,
                    void *userdata)
{
    collected_t *c = userdata;
    char *dst = strcmp(stream, "stderr") == 0 ? c->err : c->out;
    size_t used = strlen(dst);

    if (used + len < sizeof c->out)
        memcpy(dst + used, data, len);
    c->frames++;
}

static void test_sandbox_run_streams_output(void **state)
{
    fixture_t *f = *state;
    collected_t c = { 0 };
    nu_frame_t response = { 0 };
    nu_err_t err;
    json_t *call = json_pack("{s:s,s:[s,s,s],s:b}", "tool", "run", "argv",
                             "/bin/sh", "-c",
                             "echo out; echo err >&2; exit 3", "stream", 1);

    create_pod(f, NULL, NULL);
    assert_int_equal(nu_sandbox_call(f->sb, call, NULL, 0, collect, &c,
                                     &response, &err), NU_OK);
    assert_string_equal(c.out, "out\n");
    assert_string_equal(c.err, "err\n");
    assert_true(c.frames >= 2);
    assert_int_equal(json_integer_value(json_object_get(response.json,
                                                        "exit_code")), 3);
    assert_null(json_object_get(response.json, "stdout"));
    nu_frame_free(&response);
    json_decref(call);

    /* A missing program is reported as not_found with status 127. */
    call = json_pack("{s:s,s:[s],s:b}", "tool", "run", "argv",
                     "/nonexistent", "stream", 1);
    assert_int_equal(nu_sandbox_call(f->sb, call, NULL, 0, collect, &c,
                                     &response, &err), NU_OK);
    assert_string_equal(field(response.json, "kind"), "not_found");
    assert_int_equal(json_integer_value(json_object_get(response.json,
                                                        "exit_code")), 127);
    nu_frame_free(&response);
    json_decref(call);
}

static void test_sandbox_stream_timeout_kills_group(void **state)
{
    fixture_t *f = *state;
    nu_frame_t response = { 0 };
    nu_err_t err;
    json_t *call = json_pack("{s:s,s:[s,s,s],s:b,s:f}", "tool", "run",
                             "argv", "/bin/sh", "-c", "sleep 30 & sleep 30",
                             "stream", 1, "timeout", 0.3);
    json_t *result;

    create_pod(f, NULL, NULL);
    assert_int_equal(nu_sandbox_call(f->sb, call, NULL, 0, NULL, NULL,
                                     &response, &err), NU_OK);
    assert_true(json_is_true(json_object_get(response.json, "timed_out")));
    assert_string_equal(field(response.json, "kind"), "timeout");
    nu_frame_free(&response);
    json_decref(call);

    /* Neither sleep survived: the whole group was killed.  A killed sleep
     * may still be a zombie until the init reaps it, so count live ones. */
    result = run(f, "ps -e -o stat=,comm= 2>/dev/null | "
                 "awk '$2 == \"sleep\" && $1 !~ /^Z/' | wc -l");
    assert_string_equal(field(result, "stdout"), "0\n");
    json_decref(result);
}

static void test_sandbox_put_file_under_run(void **state)
{
    fixture_t *f = *state;
    json_t *call = json_pack("{s:s,s:s}", "tool", "_put_run_file", "path",
                             "x");
    json_t *result;
    nu_err_t err;

    create_pod(f, NULL, NULL);
    assert_int_equal(nu_sandbox_put_file(f->sb, "svid/svid.pem", "CERT\n",
                                         5, 0644, &err), NU_OK);
    assert_int_equal(nu_sandbox_put_file(f->sb, "svid/svid.pem", "NEW\n",
                                         4, 0600, &err), NU_OK);
    result = run(f, "cat /run/nucleus/svid/svid.pem; "
                 "stat -c %a /run/nucleus/svid/svid.pem");
    assert_string_equal(field(result, "stdout"), "NEW\n600\n");
    json_decref(result);

    assert_int_equal(nu_sandbox_put_file(f->sb, "../etc/passwd", "x", 1,
                                         0600, &err), NU_EIO);
    assert_int_equal(nu_sandbox_put_file(f->sb, "/abs", "x", 1, 0600, &err),
                     NU_EIO);

    /* A symlink planted by an agent does not redirect the write. */
    result = run(f, "ln -s /workspace /run/nucleus/evil");
    json_decref(result);
    assert_int_equal(nu_sandbox_put_file(f->sb, "evil/x", "x", 1, 0600,
                                         &err), NU_EIO);
    char path[128];
    snprintf(path, sizeof path, "%s/x", f->workspace);
    assert_int_equal(access(path, F_OK), -1);

    /* The pipeline entry point cannot send host-only requests. */
    result = NULL;
    assert_int_equal(nu_sandbox_tool(f->sb, call, &result, &err), NU_EINVAL);
    assert_string_equal(field(result, "kind"), "invalid_request");
    json_decref(result);
    json_decref(call);
}

/* Read the first line of the cgroup file of the pod's cgroup in a v1
 * hierarchy; returns false when that hierarchy is not in use. */
static bool read_cgroup(const char *controller, const char *id,
                        const char *file, char *out, size_t size)
{
    char own[256] = "";
    char line[512];
    char path[1024];
    FILE *fp = fopen("/proc/self/cgroup", "r");

    while (fp != NULL && fgets(line, sizeof line, fp) != NULL) {
        char *list = strchr(line, ':');
        char *cg = list != NULL ? strchr(list + 1, ':') : NULL;
        if (cg == NULL)
            continue;
        *cg = '\0';
        if (strcmp(list + 1, controller) == 0) {
            cg[strcspn(cg + 1, "\n") + 1] = '\0';
            snprintf(own, sizeof own, "%s", strcmp(cg + 1, "/") == 0 ? "" :
                     cg + 1);
        }
    }
    if (fp != NULL)
        fclose(fp);

    snprintf(path, sizeof path, "/sys/fs/cgroup/%s%s/nucleus/%s/%s",
             controller, own, id, file);
    fp = fopen(path, "r");
    if (fp == NULL)
        return false;
    if (fgets(out, (int)size, fp) == NULL)
        out[0] = '\0';
    out[strcspn(out, "\n")] = '\0';
    fclose(fp);
    return true;
}

static void test_sandbox_cgroup_limits_written(void **state)
{
    fixture_t *f = *state;
    nu_sandbox_opts_t opts;
    nu_err_t err = { 0 };
    char value[64];

    if (geteuid() != 0 || access("/sys/fs/cgroup/pids", W_OK) != 0)
        skip();
    nu_sandbox_opts_init(&opts);
    opts.workspace = f->workspace;
    opts.limits.memory_bytes = 64ULL << 20;
    opts.limits.pids = 77;
    opts.limits.cpu_millis = 250;
    assert_int_equal(nu_sandbox_create(&opts, &f->sb, &err), NU_OK);

    assert_true(read_cgroup("pids", nu_sandbox_id(f->sb), "pids.max", value,
                            sizeof value));
    assert_string_equal(value, "77");
    if (access("/sys/fs/cgroup/memory", W_OK) == 0) {
        assert_true(read_cgroup("memory", nu_sandbox_id(f->sb),
                                "memory.limit_in_bytes", value,
                                sizeof value));
        assert_string_equal(value, "67108864");
    }
    if (access("/sys/fs/cgroup/cpu", W_OK) == 0) {
        assert_true(read_cgroup("cpu", nu_sandbox_id(f->sb),
                                "cpu.cfs_quota_us", value, sizeof value));
        assert_string_equal(value, "25000");
    }

    /* The init itself is in the pod's pids cgroup. */
    assert_true(read_cgroup("pids", nu_sandbox_id(f->sb), "pids.current",
                            value, sizeof value));
    assert_true(atoi(value) >= 1);
}

static void *ping_many(void *arg)
{
    nu_sandbox_t *sb = arg;
    json_t *call = json_pack("{s:s}", "tool", "ping");
    long failures = 0;

    for (int i = 0; i < 25; i++) {
        json_t *result = NULL;
        nu_err_t err;

        if (nu_sandbox_tool(sb, call, &result, &err) != NU_OK ||
            !json_is_true(json_object_get(result, "ok")))
            failures++;
        json_decref(result);
    }
    json_decref(call);
    return (void *)failures;
}

/* Concurrent callers queue on the sandbox's lock; every call gets its own
 * response. */
static void test_sandbox_concurrent_callers_queue(void **state)
{
    fixture_t *f = *state;
    pthread_t threads[4];

    create_pod(f, NULL, NULL);
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&threads[i], NULL, ping_many, f->sb),
                         0);
    for (int i = 0; i < 4; i++) {
        void *failures;
        assert_int_equal(pthread_join(threads[i], &failures), 0);
        assert_int_equal((long)failures, 0);
    }
    assert_int_equal(nu_sandbox_state(f->sb), NU_SANDBOX_READY);
}

/* The init runs from a sealed memfd: even the host's root cannot modify
 * the program through /proc/<pid>/exe. */
static void test_sandbox_init_exe_is_sealed(void **state)
{
    fixture_t *f = *state;
    char path[64];
    int fd;

    create_pod(f, NULL, NULL);
    snprintf(path, sizeof path, "/proc/%ld/exe", (long)nu_sandbox_pid(f->sb));
    fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
        /* Opening may succeed; the write seal must still stop writes. */
        assert_int_equal(write(fd, "x", 1), -1);
        close(fd);
    }

    fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd >= 0) {
        assert_int_equal(ftruncate(fd, 0), -1);
        close(fd);
    }
}

static void test_sandbox_close_leaves_no_process(void **state)
{
    fixture_t *f = *state;
    pid_t pid;

    create_pod(f, NULL, NULL);
    pid = nu_sandbox_pid(f->sb);
    nu_sandbox_close(f->sb);
    f->sb = NULL;
    assert_int_equal(kill(pid, 0), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sandbox_ping_reports_pid_1,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_sandbox_run_sees_workspace,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_sandbox_init_is_confined,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_sandbox_masks_block_and_write_block, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sandbox_collect_expands_globs,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_sandbox_kill_marks_dead, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_sandbox_rejects_bad_options,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_sandbox_reports_init_failure,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_sandbox_run_streams_output,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_sandbox_stream_timeout_kills_group, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sandbox_cgroup_limits_written,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_sandbox_put_file_under_run,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_sandbox_concurrent_callers_queue,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_sandbox_init_exe_is_sealed,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_sandbox_close_leaves_no_process,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
