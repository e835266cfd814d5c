/*
 * test_vm_boot.c - vm pods: boot a real QEMU microvm guest (TCG here),
 * serve tool calls through the guest agent, and leave no QEMU behind.
 *
 * The group setup builds an image with the agent of this build tree
 * ($NU_BUILD_DIR/nucleus-vm-agent) into a temporary directory.  Every
 * test skips with a printed reason when QEMU, a kernel with 9p modules,
 * BusyBox or the agent is missing.  Each boot takes about 10 s under TCG.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <glob.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "nucleus/sandbox.h"
#include "nucleus/vm.h"

typedef struct group {
    char image[64];
    char isolation[80];
    char skip_reason[1024];
} group_t;

typedef struct fixture {
    group_t *group;
    char workspace[64];
    nu_sandbox_t *sb;
} fixture_t;

static group_t the_group;

static int group_setup(void **state)
{
    char agent[4096];
    const char *build = getenv("NU_BUILD_DIR");
    nu_vm_image_opts_t opts = { 0 };
    nu_err_t err;

    *state = &the_group;
    if (system("command -v qemu-system-x86_64 >/dev/null 2>&1") != 0) {
        snprintf(the_group.skip_reason, sizeof the_group.skip_reason,
                 "qemu-system-x86_64 not installed (qemu-system-x86)");
        return 0;
    }
    snprintf(agent, sizeof agent, "%s/nucleus-vm-agent",
             build != NULL ? build : ".");
    snprintf(the_group.image, sizeof the_group.image, "/tmp/nu-vmimg-XXXXXX");
    if (mkdtemp(the_group.image) == NULL)
        return -1;
    opts.agent = agent;
    opts.out_dir = the_group.image;
    if (nu_vm_image_build(&opts, &err) != NU_OK) {
        snprintf(the_group.skip_reason, sizeof the_group.skip_reason,
                 "cannot build the guest image: %s", err.msg);
        return 0;
    }
    snprintf(the_group.isolation, sizeof the_group.isolation, "vm:%s",
             the_group.image);
    return 0;
}

static int group_teardown(void **state)
{
    char cmd[128];

    (void)state;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", the_group.image);
    return system(cmd) == 0 ? 0 : -1;
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);

    f->group = &the_group;
    snprintf(f->workspace, sizeof f->workspace, "/tmp/nu-vmws-XXXXXX");
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

static void skip_unless_ready(const fixture_t *f)
{
    if (f->group->skip_reason[0] != '\0') {
        printf("SKIP: %s\n", f->group->skip_reason);
        skip();
    }
}

static const char *const pod_env[] = {
    "PATH=/usr/bin:/bin:/usr/sbin:/sbin", "HOME=/workspace",
    "MY_SECRET=vm-s3cret-5e1f", NULL
};

static void boot(fixture_t *f)
{
    nu_sandbox_opts_t opts;
    nu_err_t err = { 0 };
    int rc;

    nu_sandbox_opts_init(&opts);
    opts.workspace = f->workspace;
    opts.isolation = f->group->isolation;
    opts.env = pod_env;
    opts.timeout_ms = 20000;
    rc = nu_sandbox_create(&opts, &f->sb, &err);
    if (rc != NU_OK)
        fail_msg("vm pod did not start: %s", err.msg);
}

static json_t *tool(fixture_t *f, json_t *call)
{
    json_t *result = NULL;
    nu_err_t err = { 0 };
    int rc = nu_sandbox_tool(f->sb, call, &result, &err);

    json_decref(call);
    if (rc != NU_OK)
        fail_msg("tool call failed: %s", err.msg);
    return result;
}

static void test_vm_tools_through_agent(void **state)
{
    fixture_t *f = *state;
    char path[128];
    char text[64] = "";
    json_t *r;
    FILE *fp;

    skip_unless_ready(f);
    boot(f);
    assert_int_equal(nu_sandbox_state(f->sb), NU_SANDBOX_READY);

    r = tool(f, json_pack("{s:s,s:s,s:s}", "tool", "write", "path",
                          "notes/a.txt", "content", "from the guest\n"));
    assert_true(json_is_true(json_object_get(r, "ok")));
    json_decref(r);

    /* The 9p share makes the guest's write visible on the host. */
    snprintf(path, sizeof path, "%s/notes/a.txt", f->workspace);
    fp = fopen(path, "r");
    assert_non_null(fp);
    assert_non_null(fgets(text, sizeof text, fp));
    fclose(fp);
    assert_string_equal(text, "from the guest\n");

    r = tool(f, json_pack("{s:s,s:s}", "tool", "read", "path",
                          "notes/a.txt"));
    assert_true(json_is_true(json_object_get(r, "ok")));
    assert_non_null(strstr(json_string_value(json_object_get(r, "content")),
                           "from the guest"));
    json_decref(r);

    r = tool(f, json_pack("{s:s,s:s}", "tool", "run", "command",
                          "cat notes/a.txt; uname -s; echo $$"));
    assert_true(json_is_true(json_object_get(r, "ok")));
    assert_int_equal(json_integer_value(json_object_get(r, "exit_code")), 0);
    assert_non_null(strstr(json_string_value(json_object_get(r, "stdout")),
                           "from the guest\nLinux\n"));
    json_decref(r);

    /* opts.env reaches the commands after boot, over the serial port. */
    r = tool(f, json_pack("{s:s,s:s}", "tool", "run", "command",
                          "echo $MY_SECRET; grep -c s3cret /proc/cmdline"));
    assert_string_equal(json_string_value(json_object_get(r, "stdout")),
                        "vm-s3cret-5e1f\n0\n");
    json_decref(r);

    r = tool(f, json_pack("{s:s,s:s}", "tool", "glob", "pattern",
                          "**/*.txt"));
    assert_true(json_is_true(json_object_get(r, "ok")));
    json_decref(r);

    /* The executor's rules hold inside the guest too. */
    r = tool(f, json_pack("{s:s,s:s}", "tool", "read", "path",
                          "../../etc/passwd"));
    assert_false(json_is_true(json_object_get(r, "ok")));
    assert_string_equal(json_string_value(json_object_get(r, "kind")),
                        "path_denied");
    json_decref(r);
}

