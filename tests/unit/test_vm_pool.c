/*
 * test_vm_pool.c - the vm tier's warm pool with real QEMU guests (TCG
 * here): low priority while waiting, replacement of a guest that died,
 * and one workspace and environment per acquired guest.
 *
 * The tests share one pool (it lives as long as the process), so they run
 * in order.  The group setup builds an image with the agent of this build
 * tree ($NU_BUILD_DIR/nucleus-vm-agent).  Every test skips with a printed
 * reason when not root (the pool's bind mounts), or when QEMU, a kernel
 * with 9p modules, BusyBox or the agent is missing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "nucleus/sandbox.h"
#include "nucleus/vm.h"

/* A pooled boot runs at nice 19 and may wait for other guests' CPU. */
#define POOL_WAIT_MS 240000

static struct {
    char image[64];
    char isolation[80];
    char skip_reason[1024];
    char ws1[64];
    char ws2[64];
} g;

static const char *const env_one[] = { "PATH=/bin:/usr/bin", "SECRET=one",
                                       NULL };
static const char *const env_two[] = { "PATH=/bin:/usr/bin", "SECRET=two",
                                       NULL };

static int group_setup(void **state)
{
    char agent[4096];
    const char *build = getenv("NU_BUILD_DIR");
    nu_vm_image_opts_t opts = { 0 };
    nu_err_t err;

    (void)state;
    snprintf(g.ws1, sizeof g.ws1, "/tmp/nu-vmpool-ws1-XXXXXX");
    snprintf(g.ws2, sizeof g.ws2, "/tmp/nu-vmpool-ws2-XXXXXX");
    snprintf(g.image, sizeof g.image, "/tmp/nu-vmpool-img-XXXXXX");
    if (mkdtemp(g.ws1) == NULL || mkdtemp(g.ws2) == NULL ||
        mkdtemp(g.image) == NULL)
        return -1;
    if (geteuid() != 0) {
        snprintf(g.skip_reason, sizeof g.skip_reason, "the warm pool needs "
                 "root (bind mounts)");
        return 0;
    }
    if (system("command -v qemu-system-x86_64 >/dev/null 2>&1") != 0) {
        snprintf(g.skip_reason, sizeof g.skip_reason,
                 "qemu-system-x86_64 not installed (qemu-system-x86)");
        return 0;
    }
    snprintf(agent, sizeof agent, "%s/nucleus-vm-agent",
             build != NULL ? build : ".");
    opts.agent = agent;
    opts.out_dir = g.image;
    if (nu_vm_image_build(&opts, &err) != NU_OK) {
        snprintf(g.skip_reason, sizeof g.skip_reason,
                 "cannot build the guest image: %s", err.msg);
        return 0;
    }
    snprintf(g.isolation, sizeof g.isolation, "vm:%s", g.image);
    setenv("NUCLEUS_VM_POOL", "1", 1);
    return 0;
}

static int group_teardown(void **state)
{
    char cmd[256];

    (void)state;
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s' '%s'", g.image, g.ws1,
             g.ws2);
    return system(cmd) == 0 ? 0 : -1;
}

static void skip_unless_ready(void)
{
    if (g.skip_reason[0] != '\0') {
        printf("SKIP: %s\n", g.skip_reason);
        skip();
    }
}

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static bool wait_pool_ready(int count)
{
    double deadline = now_ms() + POOL_WAIT_MS;

    while (now_ms() < deadline) {
        if (nu_vm_pool_ready() == count)
            return true;
        usleep(50000);
    }
    return false;
}

static nu_sandbox_t *create_pod(const char *workspace,
                                const char *const *env, nu_err_t *err)
{
    nu_sandbox_opts_t opts;
    nu_sandbox_t *sb = NULL;

    nu_sandbox_opts_init(&opts);
    opts.workspace = workspace;
    opts.isolation = g.isolation;
    opts.env = env;
    if (nu_sandbox_create(&opts, &sb, err) != NU_OK)
        return NULL;
    return sb;
}

