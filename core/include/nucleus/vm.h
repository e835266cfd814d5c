/*
 * vm.h - the microVM isolation tier ("vm"): guest image and QEMU driver.
 *
 * A "vm" pod is a QEMU microvm guest whose PID 1 is the guest agent
 * (vm/agent/agent.c).  The agent serves the same host <-> pod protocol as
 * the namespace pod's init (proto.h) over a virtio serial port, so
 * nu_sandbox_create with isolation "vm" (or "vm:IMAGE_DIR") returns an
 * ordinary nu_sandbox_t and nu_sandbox_call, nu_sandbox_tool and
 * nu_sandbox_close work unchanged.  docs/vm.md describes the image, the
 * boot, the workspace share and the threat model.
 */
#ifndef NUCLEUS_VM_H
#define NUCLEUS_VM_H

#include <stdbool.h>
#include <stddef.h>

#include "nucleus/error.h"

/* The files of an image directory. */
#define NU_VM_KERNEL_FILE "vmlinuz"
#define NU_VM_INITRAMFS_FILE "initramfs.cpio"
#define NU_VM_MANIFEST_FILE "image.json"
#define NU_VM_VMLINUX_FILE "vmlinux"

typedef struct nu_vm_image_opts {
    /* Kernel image (vmlinuz-RELEASE).  NULL selects the newest
     * /boot/vmlinuz-* whose /lib/modules/RELEASE has the 9p modules. */
    const char *kernel;
    /* Directory holding modules.dep for the kernel; NULL selects
     * /lib/modules/RELEASE, RELEASE taken from the kernel's file name. */
    const char *modules_dir;
    /* The guest agent (a static executable), installed as /init.  NULL
     * selects $NUCLEUS_VM_AGENT, then the agent of the build tree. */
    const char *agent;
    /* BusyBox (a static executable); NULL selects /bin/busybox. */
    const char *busybox;
    const char *out_dir;     /* created when missing; required */
    /* Only /init (agent) and /dev/console: no BusyBox, no modules.  Used
     * for the bare-boot baseline of the benchmark. */
    bool init_only;
    /* Also write OUT_DIR/vmlinux, the ELF kernel extracted from the
     * bzImage, for the Firecracker driver.  Without it a vmlinux left by
     * an earlier build is removed so it cannot go stale. */
    bool vmlinux;
    bool progress;           /* print progress lines on stderr */
} nu_vm_image_opts_t;

/* Build OUT_DIR/vmlinuz (a copy of the kernel), OUT_DIR/initramfs.cpio
 * and OUT_DIR/image.json.  The initramfs is a newc cpio archive with
 * entries sorted by path, mtime 0, owner 0:0 and inode numbers in entry
 * order, so the same inputs give the same bytes.  It holds /init (the
 * agent), /bin/busybox with a symbolic link per applet, the virtio-9p,
 * virtio_console, virtio_mmio and virtio-rng modules with their
 * dependencies (load order in /lib/modules/nucleus/order) and an empty
 * root file system layout.  Files are written beside their target and
 * renamed into place.  With opts->vmlinux, OUT_DIR/vmlinux is the ELF
 * kernel decompressed from the bzImage and image.json records its
 * SHA-256 as vmlinux_sha256.  Returns NU_OK, NU_EINVAL (missing option),
 * NU_ENOENT (an input not found, err names it and the package that
 * provides it), NU_ENOTSUP (compressed modules, or a kernel payload
 * format other than xz, gzip and zstd) or NU_EIO. */
int nu_vm_image_build(const nu_vm_image_opts_t *opts, nu_err_t *err);

/* The number of booted guests waiting in the warm pool (NUCLEUS_VM_POOL,
 * docs/vm.md); 0 when the pool is off. */
int nu_vm_pool_ready(void);

/* Write the default image directory (STATE_DIR/vm/image) into out. */
int nu_vm_image_default_dir(char *out, size_t size, nu_err_t *err);

#endif
