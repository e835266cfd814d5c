/*
 * sandbox_harden.c - the seccomp filter and the confinement the pod init
 * checks or applies before it reads a request: capabilities checked
 * empty, no_new_privs, not dumpable, Landlock, the seccomp filter checked
 * present.  Every command the init starts inherits all of it.
 *
 * The host builds the seccomp filter once per process with libseccomp and
 * exports it as raw BPF (nu__seccomp_program).  The child of clone loads
 * it with two prctl calls just before it executes the init
 * (nu__seccomp_apply), which needs no allocation and saves the init the
 * cost of building the filter in every pod.
 *
 * Seccomp.  The filter (libseccomp, default allow) rejects the system
 * calls that an unprivileged process needs only to attack the kernel or to
 * leave the sandbox.  They are namespace creation (clone with CLONE_NEW* flags,
 * unshare, setns; clone3 gets ENOSYS so that libc falls back to clone,
 * whose flags the filter can see), the mount family, pivot_root, chroot,
 * ptrace and process_vm_*, the kernel keyring, bpf, perf_event_open,
 * userfaultfd, module loading, kexec, reboot, swap, acct, quotactl,
 * file-handle syscalls, iopl/ioperm, io_uring, personality other than the
 * default, and the TIOCSTI and TIOCLINUX ioctls (terminal input
 * injection).  Calls from any architecture but the native one (i386
 * through int 0x80, x32 numbers with bit 30 set) kill the process.
 *
 * Landlock.  Read and execute everywhere in the pod's view; write under
 * /workspace, /tmp, /run and /dev (for /dev/null, /dev/tty, /dev/pts).
 * From ABI 6 on, signals and abstract unix sockets are scoped to the pod.
 * The ABI is read at run time; a kernel without Landlock is reported as a
 * warning unless the caller requires it.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/landlock.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sched.h>
#include <seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sandbox_internal.h"

/* Constants newer than the Debian 12 kernel headers. */
#ifndef LANDLOCK_ACCESS_FS_REFER
#define LANDLOCK_ACCESS_FS_REFER (1ULL << 13)
#endif
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif
#ifndef LANDLOCK_ACCESS_FS_IOCTL_DEV
#define LANDLOCK_ACCESS_FS_IOCTL_DEV (1ULL << 15)
#endif
#ifndef LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET
#define LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0)
#define LANDLOCK_SCOPE_SIGNAL (1ULL << 1)
#endif
#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

/* struct landlock_ruleset_attr as of ABI 6 (scoped added). */
struct nu__ruleset_attr {
    uint64_t handled_access_fs;
    uint64_t handled_access_net;
    uint64_t scoped;
};

#define NU__LL_READ (LANDLOCK_ACCESS_FS_EXECUTE | \
                     LANDLOCK_ACCESS_FS_READ_FILE | \
                     LANDLOCK_ACCESS_FS_READ_DIR)
#define NU__LL_WRITE (LANDLOCK_ACCESS_FS_WRITE_FILE | \
                      LANDLOCK_ACCESS_FS_REMOVE_DIR | \
                      LANDLOCK_ACCESS_FS_REMOVE_FILE | \
                      LANDLOCK_ACCESS_FS_MAKE_CHAR | \
                      LANDLOCK_ACCESS_FS_MAKE_DIR | \
                      LANDLOCK_ACCESS_FS_MAKE_REG | \
                      LANDLOCK_ACCESS_FS_MAKE_SOCK | \
                      LANDLOCK_ACCESS_FS_MAKE_FIFO | \
                      LANDLOCK_ACCESS_FS_MAKE_BLOCK | \
                      LANDLOCK_ACCESS_FS_MAKE_SYM | \
                      LANDLOCK_ACCESS_FS_REFER | \
                      LANDLOCK_ACCESS_FS_TRUNCATE)

static const char *const nu__ll_writable[] = {
    "/workspace", "/tmp", "/run", "/dev", NULL
};

int nu__landlock_abi(void)
{
    long abi = syscall(SYS_landlock_create_ruleset, NULL, 0,
                       LANDLOCK_CREATE_RULESET_VERSION);
    return abi < 0 ? 0 : (int)abi;
}

