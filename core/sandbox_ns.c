/*
 * sandbox_ns.c - the child side of pod creation: namespaces, the root file
 * system, pivot_root, rlimits and the exec of the pod init.
 *
 * This code runs in the child of clone() in a process that may have had
 * other threads, so it calls no allocator and takes no locks: everything
 * it needs was prepared by the host in a nu__plan_t.  The phases, in
 * order:
 *
 *   1. PR_SET_PDEATHSIG, then check that the host end of the stream is
 *      still open (the host may have died before the signal was armed);
 *   2. wait for the host to place the child in the pod's cgroups;
 *   3. write the uid/gid maps, then unshare the cgroup namespace (so its
 *      root is the pod's cgroup);
 *   4. make every mount private; open the bind sources while the host's
 *      tree is still visible; mount a tmpfs at plan->base as the new root;
 *   5. bind the read-only directories, the workspace and the masks into
 *      it, then mount the file systems of nu__pod_mounts (a fresh /proc,
 *      /dev, /tmp, /run; sandbox_mounts.c);
 *   6. pivot_root into it and detach the old root;
 *   7. bring up loopback, set the hostname, rlimits, empty the capability
 *      bounding set and the ambient set, set no_new_privs and load the
 *      seccomp filter the host built, leave only the documented fds;
 *   8. execveat() the sealed memfd holding the pod init.
 *
 * Hardening that needs the final process (dumpable, Landlock, the checks
 * of capabilities and seccomp) happens in the init after exec, before it
 * reads a request.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/openat2.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "nucleus/proto.h"
#include "sandbox_internal.h"
#include "sandbox_mounts.h"

/* The child's end of the stream, for error frames: plan->sock_fd until
 * the descriptors are rearranged, NU_PODINIT_FD after. */
static int nu__child_sock = -1;

/* Escape s into a JSON string body at out (no allocation). */
static size_t nu__json_escape(char *out, size_t size, const char *s)
{
    size_t n = 0;

    for (; *s != '\0' && n + 7 < size; s++) {
        unsigned char c = (unsigned char)*s;

        if (c == '"' || c == '\\') {
            out[n++] = '\\';
            out[n++] = (char)c;
        } else if (c < 0x20) {
            n += (size_t)snprintf(out + n, size - n, "\\u%04x", c);
        } else {
            out[n++] = (char)c;
        }
    }
    out[n] = '\0';
    return n;
}

/* Report "sandbox: cannot <what> '<object>': <strerror>" to the host as an
 * error frame and exit. */
static void __attribute__((noreturn))
nu__child_fail(const nu__plan_t *plan __attribute__((unused)), const char *what, const char *object,
               int errnum)
{
    char message[768];
    char escaped[1200];
    char frame[NU_PROTO_HEADER_SIZE + 1300];
    int len;

    snprintf(message, sizeof message, "sandbox: cannot %s '%s': %s", what,
             object != NULL ? object : "", strerrordesc_np(errnum));
    nu__json_escape(escaped, sizeof escaped, message);
    len = snprintf(frame + NU_PROTO_HEADER_SIZE,
                   sizeof frame - NU_PROTO_HEADER_SIZE,
                   "{\"message\":\"%s\",\"errno\":%d}", escaped, errnum);
    if (nu_proto_pack_header((uint8_t *)frame, 1, NU_FRAME_ERROR,
                             (uint32_t)len, 0) == NU_OK) {
        ssize_t ignored = send(nu__child_sock, frame,
                               NU_PROTO_HEADER_SIZE + (size_t)len,
                               MSG_NOSIGNAL);
        (void)ignored;
    }
    _exit(1);
}

static int nu__write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    ssize_t n;
    int saved;

    if (fd < 0)
        return -1;
    n = write(fd, text, strlen(text));
    saved = errno;
    close(fd);
    errno = saved;
    return n == (ssize_t)strlen(text) ? 0 : -1;
}

/* The MOUNT_ATTR_* bits of mount flags MS_RDONLY, MS_NOSUID, MS_NODEV
 * and MS_NOEXEC. */
static uint64_t nu__mount_attrs(unsigned long flags)
{
    uint64_t attrs = 0;

    if (flags & MS_RDONLY)
        attrs |= MOUNT_ATTR_RDONLY;
    if (flags & MS_NOSUID)
        attrs |= MOUNT_ATTR_NOSUID;
    if (flags & MS_NODEV)
        attrs |= MOUNT_ATTR_NODEV;
    if (flags & MS_NOEXEC)
        attrs |= MOUNT_ATTR_NOEXEC;
    return attrs;
}

