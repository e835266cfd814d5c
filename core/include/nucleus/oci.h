/*
 * oci.h - the OCI isolation tier ("oci:RUNTIME").
 *
 * An oci pod is the same pod init as the ns tier (sandbox.h), started by
 * an OCI runtime binary from a bundle that nucleus writes: a config.json
 * following the OCI runtime specification 1.0 and an empty root
 * directory.  The runtime creates the namespaces, mounts, cgroups,
 * rlimits and seccomp filter the config describes.  The init then checks
 * its capabilities and applies no_new_privs and Landlock itself, as in
 * the ns tier.  The host stream is a socketpair end passed as fd 3 with
 * --preserve-fds, so nu_sandbox_call, nu_sandbox_tool and
 * nu_sandbox_close work unchanged.  docs/oci.md describes the bundle and
 * the differences from the ns tier.
 *
 * Select it with nu_sandbox_opts_t.isolation = "oci:crun", "oci:runc",
 * "oci:runsc", "oci:kata-runtime" or "oci:/path/to/runtime".
 */
#ifndef NUCLEUS_OCI_H
#define NUCLEUS_OCI_H

#include <stddef.h>

#include <jansson.h>

#include "nucleus/error.h"
#include "nucleus/sandbox.h"

/* Path of the init program inside the container. */
#define NU_OCI_INIT_PATH "/.nucleus/nucleus-podinit"

/* Host-side facts of one bundle that nu_oci_config cannot derive from
 * the sandbox options. */
typedef struct nu_oci_bundle {
    const char *init_source;   /* host file bound read-only at
                                * NU_OCI_INIT_PATH; required */
    const char *cgroups_path;  /* linux.cgroupsPath; NULL leaves cgroups
                                * and linux.resources out */
} nu_oci_bundle_t;

/* Build the config.json object (OUT, a new reference) of an oci pod for
 * opts: namespaces, mounts (read-only binds, the workspace read-write at
 * /workspace, masks), no capabilities, rlimits, resources and the seccomp
 * profile of nu_oci_seccomp.  Host paths are checked with lstat: missing
 * binds and masks are skipped, as in the ns tier.  Returns NU_OK,
 * NU_EINVAL (bad option) or NU_ENOMEM. */
int nu_oci_config(const nu_sandbox_opts_t *opts,
                  const nu_oci_bundle_t *bundle, json_t **out,
                  nu_err_t *err);

/* The linux.seccomp object (OUT): the ns tier's filter written as an OCI
 * seccomp profile.  Returns NU_OK or NU_ENOMEM. */
int nu_oci_seccomp(json_t **out, nu_err_t *err);

/* Resolve the runtime of an "oci:RUNTIME" isolation string into out.  A
 * bare name is searched on PATH, then in /usr/sbin, /sbin and
 * /usr/local/sbin.  A name with a '/' must be an absolute path.  Returns
 * NU_OK, NU_EINVAL (invalid string) or NU_ENOTSUP (runtime not found). */
int nu_oci_runtime_path(const char *isolation, char *out, size_t size,
                        nu_err_t *err);

#endif