/* stdout of a run call, or "" (the caller frees the result). */
static const char *run(nu_sandbox_t *sb, const char *command,
                       json_t **result)
{
    json_t *call = json_pack("{s:s,s:s}", "tool", "run", "command",
                             command);
    nu_err_t err = { 0 };
    int rc = nu_sandbox_tool(sb, call, result, &err);
    const char *out;

    json_decref(call);
    if (rc != NU_OK)
        fail_msg("run failed: %s", err.msg);
    out = json_string_value(json_object_get(*result, "stdout"));
    return out != NULL ? out : "";
}

/* The QEMU children of this process that no open pod owns: the pooled
 * guests.  Returns how many were found, at most max. */
static int child_qemus(pid_t *out, int max, const pid_t *skip, int nskip)
{
    DIR *dir = opendir("/proc");
    struct dirent *e;
    int n = 0;

    while (dir != NULL && (e = readdir(dir)) != NULL && n < max) {
        char path[64], line[512];
        long pid = strtol(e->d_name, NULL, 10);
        long ppid = 0;
        bool skipped = false;
        FILE *fp;
        char *paren;

        if (pid <= 0)
            continue;
        snprintf(path, sizeof path, "/proc/%ld/stat", pid);
        fp = fopen(path, "r");
        if (fp == NULL)
            continue;
        if (fgets(line, sizeof line, fp) == NULL)
            line[0] = '\0';
        fclose(fp);
        paren = strrchr(line, ')');
        if (strstr(line, "(qemu-system") == NULL || paren == NULL ||
            sscanf(paren + 2, "%*c %ld", &ppid) != 1 || ppid != getpid())
            continue;
        for (int i = 0; i < nskip; i++)
            skipped = skipped || skip[i] == (pid_t)pid;
        if (!skipped)
            out[n++] = (pid_t)pid;
    }
    if (dir != NULL)
        closedir(dir);
    return n;
}

