/*
 * sandbox_setid.c - the rules that keep set-ID programs and device nodes
 * out of the workspace, shared by every tier's seccomp filter.
 *
 * The workspace is a host directory.  A process that owns a file there
 * may set its set-user-ID bit without any capability, and when the pod's
 * uid maps to a privileged host uid the file then runs with that uid for
 * anyone on the host.  The pod's own nosuid mount does not protect the
 * host's view of the same directory.  So every tier rejects, with EPERM:
 *   - chmod, fchmod, fchmodat with S_ISUID or S_ISGID in the mode;
 *   - open, openat, creat, mkdir, mkdirat, mknod, mknodat with either
 *     bit in the mode (mknod makes regular files too);
 *   - mknod, mknodat of a character or block device;
 * and returns ENOSYS for openat2 and fchmodat2, whose mode the filter
 * cannot check.  openat2 keeps the mode in a structure, and without
 * fchmodat2 callers fall back to fchmodat.
 *
 * The ns tier adds these rules to the pod init's filter, the oci tier to
 * its config.json profile, and the vm tier to the filter on QEMU, which
 * applies the guest's 9p requests to host files.
 */
#include <errno.h>
#include <seccomp.h>
#include <string.h>
#include <sys/stat.h>

#include "sandbox_internal.h"

#ifndef SYS_fchmodat2
#define SYS_fchmodat2 452
#endif

const nu__setid_rule_t nu__setid_rules[] = {
    { "chmod",    1, NU__SETID_MODE },
    { "fchmod",   1, NU__SETID_MODE },
    { "fchmodat", 2, NU__SETID_MODE },
    { "open",     2, NU__SETID_MODE },
    { "openat",   3, NU__SETID_MODE },
    { "creat",    1, NU__SETID_MODE },
    { "mkdir",    1, NU__SETID_MODE },
    { "mkdirat",  2, NU__SETID_MODE },
    { "mknod",    1, NU__SETID_MODE },
    { "mknodat",  2, NU__SETID_MODE },
    { "mknod",    1, NU__SETID_DEVICE },
    { "mknodat",  2, NU__SETID_DEVICE },
    { "openat2",  0, NU__SETID_ENOSYS },
    { "fchmodat2", 0, NU__SETID_ENOSYS },
    { NULL, 0, 0 },
};

const unsigned long nu__setid_mode_bits[2] = { S_ISUID, S_ISGID };
const unsigned long nu__setid_device_types[2] = { S_IFCHR, S_IFBLK };

/* The number of name.  New system calls have one number on every
 * architecture, and fchmodat2 is missing from older libseccomp tables. */
static int nu__setid_resolve(const char *name)
{
    int nr = seccomp_syscall_resolve_name(name);

    if (nr == __NR_SCMP_ERROR && strcmp(name, "fchmodat2") == 0)
        nr = SYS_fchmodat2;
    return nr;
}

static int nu__setid_add(scmp_filter_ctx ctx, const nu__setid_rule_t *r,
                         int nr)
{
    for (size_t i = 0; i < 2; i++) {
        scmp_datum_t mask, value;

        if (r->kind == NU__SETID_MODE) {
            mask = nu__setid_mode_bits[i];
            value = mask;
        } else {
            mask = S_IFMT;
            value = nu__setid_device_types[i];
        }
        if (seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 1,
                             SCMP_CMP(r->arg, SCMP_CMP_MASKED_EQ, mask,
                                      value)) != 0)
            return -1;
    }
    return 0;
}

int nu__seccomp_deny_setid(void *ctx)
{
    for (const nu__setid_rule_t *r = nu__setid_rules; r->name != NULL; r++) {
        int nr = nu__setid_resolve(r->name);

        if (nr == __NR_SCMP_ERROR)
            continue;  /* not a syscall on this architecture */
        if (r->kind == NU__SETID_ENOSYS) {
            if (seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), nr, 0) != 0)
                return -1;
        } else if (nu__setid_add(ctx, r, nr) != 0) {
            return -1;
        }
    }
    return 0;
}
