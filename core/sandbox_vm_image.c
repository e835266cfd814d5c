/*
 * sandbox_vm_image.c - the guest image of the "vm" tier: a reproducible
 * initramfs around the guest agent.
 *
 * Archive format
 * --------------
 * The initramfs is a cpio archive in the "newc" format that the kernel
 * unpacks into its root tmpfs (Documentation/driver-api/early-userspace/
 * buffer-format.rst).  Each entry starts with a 110-byte ASCII header:
 * "070701" and 13 fields of 8 hex digits (inode, mode, uid, gid, nlink,
 * mtime, file size, dev major, dev minor, rdev major, rdev minor, name
 * size including the NUL, check 0).  The NUL-terminated name follows,
 * padded to a multiple of 4 bytes counted from the header's start, and
 * then the data, padded the same way.  A "TRAILER!!!" entry ends the
 * archive.
 *
 * Reproducibility: entries are sorted by path with strcmp (a directory
 * sorts before its contents), every mtime is 0, every owner 0:0, inode
 * numbers count up in entry order, and nothing else from the build host
 * (time, user, umask, directory order) reaches the archive.  The same
 * kernel, modules, agent and BusyBox therefore give the same bytes; the
 * archive is not compressed, which also saves the guest the decompression.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nucleus/digest.h"
#include "nucleus/home.h"
#include "nucleus/json.h"
#include "nucleus/vm.h"
#include "sandbox_vm_internal.h"

/* Modules the agent loads; their dependencies come from modules.dep.
 * virtio_net (with failover and net_failover) serves the network device
 * of pods with egress.  9p stays last: tests/integration/vm_image.sh
 * checks that it ends the load order. */
static const char *const nu__vm_modules[] = {
    "virtio_mmio", "virtio_console", "virtio-rng", "virtio_net",
    "vsock", "vmw_vsock_virtio_transport_common",
    "vmw_vsock_virtio_transport", "virtio_blk", "9pnet_virtio", "9p", NULL
};

#define NU__VM_MODULE_DIR "lib/modules/nucleus"

typedef struct nu__vm_entry {
    char *path;          /* relative, no leading '/' */
    unsigned mode;       /* file type and permissions */
    char *source;        /* regular file: host file to copy, or NULL */
    char *data;          /* regular file: inline content; symlink: target */
    size_t data_len;
    unsigned rdev_major, rdev_minor;
} nu__vm_entry_t;

typedef struct nu__vm_archive {
    nu__vm_entry_t *entries;
    size_t count, cap;
    char *order;         /* module load order file, being built */
    size_t order_len;
} nu__vm_archive_t;

typedef struct nu__vm_buf {
    unsigned char *data;
    size_t len, cap;
} nu__vm_buf_t;

/* --- small helpers ---------------------------------------------------- */

static int nu__vm_read_file(const char *path, unsigned char **out,
                            size_t *out_len, nu_err_t *err)
{
    struct stat st;
    unsigned char *buf = NULL;
    size_t got = 0;
    int fd;
    int rc = NU_OK;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return nu_err_errno(err, errno, "vm image: cannot open %s", path);
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = nu_err_set(err, NU_EINVAL, "vm image: cannot read %s: not a "
                        "regular file", path);
        goto out;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL) {
        rc = nu_err_set(err, NU_ENOMEM, "vm image: out of memory");
        goto out;
    }
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = nu_err_errno(err, n < 0 ? errno : EIO, "vm image: cannot "
                              "read %s", path);
            goto out;
        }
        got += (size_t)n;
    }
    buf[got] = '\0';
    *out = buf;
    *out_len = got;
    buf = NULL;

out:
    free(buf);
    close(fd);
    return rc;
}

static int nu__vm_buf_add(nu__vm_buf_t *b, const void *data, size_t len)
{
    if (b->len + len > b->cap) {
        size_t cap = b->cap != 0 ? b->cap : 1 << 20;
        unsigned char *grown;

        while (cap < b->len + len)
            cap *= 2;
        grown = realloc(b->data, cap);
        if (grown == NULL)
            return NU_ENOMEM;
        b->data = grown;
        b->cap = cap;
    }
    if (len != 0)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    return NU_OK;
}