/* The file system rights that a kernel of the given ABI supports. */
static uint64_t nu__ll_fs_rights(int abi)
{
    uint64_t rights = NU__LL_READ | NU__LL_WRITE;

    if (abi < 2)
        rights &= ~LANDLOCK_ACCESS_FS_REFER;
    if (abi < 3)
        rights &= ~LANDLOCK_ACCESS_FS_TRUNCATE;
    if (abi >= 5)
        rights |= LANDLOCK_ACCESS_FS_IOCTL_DEV;
    return rights;
}

static int nu__ll_allow(int ruleset, const char *path, uint64_t access,
                        nu_err_t *err)
{
    struct landlock_path_beneath_attr rule = { .allowed_access = access };
    int rc;

    rule.parent_fd = open(path, O_PATH | O_CLOEXEC);
    if (rule.parent_fd < 0)
        return errno == ENOENT ? NU_OK :
               nu_err_errno(err, errno, "sandbox: cannot open '%s' for "
                            "Landlock", path);
    rc = (int)syscall(SYS_landlock_add_rule, ruleset,
                      LANDLOCK_RULE_PATH_BENEATH, &rule, 0);
    close(rule.parent_fd);
    if (rc != 0)
        return nu_err_errno(err, errno, "sandbox: cannot add Landlock rule "
                            "for '%s'", path);
    return NU_OK;
}

static int nu__landlock(int abi, nu_err_t *err)
{
    struct nu__ruleset_attr attr = { 0 };
    size_t attr_size;
    uint64_t rights = nu__ll_fs_rights(abi);
    int ruleset;
    int rc;

    attr.handled_access_fs = rights;
    attr_size = offsetof(struct nu__ruleset_attr, handled_access_net);
    if (abi >= 6) {
        attr.scoped = LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET |
                      LANDLOCK_SCOPE_SIGNAL;
        attr_size = sizeof attr;
    }

    ruleset = (int)syscall(SYS_landlock_create_ruleset, &attr, attr_size,
                           0);
    if (ruleset < 0)
        return nu_err_errno(err, errno, "sandbox: cannot create Landlock "
                            "ruleset (ABI %d)", abi);

    rc = nu__ll_allow(ruleset, "/", NU__LL_READ, err);
    for (size_t i = 0; rc == NU_OK && nu__ll_writable[i] != NULL; i++) {
        uint64_t access = rights;
        if (strcmp(nu__ll_writable[i], "/dev") != 0)
            access &= ~LANDLOCK_ACCESS_FS_IOCTL_DEV;
        rc = nu__ll_allow(ruleset, nu__ll_writable[i], access, err);
    }
    if (rc == NU_OK &&
        syscall(SYS_landlock_restrict_self, ruleset, 0) != 0)
        rc = nu_err_errno(err, errno, "sandbox: cannot enforce Landlock "
                          "ruleset");
    close(ruleset);
    return rc;
}

/* Capabilities: all five sets must be empty. */
static int nu__verify_no_caps(nu_err_t *err)
{
    struct __user_cap_header_struct header = {
        .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0
    };
    struct __user_cap_data_struct data[2];

    if (syscall(SYS_capget, &header, data) != 0)
        return nu_err_errno(err, errno, "sandbox: cannot read "
                            "capabilities");
    for (int i = 0; i < 2; i++)
        if (data[i].effective != 0 || data[i].permitted != 0 ||
            data[i].inheritable != 0)
            return nu_err_set(err, NU_ESANDBOX, "sandbox: cannot start "
                              "pod: capabilities left after exec "
                              "(effective 0x%x, permitted 0x%x)",
                              data[i].effective, data[i].permitted);

    for (int cap = 0;; cap++) {
        int in_bset = prctl(PR_CAPBSET_READ, cap);
        if (in_bset < 0)
            break;
        if (in_bset != 0)
            return nu_err_set(err, NU_ESANDBOX, "sandbox: cannot start "
                              "pod: capability %d left in the bounding "
                              "set", cap);
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, cap, 0, 0) > 0)
            return nu_err_set(err, NU_ESANDBOX, "sandbox: cannot start "
                              "pod: capability %d left in the ambient set",
                              cap);
    }
    return NU_OK;
}

/* Add "return errno for name" to ctx. */
static int nu__deny(scmp_filter_ctx ctx, const char *name, int errnum)
{
    int nr = seccomp_syscall_resolve_name(name);

    if (nr == __NR_SCMP_ERROR)
        return 0;  /* not a syscall on this architecture */
    return seccomp_rule_add(ctx, SCMP_ACT_ERRNO(errnum), nr, 0);
}

