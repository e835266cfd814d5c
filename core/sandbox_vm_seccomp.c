/*
 * sandbox_vm_seccomp.c - the seccomp filter the vm driver puts on QEMU,
 * below QEMU's own -sandbox filter.
 *
 * QEMU serves the workspace over 9p with security_model=none, so it
 * applies the guest's chmod, open(O_CREAT) and mknod requests to host
 * files with QEMU's own credentials.  When the owner runs as root, guest
 * root could otherwise leave a set-user-ID root program or a device node
 * in the host workspace.  This filter (libseccomp, default allow) makes
 * those requests fail with the rules of sandbox_setid.c, which the pod
 * filters of the other tiers contain as well.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <pthread.h>
#include <seccomp.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sandbox_vm_internal.h"
#include "sandbox_internal.h"

static pthread_mutex_t nu__vm_bpf_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sock_filter *nu__vm_bpf_code;
static size_t nu__vm_bpf_count;

static int nu__vm_seccomp_rules(scmp_filter_ctx ctx)
{
    return nu__seccomp_deny_setid(ctx);
}

static int nu__vm_seccomp_export(scmp_filter_ctx ctx, nu_err_t *err)
{
    int fd = memfd_create("nucleus-vm-seccomp", MFD_CLOEXEC);
    off_t size;
    int rc = NU_OK;

    if (fd < 0)
        return nu_err_errno(err, errno, "vm: cannot export the QEMU "
                            "seccomp filter");
    if (seccomp_export_bpf(ctx, fd) != 0 ||
        (size = lseek(fd, 0, SEEK_END)) <= 0 ||
        size % (off_t)sizeof(struct sock_filter) != 0 ||
        size / (off_t)sizeof(struct sock_filter) > BPF_MAXINSNS) {
        rc = nu_err_set(err, NU_ESANDBOX, "vm: cannot export the QEMU "
                        "seccomp filter: libseccomp produced no valid "
                        "program");
        goto out;
    }
    nu__vm_bpf_code = malloc((size_t)size);
    if (nu__vm_bpf_code == NULL) {
        rc = nu_err_set(err, NU_ENOMEM, "vm: out of memory");
        goto out;
    }
    if (pread(fd, nu__vm_bpf_code, (size_t)size, 0) != size) {
        free(nu__vm_bpf_code);
        nu__vm_bpf_code = NULL;
        rc = nu_err_errno(err, errno, "vm: cannot read the exported "
                          "seccomp filter");
        goto out;
    }
    nu__vm_bpf_count = (size_t)size / sizeof(struct sock_filter);

out:
    close(fd);
    return rc;
}

int nu__vm_seccomp_program(const void **code, size_t *count, nu_err_t *err)
{
    scmp_filter_ctx ctx;
    int rc = NU_OK;

    pthread_mutex_lock(&nu__vm_bpf_lock);
    if (nu__vm_bpf_code == NULL) {
        ctx = seccomp_init(SCMP_ACT_ALLOW);
        if (ctx == NULL || nu__vm_seccomp_rules(ctx) != 0)
            rc = nu_err_set(err, NU_ESANDBOX, "vm: cannot build the QEMU "
                            "seccomp filter with libseccomp");
        if (rc == NU_OK)
            rc = nu__vm_seccomp_export(ctx, err);
        if (ctx != NULL)
            seccomp_release(ctx);
    }
    *code = nu__vm_bpf_code;
    *count = nu__vm_bpf_count;
    pthread_mutex_unlock(&nu__vm_bpf_lock);
    return rc;
}
