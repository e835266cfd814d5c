/*
 * test_oci_escape.c - the ns tier's escape corpus against oci pods run by
 * crun and runc.
 *
 * tests/integration/sandbox_escape.sh drives the corpus through nucleus
 * exec.  This program runs the same probe (tests/integration/
 * sandbox_probe.c, built with gcc into the workspace) through the sandbox
 * API with isolation "oci:crun" and "oci:runc".  It expects the same
 * outcomes.  Each case is one probe run in a pod shared by the cases of
 * that runtime; the resource cases run in a second pod with small limits.
 * The masks are those of the local_dev profile: .env hidden, .git/hooks
 * and .bashrc read-only.  Needs root, gcc and the runtime; skips with a
 * message otherwise.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "nucleus/oci.h"
#include "nucleus/sandbox.h"

typedef struct escape_case {
    const char *name;
    const char *expected;  /* exact RESULT, or prefix when it ends in '*' */
    const char *args[3];
} escape_case_t;

static char work[64];
static char ws[128];
static char other[128];
static pid_t host_sleeper = -1;

/* The file-system, process and kernel cases of the corpus. */
static const escape_case_t cases[] = {
    /* Host files outside the pod's view. */
    { "read_etc_shadow", "ENOENT", { "open", "/etc/shadow" } },
    { "read_host_root_home", "ENOENT", { "opendir", "/root" } },
    { "read_host_home", "ENOENT", { "opendir", "/home" } },
    { "read_host_var", "ENOENT", { "opendir", "/var/lib" } },
    { "sys_not_mounted", "ENOENT", { "stat", "/sys/kernel" } },
    { "dev_mem_absent", "ENOENT", { "open", "/dev/mem" } },
    { "dev_kmsg_absent", "ENOENT", { "open", "/dev/kmsg" } },
    /* Path tricks. */
    { "dotdot_from_workspace", "ENOENT",
      { "open", "/workspace/../../../../etc/shadow" } },
    { "symlink_to_host_file", "ENOENT", { "open", "/workspace/shadow-link" } },
    { "relative_symlink_out", "ENOENT", { "open", "/workspace/dotdot-link" } },
    { "proc_self_root", "ENOENT", { "open", "/proc/self/root/etc/shadow" } },
    { "proc_1_root", "EACCES", { "open", "/proc/1/root/etc/passwd" } },
    { "symlink_via_proc_1_root", "EACCES", { "symlink_proc_root" } },
    { "hardlink_across_mounts", "EXDEV", { "hardlink", "/etc/passwd" } },
    { "init_exe_not_writable", "EACCES", { "write", "/proc/1/exe" } },
    /* Read-only views. */
    { "write_usr_bin", "EROFS", { "create", "/usr/bin/evil" } },
    { "write_etc_passwd", "EROFS", { "write", "/etc/passwd" } },
    { "mkdir_in_root", "EROFS", { "mkdir", "/evil" } },
    { "write_dev_dir", "EROFS", { "create", "/dev/evil" } },
    /* Absent on this kind of host: expected_sysrq() picks the outcome. */
    { "proc_sysrq_trigger", NULL, { "write", "/proc/sysrq-trigger" } },
    { "proc_sys_kernel", "EROFS", { "write", "/proc/sys/kernel/hostname" } },
    /* The init is running, so the kernel's ETXTBSY check comes before
     * the read-only mount's; test_oci.c checks the mount flags. */
    { "write_init_binary", "ETXTBSY", { "write", NU_OCI_INIT_PATH } },
    /* Masks. */
    { "blocked_env_file_empty", "empty", { "cat", "/workspace/.env" } },
    { "write_blocked_git_hook", "EROFS",
      { "write", "/workspace/.git/hooks/pre-commit" } },
    { "write_blocked_bashrc", "EROFS", { "write", "/workspace/.bashrc" } },
    /* Mounts and namespaces (seccomp). */
    { "remount_usr_rw", "EPERM", { "remount" } },
    { "mount_tmpfs", "EPERM", { "mount_tmpfs" } },
    { "umount_workspace", "EPERM", { "umount" } },
    { "open_tree", "EPERM", { "open_tree" } },
    { "fsopen", "EPERM", { "fsopen" } },
    { "pivot_root", "EPERM", { "pivot_root" } },
    { "chroot", "EPERM", { "chroot" } },
    { "unshare_user", "EPERM", { "unshare_user" } },
    { "unshare_mount", "EPERM", { "unshare_mount" } },
    { "unshare_net", "EPERM", { "unshare_net" } },
    { "clone_newuser", "EPERM", { "clone_newuser" } },
    { "clone3_enosys", "ENOSYS", { "clone3" } },
    { "setns", "EPERM", { "setns" } },
    /* Other processes and the kernel. */
    { "ptrace_init", "EPERM", { "ptrace_init" } },
    { "ptrace_traceme", "EPERM", { "ptrace_traceme" } },
    { "process_vm_readv", "EPERM", { "process_vm_readv" } },
    { "init_module", "EPERM", { "init_module" } },
    { "finit_module", "EPERM", { "finit_module" } },
    { "delete_module", "EPERM", { "delete_module" } },
    { "kexec_load", "EPERM", { "kexec_load" } },
    { "reboot", "EPERM", { "reboot" } },
    { "bpf", "EPERM", { "bpf" } },
    { "perf_event_open", "EPERM", { "perf_event_open" } },
    { "userfaultfd", "EPERM", { "userfaultfd" } },
    { "keyctl", "EPERM", { "keyctl" } },
    { "add_key", "EPERM", { "add_key" } },
    { "io_uring_setup", "EPERM", { "io_uring_setup" } },
    { "open_by_handle_at", "EPERM", { "open_by_handle_at" } },
    { "personality_read_implies_exec", "EPERM", { "personality_exec" } },
    { "personality_query_allowed", "ok", { "personality_query" } },
    { "iopl", "EPERM", { "iopl" } },
    { "swapon", "EPERM", { "swapon" } },
    { "acct", "EPERM", { "acct" } },
    { "tiocsti", "EPERM", { "tiocsti" } },
    { "tioclinux", "EPERM", { "tioclinux" } },
    { "int80_i386_syscall_killed", "SYS", { "int80" } },
    { "x32_syscall_killed", "SYS", { "x32" } },
    { "sethostname", "EPERM", { "sethostname" } },
    { "setuid_unmapped_user", "EINVAL", { "setuid" } },
    { "mknod_tmp", "EPERM", { "mknod", "/tmp/null2" } },
    { "mknod_workspace", "EPERM", { "mknod", "/workspace/null2" } },
    { "chmod_setuid_workspace", "EPERM",
      { "chmod_suid", "/workspace/suid1" } },
    { "fchmod_setgid_workspace", "EPERM",
      { "fchmod_sgid", "/workspace/sgid1" } },
    { "create_setuid_workspace", "EPERM",
      { "creat_suid", "/workspace/suid2" } },
    { "mknod_setuid_workspace", "EPERM",
      { "mknod_suid", "/workspace/suid3" } },
    { "setuid_binary_gains_nothing", "0000000000000000",
      { "exec", "/workspace/probe-setuid", "capeff" } },
    /* Network: loopback only. */
    { "raw_socket", "EPERM", { "raw_socket" } },
    { "packet_socket", "EPERM", { "packet_socket" } },
    { "egress_unreachable", "ENETUNREACH", { "egress" } },
    { "loopback_works", "ok", { "loopback" } },
    /* Signals and descriptors. */
    { "kill_init_ignored", "ok", { "kill_init" } },
    { "no_host_fd_leak", "clean", { "fds" } },
    { "tmp_fill_bounded", "ENOSPC 25*", { "fill", "/tmp/fill" } },
};

