/*
 * sandbox.h - the namespace sandbox ("ns" isolation tier).
 *
 * A sandbox is one long-lived pod init process in new user, mount, pid,
 * net, ipc, uts and cgroup namespaces.  Its root file system is assembled
 * from read-only host directories, with the workspace read-write at
 * /workspace, private /tmp and /run, a minimal /dev and a fresh /proc.  Before it
 * reads its first request the init has dropped every capability (bounding
 * and ambient sets included), set no_new_privs and PR_SET_DUMPABLE 0, and
 * installed Landlock and a seccomp filter; the commands it starts inherit
 * all of that.  The host talks to the init over a socketpair with the
 * frame protocol of proto.h.  docs/sandbox.md explains the process model,
 * the mount layout and the threat model.
 *
 * Lifetime.  The init dies with the thread that created the sandbox
 * (PR_SET_PDEATHSIG is tied to the creating thread, not the process), when
 * the host closes the socket, or on nu_sandbox_close.  Because it is PID 1
 * of its pid namespace, every process of the pod dies with it, and the
 * pod's mounts and namespaces go away with the last process.  Cgroups are
 * the one thing a dead owner leaves behind; nu_sandbox_create removes
 * those of dead owners first (see nu_sandbox_sweep).
 *
 * Threads.  All functions may be called from any thread.  One request is
 * in flight per sandbox at a time: nu_sandbox_call holds the sandbox's lock
 * until the response arrives, so concurrent callers queue.
 */
#ifndef NUCLEUS_SANDBOX_H
#define NUCLEUS_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "nucleus/error.h"
#include "nucleus/lattice.h"
#include "nucleus/proto.h"

/* Per-pod resource limits.  0 selects the default in the comment.  The
 * cgroup limits apply when the host has a writable cgroup hierarchy for
 * the controller (root on cgroup v1, or a delegated cgroup v2 subtree);
 * the rlimits always apply, per process. */
typedef struct nu_sandbox_limits {
    uint64_t memory_bytes;    /* cgroup memory limit and RLIMIT_DATA; 2 GiB */
    uint32_t pids;            /* cgroup pids.max; 1024 */
    uint32_t cpu_millis;      /* CPU bandwidth in thousandths of a CPU
                               * (1500 = 1.5 CPUs); 0 = no bandwidth limit */
    uint64_t cpu_seconds;     /* RLIMIT_CPU per process; 0 = none */
    uint64_t file_size_bytes; /* RLIMIT_FSIZE; 4 GiB */
    uint32_t open_files;      /* RLIMIT_NOFILE; 4096 */
    uint64_t tmp_bytes;       /* size of the /tmp tmpfs; 256 MiB */
    uint64_t run_bytes;       /* size of the /run tmpfs; 16 MiB */
} nu_sandbox_limits_t;

/* Flags of nu_sandbox_opts_t. */
#define NU_SANDBOX_NO_USERNS 1        /* root only: no user namespace */
#define NU_SANDBOX_NO_CGROUPS 2       /* rlimits only */
#define NU_SANDBOX_MOUNT_SYS 4        /* bind the host's /sys read-only */
#define NU_SANDBOX_REQUIRE_LANDLOCK 8 /* fail instead of warning when the
                                       * kernel has no Landlock */

