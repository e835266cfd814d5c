/*
 * decide_internal.h - shared state of the decision steps (decide*.c only).
 */
#ifndef NUCLEUS_DECIDE_INTERNAL_H
#define NUCLEUS_DECIDE_INTERNAL_H

#include "nucleus/classify.h"
#include "nucleus/decide.h"

typedef enum {
    NU__TOOL_READ,
    NU__TOOL_WRITE,
    NU__TOOL_EDIT,
    NU__TOOL_GLOB,
    NU__TOOL_GREP,
    NU__TOOL_RUN,
    NU__TOOL_WEB_FETCH
} nu__tool_t;

/* The fields of a validated call that later steps use.  Strings point into
 * the call (borrowed, not owned). */
typedef struct nu__request {
    nu__tool_t tool;
    bool tool_known;           /* "tool" named a known tool, even when a
                                * later field was invalid */
    const char *path;          /* read/write/edit target; glob/grep root */
    const char *pattern;       /* glob pattern; grep's glob filter */
    const char *cwd;           /* run */
    const char *command;       /* run with a shell string, else NULL */
    const json_t *argv;        /* run with argv, else NULL */
    const json_t *env;         /* run's env object, else NULL */
    nu_url_t url;              /* web_fetch */
} nu__request_t;

/* Validate the request shape (step 1).  Returns NU_OK and fills req, or
 * NU_EINVAL with a one-line reason naming the field. */
int nu__decide_validate(const json_t *call, nu__request_t *req,
                        char *reason, size_t size);

#endif
