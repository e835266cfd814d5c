/*
 * sandbox_vm_seccomp.c - the seccomp filter the vm driver puts on QEMU,
 * below QEMU's own -sandbox filter.
 *
 * QEMU serves the workspace over 9p with security_model=none, so it
 * applies the guest's chmod, open(O_CREAT) and mknod requests to host
 * files with QEMU's own credentials.  When the owner runs as root, guest
 * root could otherwise leave a set-user-ID root program or a device node
 * in the host workspace.  This filter (libseccomp, default allow) makes
 * those requests fail with EPERM:
 *   - chmod, fchmod, fchmodat with S_ISUID or S_ISGID in the mode;
 *   - open, openat, creat, mkdir, mkdirat with either bit in the mode;
 *   - mknod, mknodat of a character or block device;
 *   - openat2 gets ENOSYS because its mode is inside a structure the
 *     filter cannot read, and fchmodat2 (added in Linux 6.6) gets ENOSYS
 *     as well, so callers fall back to openat and fchmodat.
 * The namespace tier's bind mount is unaffected: there the pod has no
 * capabilities to create such files.
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

#ifndef SYS_fchmodat2
#define SYS_fchmodat2 452
#endif

static pthread_mutex_t nu__vm_bpf_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sock_filter *nu__vm_bpf_code;
static size_t nu__vm_bpf_count;

/* Make syscall_nr fail with EPERM when argument arg has S_ISUID or
 * S_ISGID set, for each of the two bits that mask contains. */
static int nu__vm_deny_bits(scmp_filter_ctx ctx, int syscall_nr,
                            unsigned arg, scmp_datum_t mask)
{
    static const scmp_datum_t bits[] = { S_ISUID, S_ISGID };

    for (size_t i = 0; i < sizeof bits / sizeof bits[0]; i++) {
        if ((mask & bits[i]) == 0)
            continue;
        if (seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), syscall_nr, 1,
                             SCMP_CMP(arg, SCMP_CMP_MASKED_EQ, bits[i],
                                      bits[i])) != 0)
            return -1;
    }
    return 0;
}

static int nu__vm_deny_devices(scmp_filter_ctx ctx, int syscall_nr,
                               unsigned arg)
{
    static const scmp_datum_t types[] = { S_IFCHR, S_IFBLK };

    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), syscall_nr, 1,
                             SCMP_CMP(arg, SCMP_CMP_MASKED_EQ, S_IFMT,
                                      types[i])) != 0)
            return -1;
    return 0;
}

static int nu__vm_seccomp_rules(scmp_filter_ctx ctx)
{
    const scmp_datum_t both = S_ISUID | S_ISGID;

    if (nu__vm_deny_bits(ctx, SCMP_SYS(chmod), 1, both) != 0 ||
        nu__vm_deny_bits(ctx, SCMP_SYS(fchmod), 1, both) != 0 ||
        nu__vm_deny_bits(ctx, SCMP_SYS(fchmodat), 2, both) != 0 ||
        nu__vm_deny_bits(ctx, SCMP_SYS(open), 2, both) != 0 ||
        nu__vm_deny_bits(ctx, SCMP_SYS(openat), 3, both) != 0 ||
        nu__vm_deny_bits(ctx, SCMP_SYS(creat), 1, both) != 0 ||
        nu__vm_deny_bits(ctx, SCMP_SYS(mkdir), 1, both) != 0 ||
        nu__vm_deny_bits(ctx, SCMP_SYS(mkdirat), 2, both) != 0 ||
        nu__vm_deny_devices(ctx, SCMP_SYS(mknod), 1) != 0 ||
        nu__vm_deny_devices(ctx, SCMP_SYS(mknodat), 2) != 0)
        return -1;
    if (seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(openat2),
                         0) != 0 ||
        seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SYS_fchmodat2, 0) != 0)
        return -1;
    return 0;
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