static int nu__vm_buf_pad4(nu__vm_buf_t *b)
{
    static const unsigned char zeros[4];

    return nu__vm_buf_add(b, zeros, (4 - b->len % 4) % 4);
}

/* Write data to path through a temporary file beside it. */
static int nu__vm_write_atomic(const char *path, const void *data,
                               size_t len, nu_err_t *err)
{
    char tmp[4200];
    const unsigned char *p = data;
    int fd;

    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return nu_err_errno(err, errno, "vm image: cannot create %s", tmp);
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int saved = n < 0 ? errno : EIO;
            close(fd);
            unlink(tmp);
            return nu_err_errno(err, saved, "vm image: cannot write %s",
                                tmp);
        }
        p += n;
        len -= (size_t)n;
    }
    if (fsync(fd) != 0 || close(fd) != 0 || rename(tmp, path) != 0) {
        int saved = errno;
        unlink(tmp);
        return nu_err_errno(err, saved, "vm image: cannot replace %s", path);
    }
    return NU_OK;
}

/* --- the entry list --------------------------------------------------- */

static nu__vm_entry_t *nu__vm_add(nu__vm_archive_t *a, const char *path,
                                  unsigned mode)
{
    nu__vm_entry_t *e;

    for (size_t i = 0; i < a->count; i++)
        if (strcmp(a->entries[i].path, path) == 0)
            return NULL;  /* the first entry of a path wins */
    if (a->count == a->cap) {
        size_t cap = a->cap != 0 ? a->cap * 2 : 256;
        nu__vm_entry_t *grown = realloc(a->entries, cap * sizeof *grown);
        if (grown == NULL)
            return NULL;
        a->entries = grown;
        a->cap = cap;
    }
    e = &a->entries[a->count];
    memset(e, 0, sizeof *e);
    e->path = strdup(path);
    if (e->path == NULL)
        return NULL;
    e->mode = mode;
    a->count++;
    return e;
}

static int nu__vm_add_dir(nu__vm_archive_t *a, const char *path,
                          unsigned perm)
{
    nu__vm_add(a, path, S_IFDIR | perm);
    return NU_OK;
}

static int nu__vm_add_copy(nu__vm_archive_t *a, const char *path,
                           const char *source, unsigned perm)
{
    nu__vm_entry_t *e = nu__vm_add(a, path, S_IFREG | perm);

    if (e != NULL && (e->source = strdup(source)) == NULL)
        return NU_ENOMEM;
    return NU_OK;
}

static int nu__vm_add_data(nu__vm_archive_t *a, const char *path,
                           unsigned mode, const char *data, size_t len)
{
    nu__vm_entry_t *e = nu__vm_add(a, path, mode);

    if (e == NULL)
        return NU_OK;
    e->data = malloc(len + 1);
    if (e->data == NULL)
        return NU_ENOMEM;
    memcpy(e->data, data, len);
    e->data[len] = '\0';
    e->data_len = len;
    return NU_OK;
}

static void nu__vm_archive_free(nu__vm_archive_t *a)
{
    for (size_t i = 0; i < a->count; i++) {
        free(a->entries[i].path);
        free(a->entries[i].source);
        free(a->entries[i].data);
    }
    free(a->entries);
    free(a->order);
}

static int nu__vm_entry_cmp(const void *x, const void *y)
{
    return strcmp(((const nu__vm_entry_t *)x)->path,
                  ((const nu__vm_entry_t *)y)->path);
}

/* --- cpio newc -------------------------------------------------------- */

static int nu__vm_cpio_header(nu__vm_buf_t *b, unsigned long ino,
                              unsigned mode, unsigned long nlink,
                              size_t size, unsigned rmaj, unsigned rmin,
                              const char *name)
{
    char hdr[256];  /* 110 bytes used: every field fits in 8 hex digits */
    size_t namesize = strlen(name) + 1;

    snprintf(hdr, sizeof hdr, "070701%08lX%08X%08X%08X%08lX%08X%08lX"
             "%08X%08X%08X%08X%08lX%08X", ino, mode, 0u, 0u, nlink, 0u,
             (unsigned long)size, 0u, 0u, rmaj, rmin,
             (unsigned long)namesize, 0u);
    if (nu__vm_buf_add(b, hdr, 110) != NU_OK ||
        nu__vm_buf_add(b, name, namesize) != NU_OK)
        return NU_ENOMEM;
    return nu__vm_buf_pad4(b);
}

