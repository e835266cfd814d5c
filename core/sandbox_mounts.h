/*
 * sandbox_mounts.h - the file system view of a pod, as one table that the
 * ns tier (sandbox_ns.c mounts it) and the oci tier (sandbox_oci_config.c
 * writes it into config.json) both read.
 *
 * The table lists the pod's own file systems (/proc, /dev and its
 * children, /tmp, /run) with their options, and the device nodes and
 * symbolic links in /dev.  It also lists the /proc entries that are hidden
 * or read-only, and the mount flags of every kind of bind: read-only host
 * directories, the workspace, blocked and write-blocked workspace paths.
 * The list of host directories is nu_sandbox_default_binds (sandbox.h).
 */
#ifndef NUCLEUS_SANDBOX_MOUNTS_H
#define NUCLEUS_SANDBOX_MOUNTS_H

#include <stddef.h>
#include <sys/mount.h>

#include "nucleus/sandbox.h"

/* Where the size= option of a file system comes from. */
typedef enum nu__mount_size {
    NU__MOUNT_SIZE_NONE,     /* no size= option, or a fixed one in data */
    NU__MOUNT_SIZE_TMP,      /* nu_sandbox_limits_t.tmp_bytes */
    NU__MOUNT_SIZE_RUN       /* nu_sandbox_limits_t.run_bytes */
} nu__mount_size_t;

/* One file system of the pod. */
typedef struct nu__mount {
    const char *target;      /* path in the pod */
    const char *type;        /* file system type, also the source */
    unsigned long flags;     /* MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC */
    const char *data;        /* options, comma-separated, without size= */
    nu__mount_size_t size;
} nu__mount_t;

/* The pod's own file systems, each parent before its children, ending
 * with a NULL target.  A read-only one is populated first and remounted
 * read-only after the mounts beneath it. */
extern const nu__mount_t nu__pod_mounts[];

/* The empty read-only tmpfs that covers a blocked workspace directory
 * (target NULL). */
extern const nu__mount_t nu__pod_hidden_dir;

/* Flags of the bind mounts. */
#define NU__BIND_READONLY (MS_RDONLY | MS_NOSUID | MS_NODEV)
#define NU__BIND_WORKSPACE (MS_NOSUID | MS_NODEV)
#define NU__BIND_HIDDEN_FILE (MS_RDONLY | MS_NOSUID | MS_NOEXEC)
#define NU__BIND_DEVICE (MS_NOSUID | MS_NOEXEC)

/* Host device nodes bound into /dev by name ("null"), NULL-terminated
 * when there are fewer than NU__DEV_NODES_MAX.  The fixed size lets the
 * child of clone keep one descriptor per node on its stack. */
#define NU__DEV_NODES_MAX 16
extern const char *const nu__pod_dev_nodes[NU__DEV_NODES_MAX];

/* Symbolic links in /dev: { target, name }, ending with { NULL, NULL }. */
extern const char *const nu__pod_dev_links[][2];

/* Bits of nu__proc_mask_t.cover.  A hidden entry is covered by a
 * read-only /dev/null, so reads return nothing.  A read-only entry
 * rejects writes with EROFS.  An entry can be both. */
#define NU__PROC_HIDDEN 1u
#define NU__PROC_READONLY 2u

typedef struct nu__proc_mask {
    const char *name;        /* below /proc */
    unsigned cover;          /* NU__PROC_HIDDEN and NU__PROC_READONLY */
} nu__proc_mask_t;

/* The covered /proc entries, ending with a NULL name. */
extern const nu__proc_mask_t nu__pod_proc_masks[];

/* Write m's options into out: data, then size=BYTES from limits when
 * m->size names a limit (limits may be NULL otherwise).  Makes no
 * allocation, so the child of clone may call it.  Returns 0, or -1 when
 * out is too small. */
int nu__mount_data(const nu__mount_t *m, const nu_sandbox_limits_t *limits,
                   char *out, size_t size);

#endif