/* Cases in the small-limits pod: 64 pids, 256 MiB, 1 MiB files. */
static const escape_case_t limit_cases[] = {
    { "fork_bomb_bounded", "EAGAIN *", { "fork_bomb" } },
    { "memory_bomb_bounded", "bounded *", { "memory_bomb" } },
    { "workspace_fill_bounded", "EFBIG 1", { "fill", "/workspace/fill" } },
};

static void write_text(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");

    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static int make_corpus(void **state)
{
    const char *src_dir = getenv("NU_SOURCE_DIR");
    char path[256];
    char cmd[768];

    (void)state;
    snprintf(work, sizeof work, "/tmp/nu-ociesc-XXXXXX");
    if (mkdtemp(work) == NULL)
        return -1;
    snprintf(ws, sizeof ws, "%s/ws", work);
    snprintf(other, sizeof other, "%s/other-pod", work);
    snprintf(cmd, sizeof cmd, "mkdir -p '%s/.git/hooks' '%s'", ws, other);
    if (system(cmd) != 0)
        return -1;

    snprintf(path, sizeof path, "%s/secret", other);
    write_text(path, "other pod's secret\n");
    snprintf(path, sizeof path, "%s/.env", ws);
    write_text(path, "API_KEY=hunter2\n");
    snprintf(path, sizeof path, "%s/.git/hooks/pre-commit", ws);
    write_text(path, "#!/bin/sh\n");
    snprintf(path, sizeof path, "%s/.bashrc", ws);
    write_text(path, "alias ls=evil\n");
    snprintf(path, sizeof path, "%s/shadow-link", ws);
    if (symlink("/etc/shadow", path) != 0)
        return -1;
    snprintf(path, sizeof path, "%s/dotdot-link", ws);
    if (symlink("../../../../etc/shadow", path) != 0)
        return -1;

    /* The probe; a missing compiler or source leaves it out, and the pod
     * tests skip. */
    snprintf(cmd, sizeof cmd, "gcc -O1 -o '%s/probe' "
             "'%s/tests/integration/sandbox_probe.c' 2>/dev/null && "
             "cp '%s/probe' '%s/probe-setuid' && "
             "chmod 4755 '%s/probe-setuid'", ws,
             src_dir != NULL ? src_dir : ".", ws, ws, ws);
    if (system(cmd) != 0) {
        snprintf(path, sizeof path, "%s/probe", ws);
        unlink(path);
    }

    host_sleeper = fork();
    if (host_sleeper == 0) {
        execl("/bin/sleep", "sleep", "300", (char *)NULL);
        _exit(127);
    }
    return host_sleeper > 0 ? 0 : -1;
}

static int remove_corpus(void **state)
{
    char cmd[128];

    (void)state;
    if (host_sleeper > 0) {
        kill(host_sleeper, SIGKILL);
        waitpid(host_sleeper, NULL, 0);
    }
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", work);
    return system(cmd) == 0 ? 0 : -1;
}

/* Why this runtime cannot run the corpus here, or NULL. */
static const char *skip_reason(const char *isolation, char *buf,
                               size_t size)
{
    char path[4096];
    nu_err_t err = { 0 };

    if (geteuid() != 0)
        return "the oci escape corpus runs the runtime as root";
    snprintf(path, sizeof path, "%s/probe", ws);
    if (access(path, X_OK) != 0)
        return "gcc or NU_SOURCE_DIR is missing, so the probe was not "
               "built";
    if (nu_oci_runtime_path(isolation, path, sizeof path, &err) != NU_OK) {
        snprintf(buf, size, "%s", err.msg);
        return buf;
    }
    return NULL;
}

static nu_sandbox_t *start_pod(const char *isolation, bool small_limits)
{
    static const char *const block[] = { ".env", NULL };
    static const char *const write_block[] = { ".git/hooks", ".bashrc",
                                               NULL };
    nu_sandbox_opts_t opts;
    nu_sandbox_t *sb = NULL;
    nu_err_t err = { 0 };

    nu_sandbox_opts_init(&opts);
    opts.workspace = ws;
    opts.isolation = isolation;
    opts.block_paths = block;
    opts.write_block_paths = write_block;
    if (small_limits) {
        opts.limits.pids = 64;
        opts.limits.memory_bytes = 256 << 20;
        opts.limits.file_size_bytes = 1 << 20;
    }
    if (nu_sandbox_create(&opts, &sb, &err) != NU_OK)
        fail_msg("%s: cannot start pod: %s", isolation, err.msg);
    return sb;
}

/* Run the probe with args; returns its last RESULT (static buffer). */
static const char *probe(nu_sandbox_t *sb, const char *const *args,
                         double timeout)
{
    static char result[256];
    json_t *argv = json_pack("[s]", "/workspace/probe");
    json_t *call;
    json_t *response = NULL;
    nu_err_t err = { 0 };
    const char *out;
    const char *line;

    for (size_t i = 0; i < 3 && args[i] != NULL; i++)
        json_array_append_new(argv, json_string(args[i]));
    call = json_pack("{s:s,s:o,s:f}", "tool", "run", "argv", argv,
                     "timeout", timeout);
    assert_int_equal(nu_sandbox_tool(sb, call, &response, &err), NU_OK);
    json_decref(call);

    result[0] = '\0';
    out = json_string_value(json_object_get(response, "stdout"));
    for (line = out; line != NULL && (line = strstr(line, "RESULT ")) != NULL;
         line += 7) {
        size_t len = strcspn(line + 7, "\n");
        snprintf(result, sizeof result, "%.*s", (int)len, line + 7);
    }
    json_decref(response);
    return result;
}

static bool matches(const char *got, const char *expected)
{
    size_t len = strlen(expected);

    if (len > 0 && expected[len - 1] == '*')
        return strncmp(got, expected, len - 1) == 0;
    return strcmp(got, expected) == 0;
}

static int run_cases(const char *isolation, nu_sandbox_t *sb,
                     const escape_case_t *list, size_t count)
{
    int failed = 0;

    for (size_t i = 0; i < count; i++) {
        const char *got = probe(sb, list[i].args, 30);
        const char *expected = list[i].expected;

        /* The host has no /proc/sysrq-trigger without CONFIG_MAGIC_SYSRQ;
         * the pod's procfs then has none either. */
        if (expected == NULL)
            expected = access("/proc/sysrq-trigger", F_OK) == 0 ? "EROFS" :
                       "ENOENT";
        if (matches(got, expected)) {
            print_message("ok - %s %s (%s)\n", isolation, list[i].name, got);
        } else {
            print_message("not ok - %s %s: expected '%s', got '%s'\n",
                          isolation, list[i].name, expected, got);
            failed++;
        }
    }
    return failed;
}

/* The cases that need the host's view: another pod's files and a host
 * process, named by path and pid at run time. */
static int run_host_cases(const char *isolation, nu_sandbox_t *sb)
{
    char secret[256];
    char pid_path[64];
    char pid_text[32];
    const char *open_secret[] = { "open", secret, NULL };
    const char *stat_pid[] = { "stat", pid_path, NULL };
    const char *kill_pid[] = { "kill", pid_text, NULL };
    int failed = 0;

    snprintf(secret, sizeof secret, "%s/secret", other);
    snprintf(pid_path, sizeof pid_path, "/proc/%ld/cmdline",
             (long)host_sleeper);
    snprintf(pid_text, sizeof pid_text, "%ld", (long)host_sleeper);
    failed += strcmp(probe(sb, open_secret, 30), "ENOENT") != 0;
    failed += strcmp(probe(sb, stat_pid, 30), "ENOENT") != 0;
    failed += strcmp(probe(sb, kill_pid, 30), "ESRCH") != 0;
    if (failed != 0)
        print_message("not ok - %s: a host-view case failed\n", isolation);
    return failed;
}

/* A runaway command is killed at its timeout, not left spinning. */
static void check_timeout(nu_sandbox_t *sb)
{
    json_t *call = json_pack("{s:s,s:[s,s],s:i}", "tool", "run", "argv",
                             "/workspace/probe", "spin", "timeout", 1);
    json_t *response = NULL;
    nu_err_t err = { 0 };

    assert_int_equal(nu_sandbox_tool(sb, call, &response, &err), NU_OK);
    assert_true(json_is_true(json_object_get(response, "timed_out")));
    json_decref(call);
    json_decref(response);
}

static void run_corpus(const char *isolation)
{
    char reason_buf[512];
    const char *reason = skip_reason(isolation, reason_buf,
                                     sizeof reason_buf);
    nu_sandbox_t *sb;
    int failed;

    if (reason != NULL) {
        print_message("skipped: %s\n", reason);
        skip();
    }

    sb = start_pod(isolation, false);
    failed = run_cases(isolation, sb, cases, sizeof cases / sizeof cases[0]);
    failed += run_host_cases(isolation, sb);
    check_timeout(sb);
    nu_sandbox_close(sb);

    sb = start_pod(isolation, true);
    failed += run_cases(isolation, sb, limit_cases,
                        sizeof limit_cases / sizeof limit_cases[0]);
    nu_sandbox_close(sb);

    assert_int_equal(kill(host_sleeper, 0), 0);
    assert_int_equal(failed, 0);
}

static void test_crun_escape_corpus(void **state)
{
    (void)state;
    run_corpus("oci:crun");
}

static void test_runc_escape_corpus(void **state)
{
    (void)state;
    run_corpus("oci:runc");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crun_escape_corpus),
        cmocka_unit_test(test_runc_escape_corpus),
    };

    return cmocka_run_group_tests(tests, make_corpus, remove_corpus);
}