static int nu__vm_cpio_entry(nu__vm_buf_t *b, const nu__vm_entry_t *e,
                             unsigned long ino, nu_err_t *err)
{
    unsigned char *content = (unsigned char *)e->data;
    size_t len = e->data_len;
    int rc;

    if (e->source != NULL) {
        rc = nu__vm_read_file(e->source, &content, &len, err);
        if (rc < 0)
            return rc;
    }
    rc = nu__vm_cpio_header(b, ino, e->mode, S_ISDIR(e->mode) ? 2 : 1, len,
                            e->rdev_major, e->rdev_minor, e->path);
    if (rc == NU_OK)
        rc = nu__vm_buf_add(b, content, len);
    if (rc == NU_OK)
        rc = nu__vm_buf_pad4(b);
    if (e->source != NULL)
        free(content);
    if (rc != NU_OK)
        return nu_err_set(err, NU_ENOMEM, "vm image: out of memory");
    return NU_OK;
}

static int nu__vm_cpio_write(nu__vm_archive_t *a, nu__vm_buf_t *out,
                             nu_err_t *err)
{
    int rc;

    qsort(a->entries, a->count, sizeof *a->entries, nu__vm_entry_cmp);
    for (size_t i = 0; i < a->count; i++) {
        rc = nu__vm_cpio_entry(out, &a->entries[i], (unsigned long)i + 1,
                               err);
        if (rc < 0)
            return rc;
    }
    if (nu__vm_cpio_header(out, 0, 0, 1, 0, 0, 0, "TRAILER!!!") != NU_OK)
        return nu_err_set(err, NU_ENOMEM, "vm image: out of memory");
    return NU_OK;
}

/* --- inputs ----------------------------------------------------------- */

static int nu__vm_release_of(const char *kernel, char *out, size_t size,
                             nu_err_t *err)
{
    const char *base = strrchr(kernel, '/');

    base = base != NULL ? base + 1 : kernel;
    if (strncmp(base, "vmlinuz-", 8) != 0 || base[8] == '\0' ||
        strlen(base + 8) >= size)
        return nu_err_set(err, NU_EINVAL, "vm image: cannot tell the kernel "
                          "release of %s: expected a file named "
                          "vmlinuz-RELEASE (or pass the module directory)",
                          kernel);
    snprintf(out, size, "%s", base + 8);
    return NU_OK;
}

static bool nu__vm_has_9p(const char *release)
{
    char path[512];
    unsigned char *dep = NULL;
    size_t len = 0;
    bool found;

    snprintf(path, sizeof path, "/lib/modules/%s/modules.dep", release);
    if (nu__vm_read_file(path, &dep, &len, NULL) != NU_OK)
        return false;
    found = strstr((char *)dep, "/9pnet_virtio.ko") != NULL;
    free(dep);
    return found;
}

static int nu__vm_release_cmp(const void *x, const void *y)
{
    return -strverscmp(*(char *const *)x, *(char *const *)y);
}

/* The newest /boot/vmlinuz-RELEASE with 9p modules. */
static int nu__vm_pick_kernel(char *out, size_t size, nu_err_t *err)
{
    char *names[64];
    size_t n = 0;
    struct dirent *e;
    DIR *dir = opendir("/boot");
    int rc = NU_ENOENT;

    if (dir != NULL) {
        while ((e = readdir(dir)) != NULL && n < 64)
            if (strncmp(e->d_name, "vmlinuz-", 8) == 0 &&
                (names[n] = strdup(e->d_name + 8)) != NULL)
                n++;
        closedir(dir);
    }
    qsort(names, n, sizeof names[0], nu__vm_release_cmp);
    for (size_t i = 0; i < n; i++) {
        if (rc != NU_OK && nu__vm_has_9p(names[i])) {
            snprintf(out, size, "/boot/vmlinuz-%s", names[i]);
            rc = NU_OK;
        }
        free(names[i]);
    }
    if (rc != NU_OK)
        return nu_err_set(err, NU_ENOENT, "vm image: cannot find a kernel: "
                          "no /boot/vmlinuz-* with the 9pnet_virtio module "
                          "(install linux-image-amd64, or pass --kernel)");
    return NU_OK;
}

