/*
 * sandbox_internal.h - shared between the sandbox_*.c files and podinit.c.
 */
#ifndef NUCLEUS_SANDBOX_INTERNAL_H
#define NUCLEUS_SANDBOX_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "nucleus/error.h"
#include "nucleus/sandbox.h"

/* argv[0] and argv[1] of the pod init; the constructor in podinit.c runs
 * the init instead of main when it finds both. */
#define NU_PODINIT_ARGV0 "nucleus-podinit"
#define NU_PODINIT_ARGV1 "--nucleus-podinit-v1"

/* File descriptors of the init after exec (docs/sandbox.md lists them):
 * 0, 1, 2 are /dev/null inside the pod, 3 is the host stream. */
#define NU_PODINIT_FD 3

/* Capacity of the fixed arrays in a launch plan. */
#define NU__PLAN_MAX_BINDS 64
#define NU__PLAN_MAX_MASKS 1024
#define NU__PLAN_MAX_ENV 128

/* Everything the cloned child needs, prepared by the host before clone so
 * that the child allocates nothing (the host may be multi-threaded). */
typedef struct nu__plan {
    int sock_fd;             /* child's end of the stream */
    int sync_fd;             /* read end: one byte once cgroups are set */
    int exec_fd;             /* sealed memfd holding the init program */
    bool userns;
    bool cgroupns;
    uid_t uid;               /* uid and gid mapped to themselves */
    gid_t gid;
    char base[64];           /* where the new root tmpfs is built */
    const char *workspace;
    const char *rootfs;
    const char *binds[NU__PLAN_MAX_BINDS];
    size_t nbinds;
    const char *block[NU__PLAN_MAX_MASKS];
    size_t nblock;
    const char *write_block[NU__PLAN_MAX_MASKS];
    size_t nwrite_block;
    bool mount_sys;
    const char *hostname;
    nu_sandbox_limits_t limits;
    uint64_t nproc_limit;    /* RLIMIT_NPROC, 0 = leave as is */
    char *const *envp;
    const void *seccomp_code;  /* struct sock_filter[seccomp_count] */
    size_t seccomp_count;
} nu__plan_t;

/* Run in the child of clone: build the pod and exec the init.  Never
 * returns; on failure it writes an error frame to plan->sock_fd and exits
 * with status 1. */
void nu__sandbox_child(const nu__plan_t *plan) __attribute__((noreturn));

/* Choose the file of the init program (see nu_sandbox_opts_t.init_path)
 * into out; "/proc/self/exe" when the running program contains it. */
int nu__sandbox_init_path(const char *init_path, char *out, size_t size,
                          nu_err_t *err);

/* Return a sealed memfd (O_CLOEXEC) holding the init program, creating it
 * on first use; the descriptor is shared by all pods of the process. */
int nu__sandbox_init_fd(const char *init_path, nu_err_t *err);

/* --- cgroups and rlimits (sandbox_limits.c) --- */

#define NU__CG_MAX 4
typedef struct nu__cgroup {
    char paths[NU__CG_MAX][512];  /* one directory per hierarchy */
    size_t count;
    int version;                  /* 1, 2, or 0 when none */
} nu__cgroup_t;

/* Create the pod's cgroups named name and write the limits.  Leaves cg
 * with count 0 (no error) when no writable hierarchy exists. */
int nu__cgroup_create(nu__cgroup_t *cg, const char *name,
                      const nu_sandbox_limits_t *limits, nu_err_t *err);
int nu__cgroup_attach(const nu__cgroup_t *cg, pid_t pid, nu_err_t *err);
/* Kill what is left and remove the directories (retrying while busy). */
void nu__cgroup_destroy(nu__cgroup_t *cg);
/* The name prefix of this process's pod cgroups: "<pid>.<starttime>". */
int nu__cgroup_owner_tag(char *out, size_t size);

/* Apply the pod's rlimits to the calling process (child, before exec).
 * Returns 0 or -errno. */
int nu__rlimits_apply(const nu_sandbox_limits_t *limits,
                      uint64_t nproc_limit);

/* --- hardening inside the init (sandbox_harden.c) --- */

/* Verify that no capability is left (effective, permitted, inheritable,
 * bounding, ambient), then set no_new_privs and PR_SET_DUMPABLE 0,
 * restrict the file system with Landlock and check that the seccomp filter
 * from before exec is in place.
 * *landlock_abi (OUT) is the ABI enforced, 0 when the kernel has none;
 * warn receives a message when Landlock was skipped.  Returns NU_OK or
 * NU_ESANDBOX. */
int nu__harden(bool require_landlock, int *landlock_abi, char *warn,
               size_t warn_size, nu_err_t *err);

/* The Landlock ABI version of the running kernel, 0 when unavailable. */
int nu__landlock_abi(void);

/* Build the seccomp filter into a libseccomp context and load it when
 * load is true.  nucleus doctor calls it with false to check that
 * libseccomp can build the filter. */
int nu__seccomp_install(bool load, nu_err_t *err);

