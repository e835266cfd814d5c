/*
 * sandbox_files.c - files the host places under /run/nucleus in a pod
 * (SVIDs, trust bundles), written by the pod init.
 *
 * The host sends {"tool": "_put_run_file", "path": REL, "mode": M} with
 * the content as the request's blob.  REL is relative to /run/nucleus,
 * made of the characters [A-Za-z0-9._-] and '/', with no empty, "." or
 * ".." segment.  The init creates missing parent directories (0755),
 * writes a temporary file beside the target and renames it over the
 * target, so a reader sees the old or the new content, never a mix.  The
 * walk uses openat2 with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS, so a
 * symlink an agent planted under /run/nucleus cannot redirect the write.
 *
 * With "link": TARGET instead of a blob, the init points the symbolic
 * link REL at TARGET (a sibling name) by renaming a new link over it, so
 * readers that resolve REL see one generation or the next, never a mix.
 * Sibling directories named ".<name>.*" other than TARGET and the link's
 * previous target are then removed.  This is how SVID directories rotate:
 * svid -> .svid.3 holds svid.pem, svid.key and bundle.pem of one
 * generation.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "nucleus/proto.h"
#include "sandbox_internal.h"

#define NU__RUN_DIR "/run/nucleus"

/* Check REL as described above. */
static bool nu__run_path_valid(const char *rel)
{
    const char *segment = rel;
    size_t len = strlen(rel);

    if (len == 0 || len > 255 || rel[0] == '/' || rel[len - 1] == '/')
        return false;
    for (const char *p = rel; *p != '\0'; p++) {
        bool ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                  (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' ||
                  *p == '-' || *p == '/';
        if (!ok)
            return false;
    }
    while (segment != NULL) {
        const char *end = strchr(segment, '/');
        size_t n = end != NULL ? (size_t)(end - segment) : strlen(segment);

        if (n == 0 || (n == 1 && segment[0] == '.') ||
            (n == 2 && segment[0] == '.' && segment[1] == '.'))
            return false;
        segment = end != NULL ? end + 1 : NULL;
    }
    return true;
}

static int nu__open_dir_beneath(int root, const char *rel)
{
    struct open_how how = {
        .flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
                   RESOLVE_NO_MAGICLINKS,
    };

    int fd = (int)syscall(SYS_openat2, root, rel, &how, sizeof how);
    char part[NAME_MAX + 1];
    const char *p = rel;

    if (fd >= 0 || errno != ENOSYS)
        return fd;

    /* The pod's filter rejects openat2 (sandbox_setid.c), so walk one
     * component at a time and follow no link. */
    fd = fcntl(root, F_DUPFD_CLOEXEC, 0);
    while (fd >= 0 && *p != '\0') {
        size_t n = strcspn(p, "/");
        int next;

        if (n == 0 || n > NAME_MAX || (n <= 2 && strncmp(p, "..", n) == 0)) {
            close(fd);
            errno = EINVAL;
            return -1;
        }
        memcpy(part, p, n);
        part[n] = '\0';
        next = openat(fd, part, O_PATH | O_DIRECTORY | O_NOFOLLOW |
                      O_CLOEXEC);
        close(fd);
        fd = next;
        p += n;
        p += strspn(p, "/");
    }
    return fd;
}

/* Open the parent directory of rel (creating it), and point *name at the
 * final component.  Returns the directory fd or -1 with errno set. */
static int nu__run_parent(int root, char *rel, const char **name)
{
    char *slash = strrchr(rel, '/');

    if (slash == NULL) {
        *name = rel;
        return fcntl(root, F_DUPFD_CLOEXEC, 0);
    }
    *name = slash + 1;
    *slash = '\0';
    for (char *p = strchr(rel, '/'); ; p = strchr(p + 1, '/')) {
        if (p != NULL)
            *p = '\0';
        if (mkdirat(root, rel, 0755) != 0 && errno != EEXIST)
            return -1;
        if (p == NULL)
            break;
        *p = '/';
    }
    return nu__open_dir_beneath(root, rel);
}

static int nu__write_all_fd(int fd, const uint8_t *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

static json_t *nu__put_error(const char *path, const char *detail)
{
    char message[512];

    snprintf(message, sizeof message, "podinit: cannot write '%s/%s': %s",
             NU__RUN_DIR, path, detail);
    return json_pack("{s:b,s:s,s:s}", "ok", 0, "kind", "io_error", "error",
                     message);
}

json_t *nu__put_run_file(const json_t *request, const uint8_t *data,
                         size_t len)
{
    const char *path = json_string_value(json_object_get(request, "path"));
    json_t *mode_json = json_object_get(request, "mode");
    unsigned mode = json_is_integer(mode_json) ?
                    (unsigned)json_integer_value(mode_json) & 0777 : 0600;
    char rel[256];
    char tmp[300];
    const char *name;
    int root = -1;
    int dir = -1;
    int fd = -1;
    json_t *result;

    if (path == NULL || !nu__run_path_valid(path))
        return json_pack("{s:b,s:s,s:s}", "ok", 0, "kind", "invalid_request",
                         "error", "podinit: cannot write a run file: 'path' "
                         "must be relative to " NU__RUN_DIR " and use only "
                         "letters, digits, '.', '_', '-' and '/'");
    snprintf(rel, sizeof rel, "%s", path);

    root = open(NU__RUN_DIR, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    dir = root < 0 ? -1 : nu__run_parent(root, rel, &name);
    if (dir < 0) {
        result = nu__put_error(path, strerror(errno));
        goto out;
    }

    snprintf(tmp, sizeof tmp, ".%s.tmp-%ld", name, (long)getpid());
    unlinkat(dir, tmp, 0);
    fd = openat(dir, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
                O_CLOEXEC, mode);
    if (fd < 0 || fchmod(fd, mode) != 0 || nu__write_all_fd(fd, data, len) != 0 ||
        renameat(dir, tmp, dir, name) != 0) {
        result = nu__put_error(path, strerror(errno));
        unlinkat(dir, tmp, 0);
        goto out;
    }
    result = json_pack("{s:b,s:I}", "ok", 1, "bytes", (json_int_t)len);

out:
    if (fd >= 0)
        close(fd);
    if (dir >= 0)
        close(dir);
    if (root >= 0)
        close(root);
    return result;
}

/* Remove a directory of plain files below dir (one level, no symlinks
 * followed). */
static void nu__remove_flat_dir(int dir, const char *name)
{
    int fd = openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    DIR *d = fd < 0 ? NULL : fdopendir(fd);
    struct dirent *e;

    if (d == NULL) {
        if (fd >= 0)
            close(fd);
        return;
    }
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            unlinkat(dirfd(d), e->d_name, 0);
    closedir(d);
    unlinkat(dir, name, AT_REMOVEDIR);
}

/* Remove generations ".<name>.*" except keep1 and keep2. */
static void nu__prune_generations(int dir, const char *name, const char *keep1,
                                  const char *keep2)
{
    char prefix[300];
    int fd = fcntl(dir, F_DUPFD_CLOEXEC, 0);
    DIR *d = fd < 0 ? NULL : fdopendir(fd);
    struct dirent *e;
    char victims[16][256];
    int n = 0;

    if (d == NULL) {
        if (fd >= 0)
            close(fd);
        return;
    }
    snprintf(prefix, sizeof prefix, ".%s.", name);
    while ((e = readdir(d)) != NULL && n < 16) {
        if (strncmp(e->d_name, prefix, strlen(prefix)) != 0 ||
            strcmp(e->d_name, keep1) == 0 || strcmp(e->d_name, keep2) == 0 ||
            strstr(e->d_name, ".tmp-") != NULL)
            continue;
        snprintf(victims[n++], sizeof victims[0], "%s", e->d_name);
    }
    closedir(d);
    for (int i = 0; i < n; i++)
        nu__remove_flat_dir(dir, victims[i]);
}

json_t *nu__put_run_link(const json_t *request)
{
    const char *path = json_string_value(json_object_get(request, "path"));
    const char *target = json_string_value(json_object_get(request, "link"));
    char rel[256], tmp[300], previous[256] = "";
    const char *name;
    int root = -1, dir = -1;
    ssize_t n;
    json_t *result;

    if (path == NULL || !nu__run_path_valid(path) || target == NULL ||
        !nu__run_path_valid(target) || strchr(target, '/') != NULL)
        return json_pack("{s:b,s:s,s:s}", "ok", 0, "kind", "invalid_request",
                         "error", "podinit: cannot link a run path: 'path' "
                         "must be relative to " NU__RUN_DIR " and 'link' a "
                         "sibling name");
    snprintf(rel, sizeof rel, "%s", path);

    root = open(NU__RUN_DIR, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    dir = root < 0 ? -1 : nu__run_parent(root, rel, &name);
    if (dir < 0) {
        result = nu__put_error(path, strerror(errno));
        goto out;
    }

    n = readlinkat(dir, name, previous, sizeof previous - 1);
    previous[n > 0 ? n : 0] = '\0';

    snprintf(tmp, sizeof tmp, ".%s.tmp-%ld", name, (long)getpid());
    unlinkat(dir, tmp, 0);
    if (symlinkat(target, dir, tmp) != 0 || renameat(dir, tmp, dir, name) != 0) {
        result = nu__put_error(path, strerror(errno));
        unlinkat(dir, tmp, 0);
        goto out;
    }
    nu__prune_generations(dir, name, target, previous);
    result = json_pack("{s:b}", "ok", 1);

out:
    if (dir >= 0)
        close(dir);
    if (root >= 0)
        close(root);
    return result;
}
