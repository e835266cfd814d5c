/*
 * sandbox_vm_internal.h - shared between the sandbox_vm*.c files.
 */
#ifndef NUCLEUS_SANDBOX_VM_INTERNAL_H
#define NUCLEUS_SANDBOX_VM_INTERNAL_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "nucleus/error.h"
#include "nucleus/sandbox.h"

/* Return the seccomp filter for QEMU (sandbox_vm_seccomp.c) as raw BPF:
 * *code (OUT) is a struct sock_filter array of *count entries, built on
 * first use and owned by the library. */
int nu__vm_seccomp_program(const void **code, size_t *count, nu_err_t *err);

#define NU__VM_MAX_ARGS 64

/* Entries of QEMU's root: host paths made visible below a tmpfs. */
#define NU__VM_ROOT_MAX 16

typedef enum {
    NU__VM_ROOT_MKDIR,       /* an empty directory */
    NU__VM_ROOT_PROC,        /* a proc file system of QEMU's PID ns */
    NU__VM_ROOT_BIND_DIR,    /* a bind mount of a host directory */
    NU__VM_ROOT_BIND_FILE,   /* a bind mount of a host file (device) */
    NU__VM_ROOT_SYMLINK      /* a symbolic link to source */
} nu__vm_root_kind_t;

typedef struct nu__vm_root_entry {
    nu__vm_root_kind_t kind;
    bool read_only;
    bool recursive;          /* MS_REC: submounts come along */
    char source[PATH_MAX];   /* host path, or the link's target */
    char target[32];         /* path relative to the new root */
} nu__vm_root_entry_t;

/* One QEMU process.  The child of clone reads it and allocates nothing,
 * so every string it needs is prepared here before the clone. */
typedef struct nu__vm {
    bool pooled;        /* booted by the warm pool, 9p root is share */
    bool attached;      /* the workspace is bind-mounted on share/ws */
    char share[96];     /* RUN_DIR/share, the 9p root of a pooled VM */
    char root[96];      /* RUN_DIR/root, where QEMU's tmpfs root goes */
    char run_dir[64];
    char console[128];
    char image_dir[4096];
    char workspace[PATH_MAX];
    char empty[96];     /* RUN_DIR/empty, which covers blocked files */
    /* nu_sandbox_opts_t's masks, laid by the child of a cold boot; they
     * point into the caller's options, valid until nu__vm_boot returns */
    const char *const *block_paths;
    const char *const *write_block_paths;
    char qemu_path[PATH_MAX];   /* the binary as QEMU's root shows it */
    int qmp_fd;
    int serial_fd;
    int alive_fd;       /* write end held until QMP answers (see spawn) */
    pid_t pid;
    int pidfd;
    const void *seccomp_code;   /* sandbox_vm_seccomp.c's filter */
    size_t seccomp_count;
    /* Identity user namespace maps, for an owner that is not root. */
    char uid_map[32];
    char gid_map[32];
    nu__vm_root_entry_t entries[NU__VM_ROOT_MAX];
    size_t nentries;
    /* QEMU's argv, and the buffers of its formatted arguments */
    char *argv[NU__VM_MAX_ARGS];
    char args[12][4400];
} nu__vm_t;

/* Time limits for boot to agent-ready.  Under TCG the Debian 6.1 kernel
 * took about 10 s on a 2-core host (docs/benchmarks.md). */
#define NU__VM_BOOT_TCG_MS 120000
#define NU__VM_BOOT_KVM_MS 10000

/* A file at the root of a pooled VM's share.  The agent then mounts the
 * share's "ws" directory, where the host binds the workspace on
 * acquisition, at /workspace before it replies to the hello. */
#define NU__VM_POOL_MARKER ".nucleus-pool"

/* The nice value of pooled QEMU processes until acquisition. */
#define NU__VM_POOL_NICE 19

/* Maximum entries of each mask list, as in the ns tier. */
#define NU__VM_MAX_MASKS 1024

/* Check nu_sandbox_opts_t's block_paths and write_block_paths: at most
 * NU__VM_MAX_MASKS entries each, every one a relative path that does not
 * climb out of the workspace (sandbox_vm_masks.c). */