const char *const nu__denied_syscalls[] = {
    "unshare", "setns",
    "mount", "umount", "umount2", "fsopen", "fsmount", "fsconfig", "fspick",
    "move_mount", "open_tree", "mount_setattr", "pivot_root", "chroot",
    "ptrace", "process_vm_readv", "process_vm_writev",
    "add_key", "keyctl", "request_key",
    "bpf", "perf_event_open", "userfaultfd",
    "init_module", "finit_module", "delete_module",
    "kexec_load", "kexec_file_load", "reboot", "swapon", "swapoff", "acct",
    "quotactl", "quotactl_fd", "open_by_handle_at", "name_to_handle_at",
    "iopl", "ioperm", "io_uring_setup", "io_uring_enter",
    "io_uring_register", "lookup_dcookie", "nfsservctl", "syslog",
    "vhangup", "uselib", "settimeofday", "clock_settime", "clock_adjtime",
    "adjtimex", "fanotify_init", "kcmp", "open_tree_attr",
    NULL
};

static int nu__seccomp_rules(scmp_filter_ctx ctx)
{
    static const unsigned long ns_flags[] = {
        CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET,
        CLONE_NEWIPC, CLONE_NEWUTS, CLONE_NEWCGROUP, CLONE_NEWTIME,
    };
    int rc = 0;

    for (size_t i = 0; rc == 0 && nu__denied_syscalls[i] != NULL; i++)
        rc = nu__deny(ctx, nu__denied_syscalls[i], EPERM);

    /* clone: the first argument contains the flags on x86_64. */
    for (size_t i = 0; rc == 0 && i < sizeof ns_flags / sizeof ns_flags[0];
         i++)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone),
                              1, SCMP_A0(SCMP_CMP_MASKED_EQ, ns_flags[i],
                                         ns_flags[i]));
    if (rc == 0)
        rc = nu__deny(ctx, "clone3", ENOSYS);

    /* Terminal input injection; compare the low 32 bits only, as the
     * kernel does for the ioctl command. */
    if (rc == 0)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ioctl), 1,
                              SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffUL,
                                      TIOCSTI));
    if (rc == 0)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ioctl), 1,
                              SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffUL,
                                      TIOCLINUX));

    /* No set-ID programs or device nodes in the host's workspace. */
    if (rc == 0)
        rc = nu__seccomp_deny_setid(ctx);
    return rc;
}

/* personality may only set the default domain or query (0xffffffff).
 * libseccomp accepts one comparison per argument in a rule, so this is a
 * second, hand-written filter.  The kernel applies the strictest result of
 * all filters, and the libseccomp filter already kills foreign
 * architectures. */
static int nu__personality_filter(void)
{
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_personality, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                 offsetof(struct seccomp_data, args[0])),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, PER_LINUX, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0xffffffffU, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {
        .len = (unsigned short)(sizeof code / sizeof code[0]),
        .filter = code,
    };

    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) == 0 ?
           0 : -errno;
}

/* Build the libseccomp context of the filter into *out. */
static int nu__seccomp_build(scmp_filter_ctx *out, nu_err_t *err)
{
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    int rc;

    *out = NULL;
    if (ctx == NULL)
        return nu_err_set(err, NU_ENOMEM, "sandbox: cannot create seccomp "
                          "filter: out of memory");

    /* Only the native architecture is in the filter: the others (i386
     * via int 0x80, x32) take the bad-architecture action. */
    rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH,
                          SCMP_ACT_KILL_PROCESS);
    if (rc == 0)
        rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 1);
    if (rc == 0)
        rc = nu__seccomp_rules(ctx);
    if (rc != 0) {
        seccomp_release(ctx);
        return nu_err_set(err, NU_ESANDBOX, "sandbox: cannot build seccomp "
                          "filter: %s", strerror(-rc));
    }
    *out = ctx;
    return NU_OK;
}

/* The exported filter, built once per host process. */
static pthread_mutex_t nu__bpf_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sock_filter *nu__bpf_code;
static size_t nu__bpf_count;