/* The line of modules.dep for module name ("9p"), or NULL. */
static char *nu__vm_dep_line(char *dep, const char *name, char *line,
                             size_t size)
{
    size_t want = strlen(name);

    for (char *p = dep; p != NULL && *p != '\0';) {
        char *end = strchr(p, '\n');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        char *colon = memchr(p, ':', len);

        if (colon != NULL) {
            char *base = colon;
            while (base > p && base[-1] != '/')
                base--;
            if ((size_t)(colon - base) >= want + 3 &&
                strncmp(base, name, want) == 0 &&
                strncmp(base + want, ".ko", 3) == 0 && len < size) {
                memcpy(line, p, len);
                line[len] = '\0';
                return line;
            }
        }
        p = end != NULL ? end + 1 : NULL;
    }
    return NULL;
}

static bool nu__vm_builtin(const char *modules_dir, const char *name)
{
    char path[4200], needle[128];
    unsigned char *list = NULL;
    size_t len = 0;
    bool found;

    if (snprintf(path, sizeof path, "%s/modules.builtin", modules_dir) >= (int)sizeof path ||
        snprintf(needle, sizeof needle, "/%s.ko\n", name) >= (int)sizeof needle)
        return false;
    if (nu__vm_read_file(path, &list, &len, NULL) != NU_OK)
        return false;
    found = strstr((char *)list, needle) != NULL;
    free(list);
    return found;
}

/* Add one module file (a modules.dep path) after its dependencies. */
static int nu__vm_add_module(nu__vm_archive_t *a, const char *modules_dir,
                             char *dep, const char *relpath, int depth,
                             nu_err_t *err);

static int nu__vm_add_named(nu__vm_archive_t *a, const char *modules_dir,
                            char *dep, const char *name, int depth,
                            nu_err_t *err)
{
    char line[4096];
    char *colon;

    if (nu__vm_dep_line(dep, name, line, sizeof line) == NULL) {
        if (nu__vm_builtin(modules_dir, name))
            return NU_OK;
        return nu_err_set(err, NU_ENOENT, "vm image: cannot find kernel "
                          "module %s in %s/modules.dep (use a kernel with "
                          "it, such as Debian's linux-image-amd64)", name,
                          modules_dir);
    }
    colon = strchr(line, ':');
    *colon = '\0';
    return nu__vm_add_module(a, modules_dir, dep, line, depth, err);
}

static int nu__vm_add_module(nu__vm_archive_t *a, const char *modules_dir,
                             char *dep, const char *relpath, int depth,
                             nu_err_t *err)
{
    char line[4096], name[256], src[4200], dst[512];
    const char *base = strrchr(relpath, '/');
    size_t len;
    int rc;

    base = base != NULL ? base + 1 : relpath;
    len = strlen(base);
    if (len < 4 || strcmp(base + len - 3, ".ko") != 0)
        return nu_err_set(err, NU_ENOTSUP, "vm image: cannot use module "
                          "%s: compressed modules are not supported",
                          relpath);
    if (depth > 16)
        return nu_err_set(err, NU_EINVAL, "vm image: module dependencies "
                          "of %s nest too deep", relpath);
    snprintf(name, sizeof name, "%.*s", (int)(len - 3), base);

    /* Dependencies first. */
    if (nu__vm_dep_line(dep, name, line, sizeof line) != NULL) {
        char *save = NULL;
        char *deps = strchr(line, ':') + 1;

        for (char *d = strtok_r(deps, " ", &save); d != NULL;
             d = strtok_r(NULL, " ", &save)) {
            rc = nu__vm_add_module(a, modules_dir, dep, d, depth + 1, err);
            if (rc < 0)
                return rc;
        }
    }

    snprintf(dst, sizeof dst, NU__VM_MODULE_DIR "/%s", base);
    for (size_t i = 0; i < a->count; i++)
        if (strcmp(a->entries[i].path, dst) == 0)
            return NU_OK;  /* already added */
    if (snprintf(src, sizeof src, "%s/%s", modules_dir, relpath) >= (int)sizeof src)
        return nu_err_set(err, NU_EINVAL, "vm image: module path too long: %s",
                          relpath);
    if (access(src, R_OK) != 0)
        return nu_err_errno(err, errno, "vm image: cannot read module %s",
                            src);
    rc = nu__vm_add_copy(a, dst, src, 0644);
    if (rc == NU_OK) {
        size_t add = strlen(dst) + 2;
        char *grown = realloc(a->order, a->order_len + add + 1);
        if (grown == NULL)
            return nu_err_set(err, NU_ENOMEM, "vm image: out of memory");
        a->order = grown;
        a->order_len += (size_t)snprintf(a->order + a->order_len, add + 1,
                                         "/%s\n", dst);
    }
    return rc == NU_OK ? NU_OK : nu_err_set(err, rc, "vm image: out of "
                                            "memory");
}