typedef struct nu_sandbox_opts {
    const char *workspace;   /* host directory mounted at /workspace;
                              * required */
    const char *rootfs;      /* a directory used as the read-only root
                              * instead of binds; NULL to use binds */
    /* Host paths bound read-only at the same place inside, NULL-terminated;
     * missing ones are skipped and symlinks are copied as symlinks.  NULL
     * selects nu_sandbox_default_binds. */
    const char *const *ro_binds;
    /* Workspace-relative paths hidden inside the pod (files covered by
     * /dev/null, directories by an empty read-only tmpfs) and paths made
     * read-only; NULL-terminated, may be NULL.  See nu_sandbox_collect. */
    const char *const *block_paths;
    const char *const *write_block_paths;
    /* Environment of the init and of every command, "NAME=value",
     * NULL-terminated; NULL selects PATH, HOME=/workspace, LANG=C.UTF-8,
     * TERM=dumb. */
    const char *const *env;
    nu_sandbox_limits_t limits;
    uint32_t timeout_ms;     /* default per-call timeout; 120000 */
    uint32_t output_max;     /* bytes kept per output stream; 1 MiB */
    const char *hostname;    /* "nucleus" when NULL */
    /* An executable that runs the pod init (one linking libnucleus, such as
     * the nucleus binary).  NULL: $NUCLEUS_INIT, then the running program
     * when it links libnucleus statically, then a "nucleus" file in the
     * three directories above a shared module holding libnucleus (a build
     * tree), then "nucleus" found on PATH. */
    const char *init_path;
    int flags;               /* NU_SANDBOX_* */
    /* Isolation tier: NULL or "ns" for the namespace pod described above,
     * "oci:RUNTIME" for an OCI runtime (crun, runc, runsc, kata-runtime,
     * or a path to a runtime binary) running the same init (oci.h),
     * "vm" or "vm:IMAGE_DIR" for a QEMU microvm guest (vm.h). */
    const char *isolation;
    /* The pod has egress (net.h): a "vm" pod then gets a guest network
     * device (docs/vm.md, "Guest network").  The other tiers ignore it,
     * because nu_net_attach gives their network namespace the veth. */
    bool network;
} nu_sandbox_opts_t;

/* The default read-only binds: /usr, /bin, /sbin, /lib, /lib32, /lib64 and
 * the parts of /etc that programs need to start (loader cache, passwd,
 * group, nsswitch, alternatives, certificates, time zone).  /etc/shadow,
 * the rest of /etc, /root, /home, /var and /sys are not bound. */
extern const char *const nu_sandbox_default_binds[];

typedef enum {
    NU_SANDBOX_READY = 0,   /* idle, accepts a request */
    NU_SANDBOX_BUSY = 1,    /* a request is in flight */
    NU_SANDBOX_DEAD = 2,    /* the init exited or the stream broke */
    NU_SANDBOX_CLOSED = 3
} nu_sandbox_state_t;

typedef struct nu_sandbox nu_sandbox_t;

/* Called for each output frame of a streaming request: stream is
 * "stdout" or "stderr". */
typedef void (*nu_sandbox_output_fn)(const char *stream, const void *data,
                                     size_t len, void *userdata);

/* Fill opts with defaults (everything zero or NULL). */
void nu_sandbox_opts_init(nu_sandbox_opts_t *opts);

/* Start a pod and wait until its init reports ready.  On NU_OK *out (OUT)
 * owns the pod; free it with nu_sandbox_close.  Returns NU_EINVAL (missing
 * or non-directory workspace or rootfs, bad option), NU_ENOTSUP (the host
 * lacks a mechanism the options require, such as user namespaces for a
 * non-root caller), NU_ESANDBOX (the pod failed to start, and err contains
 * the init's own message), NU_ETIMEDOUT or NU_ENOMEM. */
int nu_sandbox_create(const nu_sandbox_opts_t *opts, nu_sandbox_t **out,
                      nu_err_t *err);

/* Send one request ({"tool": ..., ...}; an "id" is added) with an optional
 * blob and wait for its response frame (OUT, free with nu_frame_free).
 * Output frames for the request go to on_output (may be NULL); a run
 * request streams when it has "stream": true.  Returns NU_OK, NU_EIO or
 * NU_EPROTO (the pod died or broke the protocol: the sandbox is then
 * DEAD), NU_ETIMEDOUT (no response within the request's timeout plus 5
 * seconds: the pod is killed) or NU_EINVAL (sandbox not READY). */
int nu_sandbox_call(nu_sandbox_t *sb, const json_t *request,
                    const void *blob, size_t blob_len,
                    nu_sandbox_output_fn on_output, void *userdata,
                    nu_frame_t *response, nu_err_t *err);