static void test_vm_guest_has_no_network(void **state)
{
    fixture_t *f = *state;
    const char *out;
    json_t *r;

    skip_unless_ready(f);
    boot(f);
    r = tool(f, json_pack("{s:s,s:s}", "tool", "run", "command",
                          "ls /sys/class/net"));
    out = json_string_value(json_object_get(r, "stdout"));
    assert_non_null(out);
    assert_null(strstr(out, "eth"));
    json_decref(r);
}

/* File-system and process cases of the escape corpus, inside the guest. */
static void test_vm_escape_cases(void **state)
{
    fixture_t *f = *state;
    char marker[] = "/tmp/nu-vm-host-marker-XXXXXX";
    char link[128];
    char command[128];
    const char *out;
    json_t *r;
    int fd;

    skip_unless_ready(f);
    fd = mkstemp(marker);
    assert_true(fd >= 0);
    close(fd);
    snprintf(link, sizeof link, "%s/passwd-link", f->workspace);
    assert_int_equal(symlink("/etc/passwd", link), 0);
    boot(f);

    /* A host file outside the workspace does not exist in the guest. */
    snprintf(command, sizeof command, "test -e %s && echo visible; ls /",
             marker);
    r = tool(f, json_pack("{s:s,s:s}", "tool", "run", "command", command));
    out = json_string_value(json_object_get(r, "stdout"));
    assert_non_null(out);
    assert_null(strstr(out, "visible"));
    assert_non_null(strstr(out, "workspace"));
    json_decref(r);
    unlink(marker);

    /* The executor does not follow a symlink out of the workspace. */
    r = tool(f, json_pack("{s:s,s:s}", "tool", "read", "path",
                          "passwd-link"));
    assert_false(json_is_true(json_object_get(r, "ok")));
    assert_string_equal(json_string_value(json_object_get(r, "kind")),
                        "path_denied");
    json_decref(r);

    r = tool(f, json_pack("{s:s,s:s}", "tool", "read", "path",
                          "/etc/passwd"));
    assert_false(json_is_true(json_object_get(r, "ok")));
    json_decref(r);

    /* Guest root cannot plant a set-user-ID file in the host workspace. */
    r = tool(f, json_pack("{s:s,s:s}", "tool", "run", "command",
                          "cp /bin/busybox suid; chmod 4755 suid; "
                          "chmod g+s suid; mknod dev0 c 1 3"));
    json_decref(r);
    {
        char path[128];
        struct stat st;

        snprintf(path, sizeof path, "%s/suid", f->workspace);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & (S_ISUID | S_ISGID), 0);
        snprintf(path, sizeof path, "%s/dev0", f->workspace);
        assert_false(stat(path, &st) == 0 && S_ISCHR(st.st_mode));
    }

    /* A command that outlives its timeout is killed, group and all. */
    r = tool(f, json_pack("{s:s,s:s,s:f}", "tool", "run", "command",
                          "sleep 30 & sleep 30", "timeout", 1.0));
    assert_true(json_is_true(json_object_get(r, "timed_out")));
    json_decref(r);
    r = tool(f, json_pack("{s:s,s:s}", "tool", "run", "command",
                          "ps | grep -c '[s]leep 30' || true"));
    out = json_string_value(json_object_get(r, "stdout"));
    assert_non_null(out);
    assert_string_equal(out, "0\n");
    json_decref(r);

    /* Commands have no capabilities: powering off from inside fails and
     * the pod keeps serving. */
    r = NULL;
    {
        json_t *call = json_pack("{s:s,s:s}", "tool", "run", "command",
                                 "poweroff -f; echo still-here");
        nu_err_t err = { 0 };
        int rc = nu_sandbox_tool(f->sb, call, &r, &err);

        json_decref(call);
        assert_int_equal(rc, NU_OK);
        assert_non_null(strstr(json_string_value(json_object_get(
                            r, "stdout")), "still-here"));
        assert_int_not_equal(nu_sandbox_state(f->sb), NU_SANDBOX_DEAD);
    }
    json_decref(r);
}