static int nu__vm_add_modules(nu__vm_archive_t *a, const char *modules_dir,
                              nu_err_t *err)
{
    char path[4200];
    unsigned char *dep = NULL;
    size_t len = 0;
    int rc;

    if (snprintf(path, sizeof path, "%s/modules.dep", modules_dir) >= (int)sizeof path)
        return nu_err_set(err, NU_EINVAL, "vm image: modules directory path "
                          "too long: %s", modules_dir);
    rc = nu__vm_read_file(path, &dep, &len, err);
    if (rc < 0)
        return rc;
    for (size_t i = 0; nu__vm_modules[i] != NULL && rc == NU_OK; i++)
        rc = nu__vm_add_named(a, modules_dir, (char *)dep, nu__vm_modules[i],
                              0, err);
    free(dep);
    if (rc < 0)
        return rc;
    return nu__vm_add_data(a, NU__VM_MODULE_DIR "/order", S_IFREG | 0644,
                           a->order != NULL ? a->order : "", a->order_len);
}

/* Run "BUSYBOX --list-full" and add a symbolic link per applet. */
static int nu__vm_add_applets(nu__vm_archive_t *a, const char *busybox,
                              nu_err_t *err)
{
    int pipefd[2];
    pid_t pid;
    FILE *in;
    char line[256];
    int status = 0;
    int rc = NU_OK;

    if (pipe2(pipefd, O_CLOEXEC) != 0)
        return nu_err_errno(err, errno, "vm image: cannot create a pipe");
    pid = fork();
    if (pid == 0) {
        dup2(pipefd[1], 1);
        execl(busybox, "busybox", "--list-full", (char *)NULL);
        _exit(127);
    }
    close(pipefd[1]);
    if (pid < 0) {
        close(pipefd[0]);
        return nu_err_errno(err, errno, "vm image: cannot run %s", busybox);
    }
    in = fdopen(pipefd[0], "r");
    while (in != NULL && fgets(line, sizeof line, in) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        if (line[0] == '\0' || strcmp(line, "linuxrc") == 0 ||
            strchr(line, '/') == NULL || strstr(line, "..") != NULL)
            continue;
        if (rc == NU_OK)
            rc = nu__vm_add_data(a, line, S_IFLNK | 0777, "/bin/busybox",
                                 strlen("/bin/busybox"));
    }
    if (in != NULL)
        fclose(in);
    else
        close(pipefd[0]);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (rc != NU_OK)
        return nu_err_set(err, NU_ENOMEM, "vm image: out of memory");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return nu_err_set(err, NU_EIO, "vm image: %s --list-full failed "
                          "(is it BusyBox? install busybox-static)", busybox);
    return NU_OK;
}

/* The directories, configuration files and device node of the root. */
static int nu__vm_add_layout(nu__vm_archive_t *a, bool init_only)
{
    static const char *const dirs[] = {
        "bin", "dev", "etc", "lib", "lib/modules", NU__VM_MODULE_DIR, "proc",
        "root", "run", "sbin", "sys", "usr", "usr/bin", "usr/sbin",
        "workspace", NULL
    };
    static const char passwd[] = "root:x:0:0:root:/workspace:/bin/sh\n";
    static const char group[] = "root:x:0:\n";
    nu__vm_entry_t *console;
    int rc = NU_OK;

    nu__vm_add_dir(a, ".", 0755);
    nu__vm_add_dir(a, "dev", 0755);
    console = nu__vm_add(a, "dev/console", S_IFCHR | 0600);
    if (console == NULL)
        return NU_ENOMEM;
    console->rdev_major = 5;
    console->rdev_minor = 1;
    if (init_only)
        return NU_OK;

    for (size_t i = 0; dirs[i] != NULL; i++)
        nu__vm_add_dir(a, dirs[i], 0755);
    nu__vm_add_dir(a, "tmp", 01777);
    rc = nu__vm_add_data(a, "etc/passwd", S_IFREG | 0644, passwd,
                         sizeof passwd - 1);
    if (rc == NU_OK)
        rc = nu__vm_add_data(a, "etc/group", S_IFREG | 0644, group,
                             sizeof group - 1);
    return rc;
}