int nu__vm_check_masks(const nu_sandbox_opts_t *opts, nu_err_t *err);

/* Cover the block paths beneath the workspace directory ws_fd and bind
 * the write-block paths read-only.  A blocked file gets a read-only bind
 * of empty_fd, an empty regular file, and a blocked directory an empty
 * read-only tmpfs.  A path whose last component is a symbolic link
 * covers the link, never its target.  Paths that are missing, or that
 * pass through a symbolic link or a mount on the way, are skipped.
 * Makes system calls only, so the child of clone may call it.  Returns
 * 0, or -1 with errno set and *failed naming the path. */
int nu__vm_lay_masks(int ws_fd, int empty_fd, const char *const *block,
                     const char *const *write_block, const char **failed);

/* Check that the kernel and initramfs in dir, and vmlinux when image.json
 * lists vmlinux_sha256, match the SHA-256 values of its image.json
 * (sandbox_vm_image.c).  A process hashes an unchanged image once.
 * Returns NU_OK, or NU_EINVAL or an I/O error naming the file and the
 * rebuild command. */
int nu__vm_image_verify(const char *dir, nu_err_t *err);

/* Extract the ELF vmlinux from the x86 bzImage bz (sandbox_vm_vmlinux.c):
 * locate the payload by the boot protocol header, decompress it (xz, gzip
 * or zstd) and check that the result is an ELF64 x86-64 file.  On success
 * *out (OUT, free it) contains *out_len bytes.  Returns NU_OK, NU_EINVAL (bad
 * header, corrupt payload, not ELF64 x86-64), NU_ENOTSUP (another payload
 * format, err names it) or NU_ENOMEM. */
int nu__vm_vmlinux_extract(const unsigned char *bz, size_t len,
                           unsigned char **out, size_t *out_len,
                           nu_err_t *err);

/* Write a new pod id, "vm.PID.SEQ", into out. */
void nu__vm_pod_id(char *out, size_t size);

/* Queue (nu__sandbox_send_ahead) a _set_env request carrying env, or the
 * default environment of nu_sandbox_opts_t when env is NULL, and 64 bytes
 * from getrandom as its blob for the agent to credit to the guest's
 * entropy pool.  env must have passed nu__vm_check_env. */
int nu__vm_queue_env(nu_sandbox_t *sb, const char *const *env,
                     nu_err_t *err);

/* Allocate a VM with a fresh run directory /tmp/nucleus-vm.PID.XXXXXX.
 * workspace may be "" for a pooled VM. */
nu__vm_t *nu__vm_new(const char *image_dir, const char *workspace,
                     nu_err_t *err);

/* Start QEMU and wait until the guest agent is ready (QMP handshake,
 * then the ready line on the console). */
int nu__vm_boot(nu__vm_t *vm, const nu_sandbox_opts_t *opts, bool kvm,
                int timeout_ms, nu_err_t *err);

/* Stop QEMU, close the descriptors, remove the run directory, free. */
void nu__vm_free(nu__vm_t *vm);

/* The release hook for nu__sandbox_adopt: the sandbox has reaped QEMU and
 * closed the serial stream and the pidfd. */
void nu__vm_release(void *data);

/* Take a pooled guest for a pod (sandbox_vm_pool.c): NU_OK with *out
 * (OUT) the adopted pod, workspace attached and the environment and a
 * fresh entropy seed queued; NU_ENOENT when no pooled guest matches (the
 * caller boots one); another code when acquisition failed. */
int nu__vm_pool_acquire(const nu_sandbox_opts_t *opts,
                        const char *image_dir, const char *workspace,
                        bool kvm, nu_sandbox_t **out, nu_err_t *err);

/* Create dir (mode 0700, or 0755 when shared) unless it exists, then
 * check that it is a real directory owned by the caller that no other
 * user can write to (sandbox_vm.c).  Returns NU_OK or NU_EPERM. */
int nu__vm_private_dir(const char *dir, bool shared, nu_err_t *err);

#endif