/* Phase 1: arm the death signal, then make sure the host did not die
 * before it was armed (the stream's other end is then closed). */
static void nu__arm_death_signal(const nu__plan_t *plan)
{
    struct pollfd p = { .fd = plan->sock_fd, .events = POLLRDHUP };

    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
        nu__child_fail(plan, "set", "PR_SET_PDEATHSIG", errno);
    if (poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLRDHUP)) != 0)
        _exit(1);
}

/* Phase 2: the host writes one byte once the cgroups hold us. */
static void nu__wait_for_host(const nu__plan_t *plan)
{
    char byte;
    ssize_t n;

    do
        n = read(plan->sync_fd, &byte, 1);
    while (n < 0 && errno == EINTR);
    if (n != 1)
        _exit(1);
    close(plan->sync_fd);
}

/* Phase 3: map our own uid and gid; unprivileged callers must deny
 * setgroups first. */
static void nu__map_ids(const nu__plan_t *plan)
{
    char map[64];

    if (!plan->userns)
        return;

    if (nu__write_file("/proc/self/setgroups", "deny") != 0 &&
        errno != ENOENT)
        nu__child_fail(plan, "write", "/proc/self/setgroups", errno);

    snprintf(map, sizeof map, "%u %u 1\n", (unsigned)plan->uid,
             (unsigned)plan->uid);
    if (nu__write_file("/proc/self/uid_map", map) != 0)
        nu__child_fail(plan, "write", "/proc/self/uid_map", errno);

    snprintf(map, sizeof map, "%u %u 1\n", (unsigned)plan->gid,
             (unsigned)plan->gid);
    if (nu__write_file("/proc/self/gid_map", map) != 0)
        nu__child_fail(plan, "write", "/proc/self/gid_map", errno);
}

/* Clone the mount tree at fd (or below dfd/path), set attributes and
 * attach it on the O_PATH descriptor target. */
static int nu__attach_clone(int src_fd, int target_fd, uint64_t attrs)
{
    struct mount_attr attr = { .attr_set = attrs };
    int tree;
    int rc;
    int saved;

    tree = open_tree(src_fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC |
                     AT_EMPTY_PATH | AT_RECURSIVE);
    if (tree < 0)
        return -1;

    rc = attrs == 0 ? 0 : mount_setattr(tree, "", AT_EMPTY_PATH |
                                        AT_RECURSIVE, &attr, sizeof attr);
    if (rc == 0)
        rc = move_mount(tree, "", target_fd, "", MOVE_MOUNT_F_EMPTY_PATH |
                        MOVE_MOUNT_T_EMPTY_PATH);

    saved = errno;
    close(tree);
    errno = saved;
    return rc;
}

/* Create path itself: a directory, or an empty file.  An existing one is
 * fine. */
static int nu__make_final(const char *path, bool directory)
{
    int fd;

    if (directory)
        return mkdir(path, 0755) == 0 || errno == EEXIST ? 0 : -1;
    fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0444);
    if (fd < 0)
        return errno == EEXIST ? 0 : -1;
    close(fd);
    return 0;
}

/* Create the mount point for src inside the new root: a directory for
 * directories, an empty file otherwise.  Missing parents are created only
 * when the first attempt reports ENOENT, which saves a mkdir per level for
 * the usual case. */
static int nu__make_mountpoint(char *path, bool directory)
{
    char *slash;

    if (nu__make_final(path, directory) == 0)
        return 0;
    if (errno != ENOENT)
        return -1;
    for (slash = strchr(path + 1, '/'); slash != NULL;
         slash = strchr(slash + 1, '/')) {
        *slash = '\0';
        if (mkdir(path, 0755) != 0 && errno != EEXIST) {
            *slash = '/';
            return -1;
        }
        *slash = '/';
    }
    return nu__make_final(path, directory);
}

/* Bind host path src read-only at the same path below base.  Symlinks
 * are copied as symlinks (the merged-/usr /bin and /lib are symlinks);
 * missing sources are skipped. */