/* --- the build -------------------------------------------------------- */

static const char *nu__vm_default_agent(void)
{
    const char *env = getenv("NUCLEUS_VM_AGENT");

    if (env != NULL && env[0] != '\0')
        return env;
#ifdef NU_VM_AGENT_BUILD_PATH
    return NU_VM_AGENT_BUILD_PATH;
#else
    return "/usr/lib/nucleus/nucleus-vm-agent";
#endif
}

static void nu__vm_progress(const nu_vm_image_opts_t *opts, const char *what,
                            const char *detail)
{
    if (opts->progress)
        fprintf(stderr, "vm image: %s %s\n", what, detail);
}

/* vmlinux_hex is NULL when the image has no vmlinux. */
static int nu__vm_write_manifest(const char *out_dir, const char *release,
                                 const unsigned char *kernel,
                                 size_t kernel_len, const nu__vm_buf_t *cpio,
                                 const char *vmlinux_hex, nu_err_t *err)
{
    char kernel_hex[NU_SHA256_HEX_LEN + 1], cpio_hex[NU_SHA256_HEX_LEN + 1];
    char path[4200];
    char *text;
    json_t *manifest;
    int rc;

    nu_sha256_hex(kernel, kernel_len, kernel_hex);
    nu_sha256_hex(cpio->data, cpio->len, cpio_hex);
    manifest = json_pack("{s:i,s:s,s:s,s:s}", "format", 1, "kernel_release",
                         release, "kernel_sha256", kernel_hex,
                         "initramfs_sha256", cpio_hex);
    if (manifest != NULL && vmlinux_hex != NULL &&
        json_object_set_new(manifest, "vmlinux_sha256",
                            json_string(vmlinux_hex)) != 0) {
        json_decref(manifest);
        manifest = NULL;
    }
    text = manifest != NULL ? json_dumps(manifest, JSON_SORT_KEYS |
                                         JSON_INDENT(2)) : NULL;
    json_decref(manifest);
    if (text == NULL)
        return nu_err_set(err, NU_ENOMEM, "vm image: out of memory");
    snprintf(path, sizeof path, "%s/" NU_VM_MANIFEST_FILE, out_dir);
    rc = nu__vm_write_atomic(path, text, strlen(text), err);
    free(text);
    return rc;
}

/* Write OUT_DIR/vmlinux extracted from the bzImage kernel and its
 * SHA-256 into hex, or without opts->vmlinux remove a vmlinux left by an
 * earlier build, which the Firecracker driver would otherwise boot. */
static int nu__vm_write_vmlinux(const nu_vm_image_opts_t *opts,
                                const unsigned char *kernel,
                                size_t kernel_len, char *hex, nu_err_t *err)
{
    unsigned char *elf = NULL;
    size_t elf_len = 0;
    char path[4200];
    int rc;

    snprintf(path, sizeof path, "%s/" NU_VM_VMLINUX_FILE, opts->out_dir);
    if (!opts->vmlinux) {
        if (unlink(path) != 0 && errno != ENOENT)
            return nu_err_errno(err, errno, "vm image: cannot remove the "
                                "old %s (delete it by hand)", path);
        return NU_OK;
    }

    nu__vm_progress(opts, "extracting", NU_VM_VMLINUX_FILE);
    rc = nu__vm_vmlinux_extract(kernel, kernel_len, &elf, &elf_len, err);
    if (rc < 0)
        return rc;
    nu_sha256_hex(elf, elf_len, hex);
    rc = nu__vm_write_atomic(path, elf, elf_len, err);
    free(elf);
    return rc;
}

static int nu__vm_check_input(const char *what, const char *path,
                              const char *package, nu_err_t *err)
{
    if (access(path, R_OK) == 0)
        return NU_OK;
    return nu_err_errno(err, errno, "vm image: cannot read the %s %s "
                        "(%s)", what, path, package);
}