/* Run one tool call for the pipeline: call is {"tool": NAME, ARGS...}, as
 * executor.h describes.  Tool names starting with '_' are reserved for the
 * host's own requests and rejected (NU_EINVAL, kind invalid_request).  *result (OUT) is the result object ({"ok": ...});
 * a sandbox failure yields {"ok": false, "kind": "sandbox_error", ...} and
 * the negative code.  Returns NU_OK when the transport worked, whatever the
 * tool's own outcome. */
int nu_sandbox_tool(nu_sandbox_t *sb, const json_t *call, json_t **result,
                    nu_err_t *err);

/* Write data to /run/nucleus/<path> inside the pod (SVIDs, trust
 * bundles), replacing any previous file atomically; missing directories
 * are created.  path is relative, made of [A-Za-z0-9._-] and '/', without
 * "." or ".." segments; mode is the file mode (0600 for keys).  Returns
 * NU_OK, NU_EIO with the pod's message, or the errors of
 * nu_sandbox_call. */
int nu_sandbox_put_file(nu_sandbox_t *sb, const char *path,
                        const void *data, size_t len, unsigned mode,
                        nu_err_t *err);

/* Point the symbolic link /run/nucleus/PATH at target, a sibling name,
 * replacing any previous link atomically, and remove older sibling
 * directories named ".<name>.*" except target and the previous target.
 * Used to rotate a directory of files as one unit.  Returns as
 * nu_sandbox_put_file. */
int nu_sandbox_put_link(nu_sandbox_t *sb, const char *path,
                        const char *target, nu_err_t *err);

/* Send sig to the pod init (SIGKILL ends the whole pod).  Returns NU_OK or
 * NU_EIO. */
int nu_sandbox_kill(nu_sandbox_t *sb, int sig);

/* Kill the pod, reap it, remove its cgroups and free sb.  NULL is a
 * no-op. */
void nu_sandbox_close(nu_sandbox_t *sb);

/* The init's pid in the host's pid namespace (for the oci tier, the
 * runtime's pid; for the vm tier, QEMU's). */
pid_t nu_sandbox_pid(const nu_sandbox_t *sb);

/* A pid inside the pod's network namespace, where egress is attached:
 * the init for the ns tier, the container's init for the oci tier, QEMU
 * for the vm tier.  0 when the tier has none. */
pid_t nu_sandbox_netns_pid(const nu_sandbox_t *sb);

nu_sandbox_state_t nu_sandbox_state(nu_sandbox_t *sb);
const char *nu_sandbox_state_name(nu_sandbox_state_t state);

/* The pod's id (unique on this host while the owner lives) and the
 * Landlock ABI the init enforces (0 when Landlock is unavailable). */
const char *nu_sandbox_id(const nu_sandbox_t *sb);
int nu_sandbox_landlock_abi(const nu_sandbox_t *sb);

/* Walk workspace (not following symlinks, not crossing into other file
 * systems) and collect the workspace-relative paths that perm's
 * paths.block and paths.write_block sets match, using
 * nu_glob_match_path.  A matched directory is listed and not descended.
 * *block and *write_block (OUT) are NULL-terminated malloc'd arrays; free
 * them with nu_sandbox_free_list.  Returns NU_OK, NU_ENOENT, NU_ELIMIT
 * (more than max_entries entries visited; 0 selects 200000) or
 * NU_ENOMEM. */
int nu_sandbox_collect(const char *workspace, const nu_perm_t *perm,
                       size_t max_entries, char ***block,
                       char ***write_block, nu_err_t *err);
void nu_sandbox_free_list(char **list);

/* Remove the cgroups that pods of dead owners left behind (and kill what
 * is still in them).  nu_sandbox_create calls it; it is public for tools
 * and tests.  Returns the number removed, or a negative code. */
int nu_sandbox_sweep(nu_err_t *err);

#endif
