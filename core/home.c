/*
 * home.c - locate and create the state directory.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nucleus/home.h"

static int nu__fits(int n, size_t size)
{
    return n >= 0 && (size_t)n < size;
}

int nu_home_resolve(const char *explicit_dir, char *out, size_t size,
                    nu_err_t *err)
{
    const char *env;
    int n;

    if (explicit_dir != NULL && explicit_dir[0] != '\0')
        n = snprintf(out, size, "%s", explicit_dir);
    else if ((env = getenv("NUCLEUS_HOME")) != NULL && env[0] != '\0')
        n = snprintf(out, size, "%s", env);
    else if ((env = getenv("XDG_STATE_HOME")) != NULL && env[0] != '\0')
        n = snprintf(out, size, "%s/nucleus", env);
    else if (geteuid() == 0)
        n = snprintf(out, size, "/var/lib/nucleus");
    else if ((env = getenv("HOME")) != NULL && env[0] != '\0')
        n = snprintf(out, size, "%s/.local/state/nucleus", env);
    else
        return nu_err_set(err, NU_EINVAL, "home: cannot locate the state "
                          "directory: set NUCLEUS_HOME or pass --home DIR");

    if (!nu__fits(n, size))
        return nu_err_set(err, NU_EINVAL, "home: state directory path is "
                          "too long (%d bytes)", n);
    return NU_OK;
}

int nu_mkdir_p(const char *dir, nu_err_t *err)
{
    char path[4096];
    size_t len = strlen(dir);

    if (len == 0 || len >= sizeof path)
        return nu_err_set(err, NU_EINVAL, "home: invalid directory '%s'", dir);
    memcpy(path, dir, len + 1);

    for (char *p = path + 1; ; p++) {
        if (*p != '/' && *p != '\0')
            continue;

        char saved = *p;
        *p = '\0';
        if (mkdir(path, 0700) != 0 && errno != EEXIST)
            return nu_err_errno(err, errno, "home: cannot create directory '%s'",
                                path);
        *p = saved;
        if (saved == '\0')
            break;
    }
    return NU_OK;
}

int nu_home_path(const char *explicit_dir, const char *sub, char *out,
                 size_t size, nu_err_t *err)
{
    char dir[4096];
    int rc, n;

    rc = nu_home_resolve(explicit_dir, dir, sizeof dir, err);
    if (rc != NU_OK)
        return rc;
    rc = nu_mkdir_p(dir, err);
    if (rc != NU_OK)
        return rc;

    if (sub == NULL)
        n = snprintf(out, size, "%s", dir);
    else
        n = snprintf(out, size, "%s/%s", dir, sub);
    if (!nu__fits(n, size))
        return nu_err_set(err, NU_EINVAL, "home: path under '%s' is too long",
                          dir);
    return NU_OK;
}