int nu_vm_image_build(const nu_vm_image_opts_t *opts, nu_err_t *err)
{
    nu__vm_archive_t archive = { 0 };
    nu__vm_buf_t cpio = { 0 };
    unsigned char *kernel_data = NULL;
    size_t kernel_len = 0;
    char kernel[4096], release[256], modules_dir[4200], path[4200];
    char vmlinux_hex[NU_SHA256_HEX_LEN + 1];
    const char *agent = opts->agent != NULL ? opts->agent :
                        nu__vm_default_agent();
    const char *busybox = opts->busybox != NULL ? opts->busybox :
                          "/bin/busybox";
    int rc;

    if (opts->out_dir == NULL || opts->out_dir[0] == '\0')
        return nu_err_set(err, NU_EINVAL, "vm image: missing output "
                          "directory");
    if (opts->kernel != NULL)
        snprintf(kernel, sizeof kernel, "%s", opts->kernel);
    else if ((rc = nu__vm_pick_kernel(kernel, sizeof kernel, err)) < 0)
        return rc;
    rc = nu__vm_check_input("kernel", kernel, "install linux-image-amd64 "
                            "or pass --kernel", err);
    if (rc == NU_OK)
        rc = nu__vm_check_input("guest agent", agent, "build the "
                                "nucleus-vm-agent target or set "
                                "NUCLEUS_VM_AGENT", err);
    if (rc == NU_OK && !opts->init_only)
        rc = nu__vm_check_input("BusyBox binary", busybox,
                                "install busybox-static", err);
    if (rc < 0)
        return rc;

    release[0] = '\0';
    if (opts->modules_dir != NULL)
        snprintf(modules_dir, sizeof modules_dir, "%s", opts->modules_dir);
    else if ((rc = nu__vm_release_of(kernel, release, sizeof release,
                                     err)) < 0)
        return rc;
    else
        snprintf(modules_dir, sizeof modules_dir, "/lib/modules/%s",
                 release);
    if (release[0] == '\0' &&
        nu__vm_release_of(kernel, release, sizeof release, NULL) < 0)
        snprintf(release, sizeof release, "unknown");

    rc = nu_mkdir_p(opts->out_dir, err);
    if (rc < 0)
        goto out;

    nu__vm_progress(opts, "collecting files for kernel", release);
    rc = nu__vm_add_layout(&archive, opts->init_only);
    if (rc == NU_OK)
        rc = nu__vm_add_copy(&archive, "init", agent, 0755);
    if (rc != NU_OK) {
        rc = nu_err_set(err, NU_ENOMEM, "vm image: out of memory");
        goto out;
    }
    if (!opts->init_only) {
        rc = nu__vm_add_copy(&archive, "bin/busybox", busybox, 0755);
        if (rc == NU_OK)
            rc = nu__vm_add_applets(&archive, busybox, err);
        if (rc == NU_OK)
            rc = nu__vm_add_modules(&archive, modules_dir, err);
        if (rc < 0)
            goto out;
    }

    nu__vm_progress(opts, "writing", NU_VM_INITRAMFS_FILE);
    rc = nu__vm_cpio_write(&archive, &cpio, err);
    if (rc < 0)
        goto out;
    snprintf(path, sizeof path, "%s/" NU_VM_INITRAMFS_FILE, opts->out_dir);
    rc = nu__vm_write_atomic(path, cpio.data, cpio.len, err);
    if (rc < 0)
        goto out;

    nu__vm_progress(opts, "copying kernel", kernel);
    rc = nu__vm_read_file(kernel, &kernel_data, &kernel_len, err);
    if (rc < 0)
        goto out;
    snprintf(path, sizeof path, "%s/" NU_VM_KERNEL_FILE, opts->out_dir);
    rc = nu__vm_write_atomic(path, kernel_data, kernel_len, err);
    if (rc == NU_OK)
        rc = nu__vm_write_vmlinux(opts, kernel_data, kernel_len,
                                  vmlinux_hex, err);
    if (rc == NU_OK)
        rc = nu__vm_write_manifest(opts->out_dir, release, kernel_data,
                                   kernel_len, &cpio,
                                   opts->vmlinux ? vmlinux_hex : NULL, err);
    if (rc == NU_OK)
        nu__vm_progress(opts, "image ready in", opts->out_dir);

out:
    free(kernel_data);
    free(cpio.data);
    nu__vm_archive_free(&archive);
    return rc;
}