/* Return the filter as raw BPF (*code, OUT, a struct sock_filter array of
 * *count entries), built on first use and owned by the library. */
int nu__seccomp_program(const void **code, size_t *count, nu_err_t *err);

/* The system calls the seccomp filter rejects with EPERM outright,
 * NULL-terminated; the oci tier writes the same list into config.json. */
extern const char *const nu__denied_syscalls[];

/* The set-ID and device rules of every tier (sandbox_setid.c): a
 * NULL-terminated table, with the bits each kind compares. */
typedef enum nu__setid_kind {
    NU__SETID_MODE = 1,   /* EPERM when arg has S_ISUID or S_ISGID */
    NU__SETID_DEVICE,     /* EPERM when arg's S_IFMT is S_IFCHR or S_IFBLK */
    NU__SETID_ENOSYS,     /* ENOSYS for every call */
} nu__setid_kind_t;

typedef struct nu__setid_rule {
    const char *name;
    unsigned arg;
    nu__setid_kind_t kind;
} nu__setid_rule_t;

extern const nu__setid_rule_t nu__setid_rules[];
extern const unsigned long nu__setid_mode_bits[2];
extern const unsigned long nu__setid_device_types[2];

/* Add the table's rules to a libseccomp context (scmp_filter_ctx).
 * Returns 0 or -1. */
int nu__seccomp_deny_setid(void *ctx);

/* Name the pid nu_sandbox_netns_pid returns, for tiers whose sb->pid
 * lives in another network namespace than the pod. */
void nu__sandbox_set_netns_pid(nu_sandbox_t *sb, pid_t pid);

/* Count the processes the real uid owns now, for RLIMIT_NPROC (see
 * sandbox_limits.c); the oci tier counts them the same way. */
uint64_t nu__count_own_processes(void);

/* Set no_new_privs and load the raw filter and the personality filter.
 * Makes system calls only, so the child of clone may call it.  Returns 0
 * or -errno. */
int nu__seccomp_apply(const void *code, size_t count);

/* Serve a run request with "stream": true (sandbox_stream.c): output
 * frames go to host_fd as the command writes, and the returned object is
 * the response (NULL only when out of memory). */
struct nu_executor;
json_t *nu__stream_run(struct nu_executor *ex, int host_fd, int version,
                       const json_t *request, size_t output_max,
                       uint32_t default_timeout_ms);

/* The request name of nu_sandbox_put_file; nu_sandbox_tool rejects tool
 * names starting with '_', so only the host API can send it. */
#define NU__PUT_RUN_FILE "_put_run_file"

/* Write a file below /run/nucleus in the pod (sandbox_files.c); returns
 * the response object (NULL only when out of memory). */
json_t *nu__put_run_file(const json_t *request, const uint8_t *data,
                         size_t len);

/* Point the symbolic link /run/nucleus/REL at a sibling (the "link"
 * member) and prune older generations (sandbox_files.c). */
json_t *nu__put_run_link(const json_t *request);

/* Wrap an init started by another tier (sandbox_oci.c) in a sandbox:
 * sock is the host end of the stream, pid and pidfd the process the host
 * waits for and kills.  Performs the handshake; on NU_OK *out owns sock,
 * pidfd and release_data, and nu_sandbox_close calls release(release_data)
 * after the process is reaped.  On failure the caller keeps all three. */
int nu__sandbox_adopt(const nu_sandbox_opts_t *opts, const char *id,
                      int sock, pid_t pid, int pidfd,
                      void (*release)(void *), void *release_data,
                      nu_sandbox_t **out, nu_err_t *err);

/* Create an "oci:RUNTIME" pod (sandbox_oci.c). */
int nu__oci_create(const nu_sandbox_opts_t *opts, nu_sandbox_t **out,
                   nu_err_t *err);

/* Create a "vm" or "vm:IMAGE_DIR" pod (sandbox_vm.c). */
int nu__vm_create(const nu_sandbox_opts_t *opts, nu_sandbox_t **out,
                  nu_err_t *err);

/* Write a request to the pod now and read its response later: the next
 * nu_sandbox_call reads it before its own and fails the pod (NU_ESANDBOX,
 * pod dead) unless it has "ok": true.  The vm tier queues the pod's
 * environment this way, so a warm-pool pod starts without a round trip.
 * One such request may be pending.  Returns NU_OK, NU_EINVAL (pod not
 * ready, or one pending), NU_ENOMEM, or the write's error (pod dead). */
int nu__sandbox_send_ahead(nu_sandbox_t *sb, const json_t *request,
                           const void *blob, size_t blob_len, nu_err_t *err);

/* Create a "firecracker" or "firecracker:IMAGE_DIR" pod (sandbox_fc.c). */
int nu__fc_create(const nu_sandbox_opts_t *opts, nu_sandbox_t **out,
                  nu_err_t *err);

/* The pod init's main loop (podinit.c), reading requests from fd. */
int nu__podinit_main(int fd);
extern const int nu__podinit_linked;

#endif
