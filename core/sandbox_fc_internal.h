/*
 * sandbox_fc_internal.h - shared between sandbox_fc.c, sandbox_fc_api.c
 * and tests/unit/test_sandbox_fc.c.
 *
 * The Firecracker driver is split so that every step that talks to
 * Firecracker can be tested without it: the REST client and the request
 * bodies (sandbox_fc_api.c), the jailer's argv and the vsock handshake
 * are plain functions over paths and sockets.
 */
#ifndef NUCLEUS_SANDBOX_FC_INTERNAL_H
#define NUCLEUS_SANDBOX_FC_INTERNAL_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "nucleus/error.h"

/* The guest agent's AF_VSOCK port (vm/agent/vsock.c listens on it). */
#define NU__FC_VSOCK_PORT 1024

/* The first guest context ID a guest may have (0 to 2 are reserved). */
#define NU__FC_GUEST_CID 3

/* Kernel command line.  i8042.* skip probing the keyboard controller
 * Firecracker only partly emulates; reboot=k makes a guest reboot end
 * the process.  Nothing secret goes on this line. */
#define NU__FC_BOOT_ARGS "console=ttyS0 reboot=k panic=1 pci=off " \
    "i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd quiet " \
    "nucleus.transport=vsock"

/* The size of sun_path in struct sockaddr_un, the NUL included. */
#define NU__FC_SOCKET_MAX 108

/* Everything the driver configures through the API before InstanceStart.
 * Paths are as Firecracker sees them: inside the chroot under the
 * jailer, host paths otherwise. */
typedef struct nu__fc_config {
    unsigned vcpus;                 /* 1 to 32 */
    uint64_t mem_mib;
    char kernel[PATH_MAX];          /* ELF vmlinux (or bzImage, see .c) */
    char initrd[PATH_MAX];
    char boot_args[512];
    char workspace_image[PATH_MAX]; /* ext4 image, attached as "workspace" */
    bool workspace_read_only;
    char vsock_uds[NU__FC_SOCKET_MAX];
    unsigned guest_cid;
    char tap[16];                   /* host tap device; "" = no network */
    char guest_mac[18];             /* "" = Firecracker chooses */
} nu__fc_config_t;

/* --- REST client (sandbox_fc_api.c) --- */

/* Wait until a connect() to the API socket succeeds, polling every
 * 5 ms.  pidfd (or -1) is the Firecracker process: its exit ends the
 * wait early.  Returns NU_OK, NU_ETIMEDOUT (the socket never appeared)
 * or NU_ESANDBOX (the process exited). */
int nu__fc_api_wait(const char *socket_path, int pidfd, int timeout_ms,
                    nu_err_t *err);

/* Send one request (method "PUT" or "PATCH", path such as
 * "/machine-config", body a JSON object or NULL) to the API socket.
 * Returns NU_OK on 204 or 200.  A 4xx or 5xx status gives NU_ESANDBOX
 * with the call and Firecracker's fault_message in err, and any other
 * status NU_EPROTO.  A failed socket gives NU_ETIMEDOUT or NU_EIO. */
int nu__fc_api_call(const char *socket_path, const char *method,
                    const char *path, const json_t *body, int timeout_ms,
                    nu_err_t *err);

/* The body of each configuration call, built from cfg (new references;
 * NULL when out of memory). */
json_t *nu__fc_body_machine(const nu__fc_config_t *cfg);
json_t *nu__fc_body_boot(const nu__fc_config_t *cfg);
json_t *nu__fc_body_drive(const nu__fc_config_t *cfg);
json_t *nu__fc_body_network(const nu__fc_config_t *cfg);
json_t *nu__fc_body_vsock(const nu__fc_config_t *cfg);

/* Configure and start the microVM: PUT /machine-config, /boot-source,
 * /drives/workspace, /network-interfaces/eth0 (only when cfg->tap is
 * set), /vsock, /entropy and /actions {"action_type": "InstanceStart"},
 * in that order, stopping at the first failure.  Returns what
 * nu__fc_api_call returns. */
int nu__fc_configure(const char *socket_path, const nu__fc_config_t *cfg,
                     int timeout_ms, nu_err_t *err);

/* Pause the microVM (PATCH /vm) and write a full snapshot (PUT
 * /snapshot/create) of its state and memory to the two paths. */
int nu__fc_snapshot_create(const char *socket_path, const char *state_path,
                           const char *mem_path, int timeout_ms,
                           nu_err_t *err);

/* Load a snapshot into a fresh Firecracker (PUT /snapshot/load with
 * resume_vm true), pointing its vsock device at vsock_uds (NULL keeps the
 * recorded path). */
int nu__fc_snapshot_load(const char *socket_path, const char *state_path,
                         const char *mem_path, const char *vsock_uds,
                         int timeout_ms, nu_err_t *err);

/* --- driver helpers (sandbox_fc.c) --- */

#define NU__FC_JAILER_ARGS 24

/* What the jailer needs to start Firecracker for one pod. */
typedef struct nu__fc_jail {
    const char *jailer;          /* the jailer binary */
    const char *firecracker;     /* --exec-file */
    const char *id;              /* letters, digits and '-', at most 64 */
    uid_t uid;
    gid_t gid;
    const char *chroot_base;     /* --chroot-base-dir */
    const char *api_socket;      /* inside the chroot, e.g. /api.socket */
} nu__fc_jail_t;

/* Fill argv (NULL-terminated, at most NU__FC_JAILER_ARGS entries) with
 * the jailer's command line; the numbers are formatted into buf.  The
 * strings of jail must outlive argv.  Returns NU_OK or NU_EINVAL (an id
 * the jailer would reject). */
int nu__fc_jailer_argv(const nu__fc_jail_t *jail, char **argv,
                       char buf[2][16], nu_err_t *err);

/* The chroot directory the jailer builds:
 * CHROOT_BASE/basename(FIRECRACKER)/ID/root. */
int nu__fc_jail_root(const nu__fc_jail_t *jail, char *out, size_t size,
                     nu_err_t *err);

/* Connect to Firecracker's vsock unix socket and forward to guest port
 * port ("CONNECT <port>\n", expecting "OK <host port>\n").  Firecracker
 * closes the connection while nothing listens in the guest, so the
 * handshake is retried until timeout_ms.  Returns the connected socket
 * (O_CLOEXEC, positioned after the OK line) or NU_ETIMEDOUT,
 * NU_EPROTO (an answer that is not "OK"), NU_ESANDBOX (pidfd exited). */
int nu__fc_vsock_connect(const char *uds_path, unsigned port, int pidfd,
                         int timeout_ms, nu_err_t *err);

/* Choose the Firecracker binary: $NUCLEUS_FIRECRACKER, else
 * "firecracker" found in $PATH.  Returns NU_OK or NU_ENOENT with the
 * message that explains how to install Firecracker or point at it. */
int nu__fc_find_binary(char *out, size_t size, nu_err_t *err);

/* Choose the jailer: $NUCLEUS_JAILER, else "jailer" in $PATH.  Returns
 * true with the path in out, false when there is none. */
bool nu__fc_find_jailer(char *out, size_t size);

#endif
