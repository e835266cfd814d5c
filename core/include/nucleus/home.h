/*
 * home.h - the state directory ($NUCLEUS_HOME).
 *
 * Resolution order: an explicit directory (a --home option), then
 * $NUCLEUS_HOME, then $XDG_STATE_HOME/nucleus, then /var/lib/nucleus when
 * running as root, then $HOME/.local/state/nucleus.  It holds ca/,
 * audit.db and pods/.
 */
#ifndef NUCLEUS_HOME_H
#define NUCLEUS_HOME_H

#include <stddef.h>

#include "nucleus/error.h"

/* Write the state directory into out.  explicit_dir may be NULL.  Returns
 * NU_OK, or NU_EINVAL when no candidate is set (no HOME) or the result does
 * not fit in size bytes. */
int nu_home_resolve(const char *explicit_dir, char *out, size_t size,
                    nu_err_t *err);

/* Create dir and its missing parents with mode 0700 (existing directories
 * are left as they are).  Returns NU_OK or an errno-derived code. */
int nu_mkdir_p(const char *dir, nu_err_t *err);

/* Resolve the state directory and create it; then join sub ("ca",
 * "audit.db"; may be NULL for the directory itself) into out. */
int nu_home_path(const char *explicit_dir, const char *sub, char *out,
                 size_t size, nu_err_t *err);

#endif
