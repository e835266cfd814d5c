/*
 * error.c - NU_E* code table, error detail buffers and decision kind names.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "nucleus/error.h"

const char *nu_err_name(int code)
{
    switch (code) {
#define NU__ERR_NAME(sym, val, name, msg) case val: return name;
        NU_ERRNO_MAP(NU__ERR_NAME)
#undef NU__ERR_NAME
    }
    return "unknown";
}

const char *nu_strerror(int code)
{
    switch (code) {
#define NU__ERR_MSG(sym, val, name, msg) case val: return msg;
        NU_ERRNO_MAP(NU__ERR_MSG)
#undef NU__ERR_MSG
    }
    return "unknown error";
}

int nu_err_from_errno(int errnum)
{
    switch (errnum) {
    case 0: return NU_OK;
    case ENOMEM: return NU_ENOMEM;
    case ENOENT: case ESRCH: return NU_ENOENT;
    case EPERM: case EACCES: case EROFS: return NU_EPERM;
    case EINVAL: case ENAMETOOLONG: case ELOOP: case EXDEV: return NU_EINVAL;
    case ERANGE: case EOVERFLOW: return NU_ERANGE;
    case ETIMEDOUT: return NU_ETIMEDOUT;
    case EEXIST: return NU_EEXIST;
    case ENOSYS: case EOPNOTSUPP: return NU_ENOTSUP;
    case EMFILE: case ENFILE: case ENOSPC: case EDQUOT: case EFBIG: return NU_ELIMIT;
    default: return NU_EIO;
    }
}

static int nu__err_vset(nu_err_t *err, int code, int errnum,
                        const char *fmt, va_list ap)
{
    if (err == NULL)
        return code;

    err->code = code;
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);

    if (errnum != 0) {
        size_t used = strlen(err->msg);
        snprintf(err->msg + used, sizeof err->msg - used, ": %s",
                 strerror(errnum));
    }
    return code;
}

int nu_err_set(nu_err_t *err, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    nu__err_vset(err, code, 0, fmt, ap);
    va_end(ap);
    return code;
}

int nu_err_errno(nu_err_t *err, int errnum, const char *fmt, ...)
{
    va_list ap;
    int code = nu_err_from_errno(errnum);

    va_start(ap, fmt);
    nu__err_vset(err, code, errnum, fmt, ap);
    va_end(ap);
    return code;
}

void nu_err_clear(nu_err_t *err)
{
    if (err != NULL) {
        err->code = NU_OK;
        err->msg[0] = '\0';
    }
}

static const char *const nu__kind_names[] = {
#define NU__KIND_NAME(sym, name) name,
    NU_KIND_MAP(NU__KIND_NAME)
#undef NU__KIND_NAME
};

_Static_assert(sizeof nu__kind_names / sizeof nu__kind_names[0] == NU_KIND_COUNT,
               "every kind has a wire name");

const char *nu_kind_name(nu_kind_t kind)
{
    if ((int)kind < 0 || kind >= NU_KIND_COUNT)
        return NULL;
    return nu__kind_names[kind];
}

int nu_kind_parse(const char *name)
{
    for (int i = 0; i < NU_KIND_COUNT; i++)
        if (strcmp(nu__kind_names[i], name) == 0)
            return i;
    return -1;
}
