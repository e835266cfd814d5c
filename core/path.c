/*
 * path.c - lexical normalization of workspace paths.
 *
 * Path rules are checked on one spelling of each path, so that "a/../.env",
 * "./.env", ".//.env" and "/workspace/.env" are all checked as ".env".
 * Normalization is purely lexical: it never looks at the file system, so
 * symbolic links are the sandbox's concern (it resolves paths inside the
 * pod's root without following links out of it).
 *
 * Rules:
 *   1. "" and "." segments and repeated slashes are dropped.
 *   2. ".." removes the previous segment.  In a relative path, ".." at the
 *      workspace root leaves the workspace and is rejected.
 *   3. An absolute path is first resolved against "/" (where "/.." is "/",
 *      as in the kernel) and must then lie at or below /workspace.
 */
#include <string.h>

#include "nucleus/lattice.h"

#define NU__WORKSPACE "workspace"

typedef struct nu_segment {
    const char *start;
    size_t len;
} nu_segment_t;

/* Resolve the segments of path into segs; returns the count, or a negative
 * NU_E* code. */
static int nu__path_segments(const char *path, bool absolute,
                             nu_segment_t *segs, size_t max)
{
    size_t count = 0;
    const char *p = path;

    while (*p != '\0') {
        const char *start;
        size_t len;

        while (*p == '/')
            p++;
        start = p;
        while (*p != '\0' && *p != '/')
            p++;
        len = (size_t)(p - start);

        if (len == 0 || (len == 1 && start[0] == '.'))
            continue;

        if (len == 2 && start[0] == '.' && start[1] == '.') {
            if (count > 0)
                count--;
            else if (!absolute)
                return NU_EPERM;
            continue;
        }

        if (count == max)
            return NU_ELIMIT;
        segs[count].start = start;
        segs[count].len = len;
        count++;
    }
    return (int)count;
}

int nu_path_normalize(const char *path, char *out, size_t size)
{
    /* One extra slot, because an absolute path also contains "workspace". */
    nu_segment_t segs[NU_PATH_MAX_SEGMENTS + 1];
    bool absolute;
    size_t first = 0;
    size_t used = 0;
    int count;

    if (path == NULL || out == NULL || path[0] == '\0')
        return NU_EINVAL;
    if (strnlen(path, NU_PATH_MAX + 1) > NU_PATH_MAX)
        return NU_ELIMIT;

    absolute = path[0] == '/';
    count = nu__path_segments(path, absolute, segs,
                              NU_PATH_MAX_SEGMENTS + (absolute ? 1 : 0));
    if (count < 0)
        return count;

    if (absolute) {
        if (count == 0 || segs[0].len != strlen(NU__WORKSPACE) ||
            memcmp(segs[0].start, NU__WORKSPACE, segs[0].len) != 0)
            return NU_EPERM;
        first = 1;
    }

    for (size_t i = first; i < (size_t)count; i++) {
        size_t sep = i > first ? 1 : 0;

        if (used + sep + segs[i].len + 1 > size)
            return NU_ERANGE;
        if (sep)
            out[used++] = '/';
        memcpy(out + used, segs[i].start, segs[i].len);
        used += segs[i].len;
    }

    if (size == 0)
        return NU_ERANGE;
    out[used] = '\0';
    return NU_OK;
}