static void test_vm_rejects_require_landlock(void **state)
{
    fixture_t *f = *state;
    nu_sandbox_opts_t opts;
    nu_err_t err = { 0 };

    skip_unless_ready(f);
    nu_sandbox_opts_init(&opts);
    opts.workspace = f->workspace;
    opts.isolation = f->group->isolation;
    opts.flags = NU_SANDBOX_REQUIRE_LANDLOCK;
    assert_int_equal(nu_sandbox_create(&opts, &f->sb, &err), NU_ESANDBOX);
    assert_non_null(strstr(err.msg, "Landlock"));
}

static bool process_gone(pid_t pid)
{
    char path[64], line[512];
    FILE *fp;
    char *paren;

    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    fp = fopen(path, "r");
    if (fp == NULL)
        return true;
    if (fgets(line, sizeof line, fp) == NULL)
        line[0] = '\0';
    fclose(fp);
    paren = strrchr(line, ')');
    return paren != NULL && paren[1] == ' ' && paren[2] == 'Z';
}

/* SIGKILL the owner of a vm pod: PR_SET_PDEATHSIG must take QEMU down. */
static void test_vm_qemu_dies_with_owner(void **state)
{
    fixture_t *f = *state;
    int pipefd[2];
    pid_t owner;
    long qemu = 0;
    int status;

    skip_unless_ready(f);
    assert_int_equal(pipe(pipefd), 0);
    owner = fork();
    assert_true(owner >= 0);
    if (owner == 0) {
        nu_sandbox_t *sb = NULL;
        nu_sandbox_opts_t opts;
        nu_err_t err;
        char line[32];

        close(pipefd[0]);
        nu_sandbox_opts_init(&opts);
        opts.workspace = f->workspace;
        opts.isolation = f->group->isolation;
        if (nu_sandbox_create(&opts, &sb, &err) != NU_OK)
            _exit(3);
        snprintf(line, sizeof line, "%ld\n", (long)nu_sandbox_pid(sb));
        if (write(pipefd[1], line, strlen(line)) < 0)
            _exit(4);
        pause();
        _exit(0);
    }
    close(pipefd[1]);
    {
        char buf[32] = "";
        ssize_t n = read(pipefd[0], buf, sizeof buf - 1);
        if (n > 0)
            qemu = strtol(buf, NULL, 10);
    }
    close(pipefd[0]);
    assert_true(qemu > 0);
    assert_false(process_gone((pid_t)qemu));

    kill(owner, SIGKILL);
    waitpid(owner, &status, 0);
    for (int i = 0; i < 200 && !process_gone((pid_t)qemu); i++)
        usleep(10000);
    assert_true(process_gone((pid_t)qemu));

    /* The next create removes the dead owner's run directory. */
    {
        nu_sandbox_opts_t opts;
        nu_err_t err;
        char pattern[64];
        glob_t found;

        nu_sandbox_opts_init(&opts);
        opts.workspace = f->workspace;
        opts.isolation = "vm:/nonexistent/image";
        assert_int_equal(nu_sandbox_create(&opts, &f->sb, &err), NU_ENOENT);
        if (geteuid() == 0)
            snprintf(pattern, sizeof pattern, "/run/nucleus/vm/%ld.*",
                     (long)owner);
        else
            snprintf(pattern, sizeof pattern, "/tmp/nucleus-vm-%ld/%ld.*",
                     (long)geteuid(), (long)owner);
        assert_int_equal(glob(pattern, 0, NULL, &found), GLOB_NOMATCH);
    }
}

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* NUCLEUS_VM_POOL=1: the second pod takes a booted guest, and the
 * workspace bound into it on acquisition is the one it serves. */