static void nu__bind_readonly(const nu__plan_t *plan, const char *src,
                              int src_fd)
{
    char target[4096];
    char link[4096];
    struct stat st;
    ssize_t n;
    int target_fd;

    snprintf(target, sizeof target, "%s%s", plan->base, src);
    if (fstatat(src_fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0)
        nu__child_fail(plan, "stat", src, errno);

    if (S_ISLNK(st.st_mode)) {
        n = readlinkat(src_fd, "", link, sizeof link - 1);
        if (n < 0)
            nu__child_fail(plan, "read link", src, errno);
        link[n] = '\0';
        if (nu__make_mountpoint(target, true) != 0 && errno != EEXIST)
            nu__child_fail(plan, "create mount point", target, errno);
        rmdir(target);
        if (symlink(link, target) != 0 && errno != EEXIST)
            nu__child_fail(plan, "create symlink", target, errno);
        return;
    }

    if (nu__make_mountpoint(target, S_ISDIR(st.st_mode)) != 0)
        nu__child_fail(plan, "create mount point", target, errno);
    target_fd = open(target, O_PATH | O_CLOEXEC | O_NOFOLLOW);
    if (target_fd < 0)
        nu__child_fail(plan, "open mount point", target, errno);
    if (nu__attach_clone(src_fd, target_fd,
                         nu__mount_attrs(NU__BIND_READONLY)) != 0)
        nu__child_fail(plan, "bind read-only", src, errno);
    close(target_fd);
}

/* Open rel beneath the mounted workspace without following any symlink.
 * Returns the O_PATH fd, or -1 when the path is gone or is a symlink. */
static int nu__open_beneath(int ws_fd, const char *rel)
{
    struct open_how how = {
        .flags = O_PATH | O_NOFOLLOW | O_CLOEXEC,
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
                   RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV,
    };

    return (int)syscall(SYS_openat2, ws_fd, rel, &how, sizeof how);
}

/* Cover the block set (files by /dev/null, directories by an empty
 * read-only tmpfs) and make the write-block set read-only.  Paths that no
 * longer exist, or are symlinks, are skipped: a symlink's target inside
 * the workspace is matched on its own name, and one outside the workspace
 * does not exist in the pod. */
static void nu__apply_masks(const nu__plan_t *plan, int devnull_fd)
{
    char ws[128];
    struct stat st;
    int ws_fd;

    snprintf(ws, sizeof ws, "%s/workspace", plan->base);
    ws_fd = open(ws, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (ws_fd < 0)
        nu__child_fail(plan, "open", ws, errno);

    for (size_t i = 0; i < plan->nblock; i++) {
        const nu__mount_t *hide = &nu__pod_hidden_dir;
        int fd = nu__open_beneath(ws_fd, plan->block[i]);
        char proc_path[64];

        if (fd < 0)
            continue;
        if (fstat(fd, &st) != 0)
            nu__child_fail(plan, "stat", plan->block[i], errno);
        if (S_ISDIR(st.st_mode)) {
            snprintf(proc_path, sizeof proc_path, "/proc/self/fd/%d", fd);
            if (mount(hide->type, proc_path, hide->type, hide->flags,
                      hide->data) != 0)
                nu__child_fail(plan, "hide directory", plan->block[i],
                               errno);
        } else if (nu__attach_clone(devnull_fd, fd, nu__mount_attrs(
                                        NU__BIND_HIDDEN_FILE)) != 0) {
            nu__child_fail(plan, "hide file", plan->block[i], errno);
        }
        close(fd);
    }

    for (size_t i = 0; i < plan->nwrite_block; i++) {
        int fd = nu__open_beneath(ws_fd, plan->write_block[i]);

        if (fd < 0)
            continue;
        if (nu__attach_clone(fd, fd, nu__mount_attrs(NU__BIND_READONLY)) != 0)
            nu__child_fail(plan, "make read-only", plan->write_block[i],
                           errno);
        close(fd);
    }
    close(ws_fd);
}

/* Bind the host device nodes (opened as dev_fds) and create the links
 * of /dev. */
static void nu__fill_dev(const nu__plan_t *plan, const int *dev_fds)
{
    char path[512];

    for (size_t i = 0; i < NU__DEV_NODES_MAX && nu__pod_dev_nodes[i] != NULL;
         i++) {
        int fd;

        if (dev_fds[i] < 0)
            continue;
        snprintf(path, sizeof path, "%s/dev/%s", plan->base,
                 nu__pod_dev_nodes[i]);
        if (nu__make_mountpoint(path, false) != 0)
            nu__child_fail(plan, "create", path, errno);
        fd = open(path, O_PATH | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0 || nu__attach_clone(dev_fds[i], fd, nu__mount_attrs(
                                           NU__BIND_DEVICE)) != 0)
            nu__child_fail(plan, "bind device", nu__pod_dev_nodes[i], errno);
        close(fd);
    }

    for (size_t i = 0; nu__pod_dev_links[i][0] != NULL; i++) {
        snprintf(path, sizeof path, "%s/dev/%s", plan->base,
                 nu__pod_dev_links[i][1]);
        if (symlink(nu__pod_dev_links[i][0], path) != 0)
            nu__child_fail(plan, "create symlink", path, errno);
    }
}

/* Cover the entries of nu__pod_proc_masks in the procfs mounted at path
 * (mounted with flags proc_flags). */
static void nu__mask_proc(const nu__plan_t *plan, const char *path,
                          unsigned long proc_flags, int devnull_fd)
{
    int proc_fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);

    if (proc_fd < 0)
        nu__child_fail(plan, "open", path, errno);

    for (size_t i = 0; nu__pod_proc_masks[i].name != NULL; i++) {
        const nu__proc_mask_t *mask = &nu__pod_proc_masks[i];
        int fd = openat(proc_fd, mask->name, O_PATH | O_NOFOLLOW |
                        O_CLOEXEC);

        if (fd < 0)
            continue;
        /* The read-only /dev/null also rejects writes with EROFS. */
        if ((mask->cover & NU__PROC_HIDDEN) &&
            nu__attach_clone(devnull_fd, fd, nu__mount_attrs(
                                 NU__BIND_HIDDEN_FILE)) != 0)
            nu__child_fail(plan, "hide /proc/", mask->name, errno);
        if (!(mask->cover & NU__PROC_HIDDEN) &&
            nu__attach_clone(fd, fd, nu__mount_attrs(proc_flags |
                                                     MS_RDONLY)) != 0)
            nu__child_fail(plan, "make read-only /proc/", mask->name,
                           errno);
        close(fd);
    }
    close(proc_fd);
}

/* Mount one entry of nu__pod_mounts, writable until nu__seal_pod_fs, and
 * fill /dev and /proc. */
static void nu__mount_pod_fs(const nu__plan_t *plan, const nu__mount_t *m,
                             const int *dev_fds, int devnull_fd)
{
    char target[512];
    char data[160];
    char what[64];
    unsigned long flags = m->flags & ~(unsigned long)MS_RDONLY;
    int rc;

    snprintf(target, sizeof target, "%s%s", plan->base, m->target);
    if (mkdir(target, 0755) != 0 && errno != EEXIST)
        nu__child_fail(plan, "create mount point", target, errno);
    if (nu__mount_data(m, &plan->limits, data, sizeof data) != 0)
        nu__child_fail(plan, "format the options of", m->target,
                       ENAMETOOLONG);

    rc = mount(m->type, target, m->type, flags, data);
    /* hidepid=invisible needs Linux 5.8; hidepid=2 is the older form. */
    if (rc != 0 && strcmp(m->type, "proc") == 0)
        rc = mount(m->type, target, m->type, flags, "hidepid=2");
    if (rc != 0) {
        int saved = errno;

        snprintf(what, sizeof what, "mount %s on", m->type);
        nu__child_fail(plan, what, m->target, saved);
    }

    if (strcmp(m->target, "/dev") == 0)
        nu__fill_dev(plan, dev_fds);
    else if (strcmp(m->type, "proc") == 0)
        nu__mask_proc(plan, target, m->flags, devnull_fd);
}

/* Remount a read-only entry of nu__pod_mounts once the mounts beneath it
 * are in place. */
static void nu__seal_pod_fs(const nu__plan_t *plan, const nu__mount_t *m)
{
    char target[512];
    char data[160];

    if (!(m->flags & MS_RDONLY))
        return;
    snprintf(target, sizeof target, "%s%s", plan->base, m->target);
    if (nu__mount_data(m, &plan->limits, data, sizeof data) != 0 ||
        mount(NULL, target, NULL, MS_REMOUNT | m->flags, data) != 0)
        nu__child_fail(plan, "remount read-only", m->target, errno);
}

/* Phases 4 and 5: assemble the new root at plan->base. */
static void nu__build_root(const nu__plan_t *plan)
{
    int bind_fds[NU__PLAN_MAX_BINDS];
    int dev_fds[NU__DEV_NODES_MAX];
    int ws_fd;
    int devnull_fd;
    int root_fd = -1;
    char path[512];

    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
        nu__child_fail(plan, "make mounts private on", "/", errno);

    /* Open every source before the tmpfs can cover any of them. */
    for (size_t i = 0; i < plan->nbinds; i++)
        bind_fds[i] = open(plan->binds[i], O_PATH | O_NOFOLLOW | O_CLOEXEC);
    for (size_t i = 0; i < NU__DEV_NODES_MAX; i++) {
        dev_fds[i] = -1;
        if (nu__pod_dev_nodes[i] == NULL)
            continue;
        snprintf(path, sizeof path, "/dev/%s", nu__pod_dev_nodes[i]);
        dev_fds[i] = open(path, O_PATH | O_CLOEXEC);
    }
    devnull_fd = open("/dev/null", O_PATH | O_CLOEXEC);
    if (devnull_fd < 0)
        nu__child_fail(plan, "open", "/dev/null", errno);
    ws_fd = open(plan->workspace, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (ws_fd < 0)
        nu__child_fail(plan, "open workspace", plan->workspace, errno);
    if (plan->rootfs != NULL) {
        root_fd = open(plan->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (root_fd < 0)
            nu__child_fail(plan, "open rootfs", plan->rootfs, errno);
    }

    if (mount("tmpfs", plan->base, "tmpfs", MS_NOSUID | MS_NODEV,
              "size=1m,mode=0755") != 0)
        nu__child_fail(plan, "mount tmpfs on", plan->base, errno);

    if (root_fd >= 0) {
        /* A given rootfs replaces the tmpfs root entirely. */
        int target = open(plan->base, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (target < 0 || nu__attach_clone(root_fd, target, nu__mount_attrs(
                                               NU__BIND_READONLY)) != 0)
            nu__child_fail(plan, "bind rootfs", plan->rootfs, errno);
        close(target);
    } else {
        for (size_t i = 0; i < plan->nbinds; i++)
            if (bind_fds[i] >= 0)
                nu__bind_readonly(plan, plan->binds[i], bind_fds[i]);
    }

    snprintf(path, sizeof path, "%s/workspace", plan->base);
    if (nu__make_mountpoint(path, true) != 0)
        nu__child_fail(plan, "create mount point", path, errno);
    {
        int target = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (target < 0 || nu__attach_clone(ws_fd, target, nu__mount_attrs(
                                               NU__BIND_WORKSPACE)) != 0)
            nu__child_fail(plan, "bind workspace", plan->workspace, errno);
        close(target);
    }
    nu__apply_masks(plan, devnull_fd);

    for (const nu__mount_t *m = nu__pod_mounts; m->target != NULL; m++)
        nu__mount_pod_fs(plan, m, dev_fds, devnull_fd);
    for (const nu__mount_t *m = nu__pod_mounts; m->target != NULL; m++)
        nu__seal_pod_fs(plan, m);
    snprintf(path, sizeof path, "%s/run/nucleus", plan->base);
    mkdir(path, 0755);

    if (plan->mount_sys) {
        int sys_fd = open("/sys", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (sys_fd < 0)
            nu__child_fail(plan, "open", "/sys", errno);
        nu__bind_readonly(plan, "/sys", sys_fd);
        close(sys_fd);
    }

    for (size_t i = 0; i < plan->nbinds; i++)
        if (bind_fds[i] >= 0)
            close(bind_fds[i]);
    for (size_t i = 0; i < NU__DEV_NODES_MAX; i++)
        if (dev_fds[i] >= 0)
            close(dev_fds[i]);
    close(devnull_fd);
    close(ws_fd);
    if (root_fd >= 0)
        close(root_fd);
}

/* Phase 6: switch to the new root; pivot_root(".", ".") stacks the old
 * root on top, and the detach unmounts it. */
static void nu__pivot(const nu__plan_t *plan)
{
    struct mount_attr ro = { .attr_set = MOUNT_ATTR_RDONLY };

    if (chdir(plan->base) != 0)
        nu__child_fail(plan, "enter", plan->base, errno);
    if (syscall(SYS_pivot_root, ".", ".") != 0)
        nu__child_fail(plan, "pivot_root into", plan->base, errno);
    if (umount2(".", MNT_DETACH) != 0)
        nu__child_fail(plan, "detach the old root", "/", errno);
    if (chdir("/") != 0)
        nu__child_fail(plan, "enter", "/", errno);

    if (plan->rootfs == NULL &&
        mount_setattr(AT_FDCWD, "/", 0, &ro, sizeof ro) != 0)
        nu__child_fail(plan, "remount read-only", "/", errno);
}

static void nu__loopback_up(const nu__plan_t *plan)
{
    struct ifreq ifr;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        nu__child_fail(plan, "open", "an AF_INET socket", errno);
    memset(&ifr, 0, sizeof ifr);
    strcpy(ifr.ifr_name, "lo");
    if (ioctl(fd, SIOCGIFFLAGS, &ifr) != 0)
        nu__child_fail(plan, "read the flags of", "lo", errno);
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    if (ioctl(fd, SIOCSIFFLAGS, &ifr) != 0)
        nu__child_fail(plan, "bring up", "lo", errno);
    close(fd);
}

/* Empty the bounding and ambient capability sets.  The exec that follows
 * then grants no capability, also to uid 0 inside the namespace. */
static void nu__drop_bounding(const nu__plan_t *plan)
{
    for (int cap = 0; cap <= CAP_LAST_CAP + 24; cap++) {
        if (prctl(PR_CAPBSET_READ, cap) < 0)
            break;  /* past the kernel's last capability */
        if (prctl(PR_CAPBSET_DROP, cap) != 0)
            nu__child_fail(plan, "drop from the bounding set capability",
                           "", errno);
    }
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 &&
        errno != EINVAL)
        nu__child_fail(plan, "clear", "the ambient capabilities", errno);
}

/* Phase 7 (fds): 0-2 /dev/null, 3 the stream, 4 the init program. */
static int nu__arrange_fds(const nu__plan_t *plan)
{
    int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    int exec_fd;

    if (null_fd < 0)
        nu__child_fail(plan, "open", "/dev/null", errno);
    exec_fd = fcntl(plan->exec_fd, F_DUPFD_CLOEXEC, 10);
    if (exec_fd < 0)
        nu__child_fail(plan, "duplicate", "the init program", errno);
    if (plan->sock_fd == NU_PODINIT_FD) {
        if (fcntl(NU_PODINIT_FD, F_SETFD, 0) != 0)
            nu__child_fail(plan, "keep open", "the stream", errno);
    } else if (dup3(plan->sock_fd, NU_PODINIT_FD, 0) < 0) {
        nu__child_fail(plan, "duplicate", "the stream", errno);
    }
    nu__child_sock = NU_PODINIT_FD;
    if (dup3(exec_fd, 4, O_CLOEXEC) < 0)
        nu__child_fail(plan, "duplicate", "the init program", errno);
    for (int fd = 0; fd <= 2; fd++)
        if (dup2(null_fd, fd) < 0)
            nu__child_fail(plan, "redirect", "standard streams", errno);
    if (syscall(SYS_close_range, 5, ~0U, 0) != 0)
        nu__child_fail(plan, "close", "inherited descriptors", errno);
    return 4;
}

void nu__sandbox_child(const nu__plan_t *plan)
{
    static char *const argv[] = { NU_PODINIT_ARGV0, NU_PODINIT_ARGV1, NULL };
    int exec_fd;
    int rc;

    nu__child_sock = plan->sock_fd;
    nu__arm_death_signal(plan);
    nu__wait_for_host(plan);
    nu__map_ids(plan);
    if (plan->cgroupns && unshare(CLONE_NEWCGROUP) != 0)
        nu__child_fail(plan, "unshare", "the cgroup namespace", errno);

    nu__build_root(plan);
    nu__pivot(plan);

    nu__loopback_up(plan);
    if (sethostname(plan->hostname, strlen(plan->hostname)) != 0)
        nu__child_fail(plan, "set hostname", plan->hostname, errno);
    rc = nu__rlimits_apply(&plan->limits, plan->nproc_limit);
    if (rc < 0)
        nu__child_fail(plan, "set", "resource limits", -rc);
    nu__drop_bounding(plan);
    rc = nu__seccomp_apply(plan->seccomp_code, plan->seccomp_count);
    if (rc < 0)
        nu__child_fail(plan, "load", "the seccomp filter", -rc);

    exec_fd = nu__arrange_fds(plan);
    syscall(SYS_execveat, exec_fd, "", argv, plan->envp, AT_EMPTY_PATH);
    nu__child_fail(plan, "execute", "the pod init", errno);
}