int nu_vm_image_default_dir(char *out, size_t size, nu_err_t *err)
{
    return nu_home_path(NULL, "vm/image", out, size, err);
}

/* --- checking an image before a boot --------------------------------- */

/* The image files last found to match their image.json, by device, inode,
 * size and modification time, so that a process hashes an unchanged
 * image once. */
static struct {
    pthread_mutex_t lock;
    bool valid;
    struct stat files[4];    /* the last one zeroed when vmlinux is absent */
} nu__vm_verified = { .lock = PTHREAD_MUTEX_INITIALIZER };

static bool nu__vm_same_file(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino &&
           a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
           a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* Check that file name in dir hashes to the manifest's member key. */
static int nu__vm_check_digest(const char *dir, const char *name,
                               const json_t *manifest, const char *key,
                               nu_err_t *err)
{
    const char *want = json_string_value(json_object_get(manifest, key));
    char have[NU_SHA256_HEX_LEN + 1];
    char path[4200];
    unsigned char *data = NULL;
    size_t len = 0;
    int rc;

    if (want == NULL)
        return nu_err_set(err, NU_EINVAL, "vm: image %s/" NU_VM_MANIFEST_FILE
                          " has no %s (rebuild with nucleus vm image build)",
                          dir, key);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    rc = nu__vm_read_file(path, &data, &len, err);
    if (rc < 0)
        return rc;
    nu_sha256_hex(data, len, have);
    free(data);
    if (strcmp(have, want) != 0)
        return nu_err_set(err, NU_EINVAL, "vm: image %s does not match "
                          "%s/" NU_VM_MANIFEST_FILE " (rebuild with nucleus "
                          "vm image build)", path, dir);
    return NU_OK;
}

int nu__vm_image_verify(const char *dir, nu_err_t *err)
{
    static const char *const names[3] = {
        NU_VM_KERNEL_FILE, NU_VM_INITRAMFS_FILE, NU_VM_MANIFEST_FILE
    };
    struct stat files[4];
    json_t *manifest = NULL;
    json_error_t jerr;
    char path[4200], vmlinux[4200];
    int rc = NU_OK;

    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (stat(path, &files[i]) != 0)
            return nu_err_errno(err, errno, "vm: cannot read the guest "
                                "image file %s (rebuild with nucleus vm "
                                "image build --out %s)", path, dir);
    }
    snprintf(vmlinux, sizeof vmlinux, "%s/" NU_VM_VMLINUX_FILE, dir);
    if (stat(vmlinux, &files[3]) != 0)
        memset(&files[3], 0, sizeof files[3]);

    pthread_mutex_lock(&nu__vm_verified.lock);
    if (nu__vm_verified.valid) {
        bool same = true;

        for (int i = 0; i < 4; i++)
            same = same && nu__vm_same_file(&files[i],
                                            &nu__vm_verified.files[i]);
        if (same)
            goto out;
    }

    manifest = json_load_file(path, 0, &jerr);
    if (manifest == NULL) {
        rc = nu_err_set(err, NU_EINVAL, "vm: cannot parse %s: %s (rebuild "
                        "with nucleus vm image build)", path, jerr.text);
        goto out;
    }
    rc = nu__vm_check_digest(dir, NU_VM_KERNEL_FILE, manifest,
                             "kernel_sha256", err);
    if (rc == NU_OK)
        rc = nu__vm_check_digest(dir, NU_VM_INITRAMFS_FILE, manifest,
                                 "initramfs_sha256", err);
    if (rc == NU_OK && json_object_get(manifest, "vmlinux_sha256") != NULL)
        rc = nu__vm_check_digest(dir, NU_VM_VMLINUX_FILE, manifest,
                                 "vmlinux_sha256", err);
    if (rc == NU_OK) {
        memcpy(nu__vm_verified.files, files, sizeof files);
        nu__vm_verified.valid = true;
    }

out:
    pthread_mutex_unlock(&nu__vm_verified.lock);
    json_decref(manifest);
    return rc;
}