static void test_vm_warm_pool(void **state)
{
    fixture_t *f = *state;
    char path[128];
    double start, took;
    json_t *r;

    skip_unless_ready(f);
    if (geteuid() != 0) {
        printf("SKIP: the warm pool needs root (bind mounts)\n");
        skip();
    }
    setenv("NUCLEUS_VM_POOL", "1", 1);
    boot(f);  /* starts the pool */
    nu_sandbox_close(f->sb);
    f->sb = NULL;
    for (int i = 0; i < 1200 && nu_vm_pool_ready() == 0; i++)
        usleep(50000);
    assert_int_equal(nu_vm_pool_ready(), 1);

    start = now_ms();
    boot(f);
    took = now_ms() - start;
    printf("warm acquisition: %.1f ms\n", took);
    assert_true(took < 2000);
    unsetenv("NUCLEUS_VM_POOL");

    r = tool(f, json_pack("{s:s,s:s,s:s}", "tool", "write", "path",
                          "warm.txt", "content", "warm\n"));
    assert_true(json_is_true(json_object_get(r, "ok")));
    json_decref(r);
    snprintf(path, sizeof path, "%s/warm.txt", f->workspace);
    assert_int_equal(access(path, F_OK), 0);

    r = tool(f, json_pack("{s:s,s:s}", "tool", "run", "command",
                          "ls -a; echo $MY_SECRET"));
    assert_null(strstr(json_string_value(json_object_get(r, "stdout")),
                       ".nucleus-pool"));
    assert_non_null(strstr(json_string_value(json_object_get(r, "stdout")),
                           "vm-s3cret-5e1f"));
    json_decref(r);
}

static void test_vm_rejects_missing_image(void **state)
{
    fixture_t *f = *state;
    nu_sandbox_opts_t opts;
    nu_err_t err = { 0 };

    nu_sandbox_opts_init(&opts);
    opts.workspace = f->workspace;
    opts.isolation = "vm:/nonexistent/image";
    assert_int_equal(nu_sandbox_create(&opts, &f->sb, &err), NU_ENOENT);
    assert_non_null(strstr(err.msg, "nucleus vm image build"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_vm_rejects_missing_image,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_vm_tools_through_agent, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_vm_guest_has_no_network, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_vm_escape_cases, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_vm_rejects_require_landlock,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_vm_qemu_dies_with_owner, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_vm_warm_pool, setup, teardown),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