/* Export ctx as raw BPF into a malloc'd array. */
static int nu__seccomp_export(scmp_filter_ctx ctx, struct sock_filter **code,
                              size_t *count, nu_err_t *err)
{
    int fd = memfd_create("nucleus-seccomp", MFD_CLOEXEC);
    off_t size;
    int rc = NU_OK;

    if (fd < 0)
        return nu_err_errno(err, errno, "sandbox: cannot export seccomp "
                            "filter");
    if (seccomp_export_bpf(ctx, fd) != 0 ||
        (size = lseek(fd, 0, SEEK_END)) <= 0 ||
        size % (off_t)sizeof(struct sock_filter) != 0 ||
        size / (off_t)sizeof(struct sock_filter) > BPF_MAXINSNS) {
        rc = nu_err_set(err, NU_ESANDBOX, "sandbox: cannot export seccomp "
                        "filter: libseccomp produced no valid program");
        goto out;
    }
    *code = malloc((size_t)size);
    if (*code == NULL) {
        rc = nu_err_set(err, NU_ENOMEM, "sandbox: out of memory");
        goto out;
    }
    if (pread(fd, *code, (size_t)size, 0) != size) {
        free(*code);
        *code = NULL;
        rc = nu_err_errno(err, errno, "sandbox: cannot read the exported "
                          "seccomp filter");
        goto out;
    }
    *count = (size_t)size / sizeof(struct sock_filter);

out:
    close(fd);
    return rc;
}

int nu__seccomp_program(const void **code, size_t *count, nu_err_t *err)
{
    scmp_filter_ctx ctx;
    int rc = NU_OK;

    pthread_mutex_lock(&nu__bpf_lock);
    if (nu__bpf_code == NULL) {
        rc = nu__seccomp_build(&ctx, err);
        if (rc == NU_OK) {
            rc = nu__seccomp_export(ctx, &nu__bpf_code, &nu__bpf_count, err);
            seccomp_release(ctx);
        }
    }
    *code = nu__bpf_code;
    *count = nu__bpf_count;
    pthread_mutex_unlock(&nu__bpf_lock);
    return rc;
}

int nu__seccomp_apply(const void *code, size_t count)
{
    struct sock_fprog prog = {
        .len = (unsigned short)count,
        .filter = (struct sock_filter *)code,
    };

    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) != 0)
        return -errno;
    return nu__personality_filter();
}

int nu__seccomp_install(bool load, nu_err_t *err)
{
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    int rc;

    if (ctx == NULL)
        return nu_err_set(err, NU_ENOMEM, "sandbox: cannot create seccomp "
                          "filter: out of memory");

    /* Only the native architecture is in the filter: the others (i386
     * via int 0x80, x32) take the bad-architecture action. */
    rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH,
                          SCMP_ACT_KILL_PROCESS);
    if (rc == 0)
        rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 1);
    if (rc == 0)
        rc = nu__seccomp_rules(ctx);
    if (rc == 0 && load)
        rc = seccomp_load(ctx);
    if (rc == 0 && load)
        rc = nu__personality_filter();

    seccomp_release(ctx);
    if (rc != 0)
        return nu_err_set(err, NU_ESANDBOX, "sandbox: cannot %s seccomp "
                          "filter: %s", load ? "load" : "build",
                          strerror(-rc));
    return NU_OK;
}

int nu__harden(bool require_landlock, int *landlock_abi, char *warn,
               size_t warn_size, nu_err_t *err)
{
    int abi;
    int rc;

    warn[0] = '\0';
    rc = nu__verify_no_caps(err);
    if (rc < 0)
        return rc;

    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
        return nu_err_errno(err, errno, "sandbox: cannot set no_new_privs");
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0 ||
        prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0)
        return nu_err_errno(err, errno, "sandbox: cannot clear the dumpable "
                            "flag");

    abi = nu__landlock_abi();
    *landlock_abi = abi;
    if (abi == 0 && require_landlock)
        return nu_err_set(err, NU_ENOTSUP, "sandbox: cannot enforce "
                          "Landlock: the kernel has no Landlock (boot with "
                          "lsm=...,landlock, or do not require it)");
    if (abi == 0) {
        snprintf(warn, warn_size, "Landlock is not available on this "
                 "kernel; the pod relies on its mount namespace alone");
    } else {
        rc = nu__landlock(abi, err);
        if (rc < 0)
            return rc;
    }

    /* The filter was installed before exec (sandbox_ns.c); check it. */
    if (prctl(PR_GET_SECCOMP, 0, 0, 0, 0) != 2)
        return nu_err_set(err, NU_ESANDBOX, "sandbox: cannot start pod: no "
                          "seccomp filter is installed in the init");
    return NU_OK;
}
