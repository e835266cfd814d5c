/*
 * vsock.h - the guest agent's vsock transport, used under Firecracker.
 *
 * Firecracker has no virtio serial port and no 9p, so its driver
 * (core/sandbox_fc.c) puts nucleus.transport=vsock on the kernel command
 * line.  The agent then accepts the host's stream on AF_VSOCK and mounts
 * the workspace from the virtio block device the host attached.
 */
#ifndef NUCLEUS_AGENT_VSOCK_H
#define NUCLEUS_AGENT_VSOCK_H

/* Returned when the kernel command line does not select vsock, so the
 * caller goes on with the virtio serial port and the 9p share. */
#define NU__AGENT_VSOCK_UNUSED (-2)

/* The port the host driver connects to (NU__FC_VSOCK_PORT). */
#define NU__AGENT_VSOCK_PORT 1024

/* With nucleus.transport=vsock: listen on AF_VSOCK port 1024 of any
 * context ID, wait for the host's connection and return it (O_CLOEXEC).
 * Returns -1 on failure (reported on the console) and
 * NU__AGENT_VSOCK_UNUSED without that parameter. */
int nu__agent_vsock_open(void);

/* With nucleus.transport=vsock: mount the ext4 image on /dev/vda
 * read-only at /workspace.  Returns 0, -1 on failure (reported on the
 * console) or NU__AGENT_VSOCK_UNUSED. */
int nu__agent_vsock_workspace(void);

#endif
