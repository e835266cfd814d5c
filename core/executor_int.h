/*
 * executor_int.h - helpers shared by the executor's source files.
 *
 * executor.c owns dispatch, results and argument parsing; executor_fs.c
 * read, write and edit; executor_walk.c directory walks and glob;
 * executor_grep.c grep; executor_run.c run.
 */
#ifndef NUCLEUS_EXECUTOR_INT_H
#define NUCLEUS_EXECUTOR_INT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "nucleus/executor.h"

/* Result building.  nu__exec_ok returns {"ok": true}; nu__exec_fail turns
 * err into {"ok": false, "kind", "error"} plus the fields of partial (which
 * it takes over; may be NULL), stores it in *result and returns code. */
json_t *nu__exec_ok(void);
int nu__exec_fail(json_t **result, nu_err_t *err, int code, json_t *partial);

/* Set obj[field] to the bytes and obj[field + "_encoding"] to "utf-8" or
 * "base64".  Returns NU_OK or NU_ENOMEM. */
int nu__exec_set_bytes(json_t *obj, const char *field,
                       const unsigned char *data, size_t len);

/* Set obj[field] to a display string: invalid UTF-8 sequences and NUL
 * become U+FFFD, and text longer than max bytes is cut at a character
 * boundary.  Sets *cut when it was cut (cut may be NULL). */
int nu__exec_set_text(json_t *obj, const char *field, const char *data,
                      size_t len, size_t max, int *cut);
json_t *nu__exec_text(const char *data, size_t len, size_t max, int *cut);

/* Argument access.  Each returns NU_OK (the default when the argument is
 * absent or null and not required) or NU_EINVAL with err filled.  Strings
 * containing NUL are rejected. */
int nu__exec_arg_string(const char *tool, const json_t *args, const char *key,
                        int required, const char **out, nu_err_t *err);
int nu__exec_arg_uint(const char *tool, const json_t *args, const char *key,
                      uint64_t def, uint64_t max, uint64_t *out, nu_err_t *err);
int nu__exec_arg_bool(const char *tool, const json_t *args, const char *key,
                      int def, int *out, nu_err_t *err);

/* Decode args[field] using args[field + "_encoding"] ("utf-8" default, or
 * "base64") into a malloc'd buffer of at most max bytes (NU_ELIMIT when
 * larger).  When required is 0 and the field is absent, *data is NULL. */
int nu__exec_arg_bytes(const char *tool, const json_t *args, const char *field,
                       int required, size_t max, unsigned char **data,
                       size_t *len, nu_err_t *err);

/* Resolve path for tool beneath the executor's root. */
int nu__exec_resolve(nu_executor_t *ex, const char *tool, const char *path,
                     int flags, nu_resolved_t *out, nu_err_t *err);

/* Read all of fd (a regular file of st_size bytes) into a malloc'd buffer,
 * failing with NU_ELIMIT above max bytes. */
int nu__exec_slurp(const char *tool, const char *rel, int fd, size_t max,
                   unsigned char **data, size_t *len, nu_err_t *err);

/* Open the resolved regular file for reading; rejects directories and
 * special files with NU_EINVAL. */
int nu__exec_open_regular(const char *tool, const nu_resolved_t *r,
                          struct stat *st, nu_err_t *err);

/* Tests only: enabled 0 makes the walk use openat(2) as on kernels
 * without openat2; 1 restores detection. */
void nu__resolve_use_openat2(int enabled);

int nu__utf8_valid(const unsigned char *s, size_t len);
char *nu__base64_encode(const unsigned char *data, size_t len, size_t *out_len);
int nu__base64_decode(const char *text, size_t len, unsigned char **out,
                      size_t *out_len);

/* Directory walk used by glob and grep.  Visits entries below the
 * directory (dir_fd, name) in name order, depth first, never following
 * symbolic links.  visit is called for every entry with its path relative
 * to the walk's base.  It returns 1 to descend into a directory, 0 to skip
 * it, NU__WALK_STOP to end the walk, or a negative error code. */
#define NU__WALK_STOP 2
typedef int (*nu__walk_visit_t)(void *ctx, int parent_fd, const char *name,
                                const char *rel, const struct stat *st);

/* Returns NU_OK, or the visitor's error; sets *capped when
 * max_entries entries were visited before the end. */
int nu__exec_walk(const nu_resolved_t *base, size_t max_entries,
                  nu__walk_visit_t visit, void *ctx, int *capped,
                  nu_err_t *err);

/* Match a glob pattern for the glob tool and grep's "glob" filter.  '/'
 * separates components, and "**" as a whole component matches any number
 * of them.  Other components follow fnmatch(3).  A leading '.' must be
 * matched explicitly, so "*" and "**" skip hidden entries. */
int nu__glob_match(const char *pattern, const char *path);

/* True when some path below the directory dir could match pattern, so
 * the walk should descend into it. */
int nu__glob_match_prefix(const char *pattern, const char *dir);

/* Exclusion patterns ("exclude" of glob and grep), which the host fills
 * with its blocked paths so that recursive tools never reach them.  A
 * pattern without '/' matches any path component; one with '/' is
 * anchored at the workspace root and also covers everything below a
 * matching directory.  nu__exclude_arg validates the argument (NULL when
 * absent); nu__excluded tests base_rel + "/" + rel against it. */
int nu__exclude_arg(const char *tool, const json_t *args, const json_t **out,
                    nu_err_t *err);
int nu__excluded(const json_t *exclude, const char *base_rel, const char *rel);

/* Check that a glob pattern is relative, has no "." or ".." components
 * and is at most 4095 bytes; NU_EINVAL otherwise. */
int nu__glob_check(const char *tool, const char *pattern, nu_err_t *err);

#endif