/* The nice value of every thread of pid must be want. */
static void assert_nice(pid_t pid, long want)
{
    char path[64];
    struct dirent *e;
    DIR *dir;
    int threads = 0;

    snprintf(path, sizeof path, "/proc/%ld/task", (long)pid);
    dir = opendir(path);
    assert_non_null(dir);
    while ((e = readdir(dir)) != NULL) {
        char stat_path[384], line[512];
        long nice = -100;
        FILE *fp;
        char *paren;

        if (e->d_name[0] == '.')
            continue;
        snprintf(stat_path, sizeof stat_path, "%s/%s/stat", path, e->d_name);
        fp = fopen(stat_path, "r");
        if (fp == NULL)
            continue;
        if (fgets(line, sizeof line, fp) == NULL)
            line[0] = '\0';
        fclose(fp);
        paren = strrchr(line, ')');
        assert_non_null(paren);
        /* Field 19 is nice; paren + 2 starts at field 3. */
        assert_int_equal(sscanf(paren + 2, "%*c %*d %*d %*d %*d %*d %*u "
                                "%*u %*u %*u %*u %*u %*u %*d %*d %*d %ld",
                                &nice), 1);
        if (nice != want)
            fail_msg("QEMU thread %s has nice %ld, expected %ld", e->d_name,
                     nice, want);
        threads++;
    }
    closedir(dir);
    assert_true(threads > 1);
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[160];
    FILE *fp;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

/* The first pod boots cold and starts the pool, whose guest then waits at
 * nice 19 with only the empty share in its QEMU's view. */
static void test_pool_guest_waits_low_priority(void **state)
{
    char path[160];
    nu_sandbox_t *sb;
    nu_err_t err = { 0 };
    pid_t qemu;
    struct stat st;

    (void)state;
    skip_unless_ready();
    sb = create_pod(g.ws1, env_one, &err);
    if (sb == NULL)
        fail_msg("cold vm pod did not start: %s", err.msg);
    nu_sandbox_close(sb);
    assert_true(wait_pool_ready(1));
    assert_int_equal(child_qemus(&qemu, 1, NULL, 0), 1);

    assert_nice(qemu, 19);
    snprintf(path, sizeof path, "/proc/%ld/root/workspace/.nucleus-pool",
             (long)qemu);
    assert_int_equal(stat(path, &st), 0);
    snprintf(path, sizeof path, "/proc/%ld/root/workspace/ws", (long)qemu);
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    snprintf(path, sizeof path, "/proc/%ld/root%s", (long)qemu, g.ws1);
    assert_int_not_equal(access(path, F_OK), 0);
}

/* A waiting guest whose QEMU dies is discarded and replaced. */
static void test_pool_replaces_dead_guest(void **state)
{
    pid_t old_qemu, new_qemu;
    double deadline;

    (void)state;
    skip_unless_ready();
    assert_true(wait_pool_ready(1));
    assert_int_equal(child_qemus(&old_qemu, 1, NULL, 0), 1);
    assert_int_equal(kill(old_qemu, SIGKILL), 0);

    /* The pool thread checks its guests once a second. */
    deadline = now_ms() + 5000;
    while (nu_vm_pool_ready() != 0 && now_ms() < deadline)
        usleep(20000);
    assert_int_equal(nu_vm_pool_ready(), 0);

    assert_true(wait_pool_ready(1));
    assert_int_equal(child_qemus(&new_qemu, 1, NULL, 0), 1);
    assert_int_not_equal(new_qemu, old_qemu);
}

/* An environment entry without '=' fails before a guest is taken. */
static void test_pool_bad_env_keeps_guest(void **state)
{
    static const char *const bad_env[] = { "PATH=/bin", "NOEQUALS", NULL };
    nu_err_t err = { 0 };

    (void)state;
    skip_unless_ready();
    assert_true(wait_pool_ready(1));
    assert_null(create_pod(g.ws1, bad_env, &err));
    assert_int_equal(err.code, NU_EINVAL);
    assert_non_null(strstr(err.msg, "entry 1"));
    assert_int_equal(nu_vm_pool_ready(), 1);
}

/* Two pods acquired in turn each see only their own workspace and
 * environment, and acquisition puts QEMU back at nice 0. */
static void test_pool_pods_isolated(void **state)
{
    nu_sandbox_t *one, *two;
    nu_err_t err = { 0 };
    char path[160];
    const char *out;
    json_t *r = NULL;
    pid_t qemu;
    double start, took;

    (void)state;
    skip_unless_ready();
    write_file(g.ws1, "a.txt", "one\n");
    write_file(g.ws2, "b.txt", "two\n");
    assert_true(wait_pool_ready(1));

    start = now_ms();
    one = create_pod(g.ws1, env_one, &err);
    took = now_ms() - start;
    if (one == NULL)
        fail_msg("warm vm pod did not start: %s", err.msg);
    printf("warm acquisition: %.1f ms\n", took);
    qemu = nu_sandbox_pid(one);
    assert_nice(qemu, 0);

    out = run(one, "cat a.txt; echo $SECRET; ls -a; echo x > from-one.txt",
              &r);
    assert_non_null(strstr(out, "one\none\n"));
    assert_null(strstr(out, ".nucleus-pool"));
    assert_null(strstr(out, "b.txt"));
    json_decref(r);
    snprintf(path, sizeof path, "%s/from-one.txt", g.ws1);
    assert_int_equal(access(path, F_OK), 0);

    /* The replacement guest goes to the second pod. */
    assert_true(wait_pool_ready(1));
    two = create_pod(g.ws2, env_two, &err);
    if (two == NULL)
        fail_msg("second warm vm pod did not start: %s", err.msg);
    assert_int_not_equal(nu_sandbox_pid(two), qemu);
    out = run(two, "ls; echo $SECRET", &r);
    assert_non_null(strstr(out, "b.txt"));
    assert_non_null(strstr(out, "two\n"));
    assert_null(strstr(out, "a.txt"));
    assert_null(strstr(out, "from-one.txt"));
    assert_null(strstr(out, "one"));
    json_decref(r);

    out = run(one, "ls; echo $SECRET", &r);
    assert_non_null(strstr(out, "a.txt"));
    assert_null(strstr(out, "b.txt"));
    assert_non_null(strstr(out, "one\n"));
    json_decref(r);

    nu_sandbox_close(one);
    nu_sandbox_close(two);
}

/* A pooled guest gets the pod's masks at acquisition: blocked files read
 * empty and reject writes, a blocked directory is empty, a write-blocked
 * file rejects writes, and the host's files keep their contents. */
static void test_pool_pod_masks(void **state)
{
    static const char *const block[] = { ".env", "keys", NULL };
    static const char *const write_block[] = { ".bashrc", NULL };
    nu_sandbox_opts_t opts;
    nu_sandbox_t *sb = NULL;
    nu_err_t err = { 0 };
    char path[160], text[64] = "";
    const char *out;
    json_t *r = NULL;
    FILE *fp;

    (void)state;
    skip_unless_ready();
    write_file(g.ws1, ".env", "API_KEY=pooled-secret\n");
    write_file(g.ws1, ".bashrc", "# rc\n");
    snprintf(path, sizeof path, "%s/keys", g.ws1);
    assert_int_equal(mkdir(path, 0700), 0);
    write_file(path, "id_rsa", "pooled-key\n");
    assert_true(wait_pool_ready(1));

    nu_sandbox_opts_init(&opts);
    opts.workspace = g.ws1;
    opts.isolation = g.isolation;
    opts.block_paths = block;
    opts.write_block_paths = write_block;
    if (nu_sandbox_create(&opts, &sb, &err) != NU_OK)
        fail_msg("warm vm pod did not start: %s", err.msg);
    assert_int_equal(nu_vm_pool_ready(), 0);  /* it took the pooled guest */

    out = run(sb, "echo env=[$(cat .env)]; echo keys=[$(ls -A keys)]; "
              "echo over > .env || echo env-write-failed; "
              "echo more >> .bashrc || echo rc-write-failed", &r);
    assert_non_null(strstr(out, "env=[]"));
    assert_non_null(strstr(out, "keys=[]"));
    assert_non_null(strstr(out, "env-write-failed"));
    assert_non_null(strstr(out, "rc-write-failed"));
    assert_null(strstr(out, "pooled-secret"));
    json_decref(r);
    nu_sandbox_close(sb);

    snprintf(path, sizeof path, "%s/.env", g.ws1);
    fp = fopen(path, "r");
    assert_non_null(fp);
    assert_non_null(fgets(text, sizeof text, fp));
    fclose(fp);
    assert_string_equal(text, "API_KEY=pooled-secret\n");
    snprintf(path, sizeof path, "%s/.bashrc", g.ws1);
    fp = fopen(path, "r");
    assert_non_null(fp);
    assert_non_null(fgets(text, sizeof text, fp));
    assert_null(fgets(text, sizeof text, fp));
    fclose(fp);
}

/* A pod with other limits than the pooled guests boots cold. */
static void test_pool_other_limits_boot_cold(void **state)
{
    nu_sandbox_opts_t opts;
    nu_sandbox_t *sb = NULL;
    nu_err_t err = { 0 };
    pid_t pooled;

    (void)state;
    skip_unless_ready();
    assert_true(wait_pool_ready(1));
    assert_int_equal(child_qemus(&pooled, 1, NULL, 0), 1);
    nu_sandbox_opts_init(&opts);
    opts.workspace = g.ws1;
    opts.isolation = g.isolation;
    opts.timeout_ms = 33000;
    if (nu_sandbox_create(&opts, &sb, &err) != NU_OK)
        fail_msg("cold vm pod did not start: %s", err.msg);
    assert_int_not_equal(nu_sandbox_pid(sb), pooled);
    assert_int_equal(nu_vm_pool_ready(), 1);
    nu_sandbox_close(sb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool_guest_waits_low_priority),
        cmocka_unit_test(test_pool_replaces_dead_guest),
        cmocka_unit_test(test_pool_bad_env_keeps_guest),
        cmocka_unit_test(test_pool_pods_isolated),
        cmocka_unit_test(test_pool_pod_masks),
        cmocka_unit_test(test_pool_other_limits_boot_cold),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
