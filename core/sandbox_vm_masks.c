/*
 * sandbox_vm_masks.c - the blocked and write-blocked workspace paths of a
 * vm pod, laid over the workspace that QEMU's 9p server exports.
 *
 * The ns tier covers nu_sandbox_opts_t.block_paths inside the pod and
 * makes write_block_paths read-only (sandbox_ns.c).  A vm guest is not
 * trusted with its own masks, because guest root could unmount them.  So
 * the host lays them where the 9p server reads the workspace:
 *   - a cold boot: in QEMU's private mount namespace, on its /workspace
 *     bind, before pivot_root (nu__vm_child_root, sandbox_vm.c);
 *   - a pooled guest: on RUN_DIR/share/ws in the host's namespace right
 *     after the workspace is bound there at acquisition.  The share is a
 *     shared mount, so the masks propagate into QEMU's view.
 * A blocked file is covered by a read-only bind of the run directory's
 * empty file rather than /dev/null, because 9p would show the guest a
 * device node, which opens the guest's own /dev/null and accepts
 * writes.  Reads then return nothing and writes fail with EROFS.  A
 * blocked directory is covered by the empty read-only tmpfs of
 * nu__pod_hidden_dir.  A write-blocked path gets a read-only bind of
 * itself, masks below it included.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sandbox_mounts.h"
#include "sandbox_vm_internal.h"

/* Open rel beneath ws_fd without following a symbolic link or crossing
 * into another mount, as sandbox_ns.c does for the ns tier. */
static int nu__vm_open_beneath(int ws_fd, const char *rel)
{
    struct open_how how = {
        .flags = O_PATH | O_NOFOLLOW | O_CLOEXEC,
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
                   RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV,
    };

    return (int)syscall(SYS_openat2, ws_fd, rel, &how, sizeof how);
}

/* Whether a failed open of a mask path means "nothing to cover": the
 * path is gone, passes through a symbolic link on the way (the link's
 * target is matched on its own name) or lies in another file system, as
 * the ns tier skips it too.  A final symbolic link opens (O_PATH with
 * O_NOFOLLOW), so the mask covers the link itself. */
static bool nu__vm_mask_absent(int error)
{
    return error == ENOENT || error == ENOTDIR || error == ELOOP ||
           error == EXDEV;
}

/* Clone the mount tree at src_fd, set attrs on it and attach it on the
 * O_PATH descriptor target_fd. */
static int nu__vm_attach_clone(int src_fd, int target_fd, uint64_t attrs)
{
    struct mount_attr attr = { .attr_set = attrs };
    int tree;
    int rc;
    int saved;

    tree = open_tree(src_fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC |
                     AT_EMPTY_PATH | AT_RECURSIVE);
    if (tree < 0)
        return -1;
    rc = mount_setattr(tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr,
                       sizeof attr);
    if (rc == 0)
        rc = move_mount(tree, "", target_fd, "", MOVE_MOUNT_F_EMPTY_PATH |
                        MOVE_MOUNT_T_EMPTY_PATH);
    saved = errno;
    close(tree);
    errno = saved;
    return rc;
}

/* Pass the comma-separated KEY=VALUE options of data to the file system
 * context fs, without allocating. */
static int nu__vm_fs_options(int fs, const char *data)
{
    char buf[128];
    char *option = buf;

    if (strlen(data) >= sizeof buf) {
        errno = E2BIG;
        return -1;
    }
    memcpy(buf, data, strlen(data) + 1);
    while (option != NULL && *option != '\0') {
        char *next = strchr(option, ',');
        char *value;

        if (next != NULL)
            *next++ = '\0';
        value = strchr(option, '=');
        if (value != NULL)
            *value++ = '\0';
        if (fsconfig(fs, value != NULL ? FSCONFIG_SET_STRING :
                     FSCONFIG_SET_FLAG, option, value, 0) != 0)
            return -1;
        option = next;
    }
    return 0;
}

/* Cover the directory at target_fd with the empty read-only tmpfs of
 * nu__pod_hidden_dir. */
static int nu__vm_hide_dir(int target_fd)
{
    const nu__mount_t *hide = &nu__pod_hidden_dir;
    int fs = fsopen(hide->type, FSOPEN_CLOEXEC);
    int mnt = -1;
    int rc = -1;
    int saved;

    if (fs < 0)
        return -1;
    if (nu__vm_fs_options(fs, hide->data) != 0 ||
        fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) != 0)
        goto out;
    mnt = fsmount(fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_RDONLY |
                  MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
    if (mnt < 0)
        goto out;
    rc = move_mount(mnt, "", target_fd, "", MOVE_MOUNT_F_EMPTY_PATH |
                    MOVE_MOUNT_T_EMPTY_PATH);

out:
    saved = errno;
    if (mnt >= 0)
        close(mnt);
    close(fs);
    errno = saved;
    return rc;
}

static int nu__vm_mask_one(int ws_fd, int empty_fd, const char *rel,
                           bool hide)
{
    uint64_t read_only = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID |
                         MOUNT_ATTR_NODEV;
    struct stat st;
    int fd = nu__vm_open_beneath(ws_fd, rel);
    int rc;
    int saved;

    if (fd < 0)
        return nu__vm_mask_absent(errno) ? 0 : -1;
    if (fstat(fd, &st) != 0)
        rc = -1;
    else if (!hide)
        rc = nu__vm_attach_clone(fd, fd, read_only);
    else if (S_ISDIR(st.st_mode))
        rc = nu__vm_hide_dir(fd);
    else
        rc = nu__vm_attach_clone(empty_fd, fd, read_only |
                                 MOUNT_ATTR_NOEXEC);
    saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

int nu__vm_lay_masks(int ws_fd, int empty_fd, const char *const *block,
                     const char *const *write_block, const char **failed)
{
    for (size_t i = 0; block != NULL && block[i] != NULL; i++) {
        *failed = block[i];
        if (nu__vm_mask_one(ws_fd, empty_fd, block[i], true) != 0)
            return -1;
    }
    for (size_t i = 0; write_block != NULL && write_block[i] != NULL;
         i++) {
        *failed = write_block[i];
        if (nu__vm_mask_one(ws_fd, empty_fd, write_block[i], false) != 0)
            return -1;
    }
    *failed = NULL;
    return 0;
}

/* A mask path must name something inside the workspace. */
static int nu__vm_check_list(const char *const *list, const char *what,
                             nu_err_t *err)
{
    for (size_t i = 0; list != NULL && list[i] != NULL; i++) {
        const char *p = list[i];

        if (i == NU__VM_MAX_MASKS)
            return nu_err_set(err, NU_ELIMIT, "vm: cannot create pod: more "
                              "than %d %s", NU__VM_MAX_MASKS, what);
        if (p[0] == '\0' || p[0] == '/' || strcmp(p, "..") == 0 ||
            strncmp(p, "../", 3) == 0 || strstr(p, "/../") != NULL ||
            (strlen(p) >= 3 && strcmp(p + strlen(p) - 3, "/..") == 0))
            return nu_err_set(err, NU_EINVAL, "vm: cannot create pod: %s "
                              "entry '%s' is not a path inside the "
                              "workspace", what, p);
    }
    return NU_OK;
}

int nu__vm_check_masks(const nu_sandbox_opts_t *opts, nu_err_t *err)
{
    int rc = nu__vm_check_list(opts->block_paths, "blocked paths", err);

    if (rc == NU_OK)
        rc = nu__vm_check_list(opts->write_block_paths,
                               "write-blocked paths", err);
    return rc;
}
