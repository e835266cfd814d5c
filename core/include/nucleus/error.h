/*
 * error.h - error codes and decision kinds shared by every module.
 *
 * Library functions that can fail return 0 (or a non-negative count) on
 * success and a negative NU_E* code on failure.  Codes from errno, mbedTLS,
 * SQLite and libseccomp are converted once, where the call is made, and the
 * detail goes into a caller-supplied nu_err_t buffer.
 *
 * Decision kinds (nu_kind_t) are the "kind" field of a denied or gated tool
 * call, the same strings in every front end and in the audit log.
 */
#ifndef NUCLEUS_ERROR_H
#define NUCLEUS_ERROR_H

#include <stddef.h>

/* X(symbol, value, name, message) */
#define NU_ERRNO_MAP(X)                                                  \
    X(NU_OK, 0, "ok", "success")                                         \
    X(NU_EINVAL, -1, "invalid", "invalid argument")                      \
    X(NU_ENOMEM, -2, "nomem", "out of memory")                           \
    X(NU_EIO, -3, "io", "input/output error")                            \
    X(NU_ENOENT, -4, "noent", "not found")                               \
    X(NU_EPERM, -5, "perm", "operation not permitted")                   \
    X(NU_ERANGE, -6, "range", "value out of range")                      \
    X(NU_EPARSE, -7, "parse", "syntax error")                            \
    X(NU_ELIMIT, -8, "limit", "limit exceeded")                          \
    X(NU_ETIMEDOUT, -9, "timedout", "timed out")                         \
    X(NU_EEXIST, -10, "exist", "already exists")                         \
    X(NU_EPOLICY, -11, "policy", "policy error")                         \
    X(NU_ESANDBOX, -12, "sandbox", "sandbox error")                      \
    X(NU_ECRYPTO, -13, "crypto", "cryptographic error")                  \
    X(NU_EDB, -14, "db", "database error")                               \
    X(NU_EPROTO, -15, "proto", "protocol error")                         \
    X(NU_ENOTSUP, -16, "notsup", "not supported on this host")           \
    X(NU_EDENIED, -17, "denied", "denied")                               \
    X(NU_EINTERNAL, -18, "internal", "internal error")

typedef enum {
#define NU__ERR_ENUM(sym, val, name, msg) sym = val,
    NU_ERRNO_MAP(NU__ERR_ENUM)
#undef NU__ERR_ENUM
} nu_errcode_t;

/* Return the short name ("nomem") or the message ("out of memory") of an
 * NU_E* code; unknown codes give "unknown" / "unknown error". */
const char *nu_err_name(int code);
const char *nu_strerror(int code);

/* Map an errno value to the closest NU_E* code. */
int nu_err_from_errno(int errnum);

/* Error detail buffer: functions that fail fill it with one line in the
 * project's voice, "<area>: cannot <verb> <object>: <detail>". */
#define NU_ERR_MAX 512
typedef struct nu_err {
    int code;
    char msg[NU_ERR_MAX];
} nu_err_t;

/* Set err (may be NULL) to code and a printf-style message; returns code so
 * that "return nu_err_set(err, NU_EINVAL, ...)" is one statement. */
int nu_err_set(nu_err_t *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Like nu_err_set, appending ": " and strerror(errnum) to the message. */
int nu_err_errno(nu_err_t *err, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

void nu_err_clear(nu_err_t *err);

/* Decision kinds, in the order of the pipeline's error table. */
#define NU_KIND_MAP(X)                     \
    X(NU_KIND_NONE, "none")                \
    X(NU_KIND_INVALID_REQUEST, "invalid_request")     \
    X(NU_KIND_CAPABILITY_DENIED, "capability_denied") \
    X(NU_KIND_PATH_DENIED, "path_denied")             \
    X(NU_KIND_COMMAND_DENIED, "command_denied")       \
    X(NU_KIND_NETWORK_DENIED, "network_denied")       \
    X(NU_KIND_APPROVAL_REQUIRED, "approval_required") \
    X(NU_KIND_APPROVAL_DENIED, "approval_denied")     \
    X(NU_KIND_BUDGET_EXHAUSTED, "budget_exhausted")   \
    X(NU_KIND_TIME_EXPIRED, "time_expired")           \
    X(NU_KIND_POLICY_ERROR, "policy_error")           \
    X(NU_KIND_SANDBOX_ERROR, "sandbox_error")         \
    X(NU_KIND_TIMEOUT, "timeout")                     \
    X(NU_KIND_OUTPUT_TRUNCATED, "output_truncated")   \
    X(NU_KIND_NOT_FOUND, "not_found")                 \
    X(NU_KIND_IO_ERROR, "io_error")                   \
    X(NU_KIND_INTERNAL, "internal")

typedef enum {
#define NU__KIND_ENUM(sym, name) sym,
    NU_KIND_MAP(NU__KIND_ENUM)
#undef NU__KIND_ENUM
    NU_KIND_COUNT
} nu_kind_t;

/* Return the wire name of a kind ("path_denied"); NULL for out-of-range. */
const char *nu_kind_name(nu_kind_t kind);

/* Parse a wire name; returns -1 when name is not a kind. */
int nu_kind_parse(const char *name);

#endif
