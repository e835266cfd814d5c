/*
 * sandbox_oci_config.c - the config.json of an oci pod's bundle.
 *
 * The config follows the OCI runtime specification 1.0 (config.md and
 * config-linux.md) and mirrors the ns tier's pod (sandbox_ns.c):
 *
 *   namespaces  pid, network, ipc, uts, mount, cgroup, and user unless the
 *               caller is root and sets NU_SANDBOX_NO_USERNS; the user
 *               namespace maps the caller's uid and gid to themselves.
 *   root        the bundle's empty "rootfs" directory (or opts->rootfs),
 *               read-only.  Host binds that are symbolic links, such as
 *               the merged-/usr /bin and /lib, are links in that directory
 *               (sandbox_oci.c creates them) rather than mounts.
 *   mounts      from the table shared with the ns tier
 *               (sandbox_mounts.c): /proc (hidepid=invisible), a read-only
 *               /dev tmpfs with the runtime's default devices, /dev/pts,
 *               /dev/shm, /tmp, /run and /run/nucleus tmpfs of the pod's
 *               sizes, the read-only binds, /workspace read-write, the
 *               blocked paths covered (files by /dev/null, directories by
 *               an empty read-only tmpfs), the write-blocked paths bound
 *               read-only, and the init program at NU_OCI_INIT_PATH.
 *   process     the init, uid and gid of the caller, no capabilities in
 *               any set, no_new_privs, the ns tier's rlimits.
 *   resources   memory, pids and CPU bandwidth when a cgroups path is
 *               given (root only: rootless runtimes cannot write cgroup
 *               v1 limits).
 *   seccomp     nu_oci_seccomp.
 *   masked      the /proc entries the ns tier hides or makes read-only.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/personality.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "nucleus/oci.h"
#include "sandbox_internal.h"
#include "sandbox_mounts.h"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

#if defined(__x86_64__)
#define NU__OCI_ARCH "SCMP_ARCH_X86_64"
#elif defined(__aarch64__)
#define NU__OCI_ARCH "SCMP_ARCH_AARCH64"
#else
#error "the oci tier's seccomp profile names x86_64 and aarch64 only"
#endif

static const char *const nu__oci_default_env[] = {
    "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
    "HOME=/workspace", "LANG=C.UTF-8", "TERM=dumb", NULL
};

/* The device nodes and /dev links that OCI runtimes create in every
 * container (OCI runtime specification 1.0, config-linux.md "Default
 * Devices" and runtime-linux.md "Dev symbolic links"). */
static const char *const nu__oci_runtime_devices[] = {
    "null", "zero", "full", "random", "urandom", "tty", NULL
};
static const char *const nu__oci_runtime_links[] = {
    "fd", "stdin", "stdout", "stderr", "ptmx", NULL
};

/* --- seccomp ---------------------------------------------------------- */

/* One rule: names get action ERRNO with errnum; args may be NULL. */
static json_t *nu__oci_errno_rule(json_t *names, int errnum, json_t *args)
{
    json_t *rule = json_pack("{s:o,s:s,s:i}", "names", names, "action",
                             "SCMP_ACT_ERRNO", "errnoRet", errnum);

    if (rule != NULL && args != NULL &&
        json_object_set_new(rule, "args", args) != 0) {
        json_decref(rule);
        return NULL;
    }
    if (rule == NULL)
        json_decref(args);
    return rule;
}

/* (arg[index] & mask) == value, as libseccomp's SCMP_CMP_MASKED_EQ: the
 * OCI profile gives the mask in "value" and the datum in "valueTwo". */
static json_t *nu__oci_masked_eq(int index, json_int_t mask,
                                 json_int_t value)
{
    return json_pack("[{s:i,s:I,s:I,s:s}]", "index", index, "value", mask,
                     "valueTwo", value, "op", "SCMP_CMP_MASKED_EQ");
}

static int nu__oci_add(json_t *rules, json_t *rule)
{
    return rule != NULL && json_array_append_new(rules, rule) == 0 ? 0 : -1;
}

static int nu__oci_seccomp_rules(json_t *rules)
{
    static const json_int_t ns_flags[] = {
        CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET,
        CLONE_NEWIPC, CLONE_NEWUTS, CLONE_NEWCGROUP, CLONE_NEWTIME,
    };
    json_t *names = json_array();
    int rc = 0;

    for (size_t i = 0; names != NULL && nu__denied_syscalls[i] != NULL; i++)
        if (json_array_append_new(names,
                                  json_string(nu__denied_syscalls[i])) != 0)
            rc = -1;
    if (names == NULL || rc != 0) {
        json_decref(names);
        return -1;
    }
    rc = nu__oci_add(rules, nu__oci_errno_rule(names, EPERM, NULL));

    /* Rules of one syscall are alternatives, so each namespace flag gets
     * its own rule.  The first clone argument contains the flags on x86_64
     * and aarch64. */
    for (size_t i = 0; rc == 0 && i < sizeof ns_flags / sizeof ns_flags[0];
         i++)
        rc = nu__oci_add(rules, nu__oci_errno_rule(
            json_pack("[s]", "clone"), EPERM,
            nu__oci_masked_eq(0, ns_flags[i], ns_flags[i])));
    if (rc == 0)
        rc = nu__oci_add(rules, nu__oci_errno_rule(json_pack("[s]", "clone3"),
                                                   ENOSYS, NULL));
    if (rc == 0)
        rc = nu__oci_add(rules, nu__oci_errno_rule(
            json_pack("[s]", "ioctl"), EPERM,
            nu__oci_masked_eq(1, 0xffffffff, TIOCSTI)));
    if (rc == 0)
        rc = nu__oci_add(rules, nu__oci_errno_rule(
            json_pack("[s]", "ioctl"), EPERM,
            nu__oci_masked_eq(1, 0xffffffff, TIOCLINUX)));

    /* No set-ID programs or device nodes in the workspace: the table of
     * sandbox_setid.c, two alternatives per checked call. */
    for (const nu__setid_rule_t *r = nu__setid_rules; rc == 0 && r->name;
         r++) {
        for (size_t i = 0; rc == 0 && i < 2; i++) {
            json_int_t mask = (json_int_t)nu__setid_mode_bits[i];
            json_int_t value = mask;

            if (r->kind == NU__SETID_ENOSYS) {
                if (i == 0)
                    rc = nu__oci_add(rules, nu__oci_errno_rule(
                        json_pack("[s]", r->name), ENOSYS, NULL));
                continue;
            }
            if (r->kind == NU__SETID_DEVICE) {
                mask = S_IFMT;
                value = (json_int_t)nu__setid_device_types[i];
            }
            rc = nu__oci_add(rules, nu__oci_errno_rule(
                json_pack("[s]", r->name), EPERM,
                nu__oci_masked_eq((int)r->arg, mask, value)));
        }
    }

    /* personality may only set PER_LINUX (0) or query (0xffffffff): any
     * other 32-bit value has a set bit whose cyclic neighbour is clear,
     * and those two values have none, so one rule per bit pair rejects
     * exactly the others.  (A profile rule cannot AND two comparisons of
     * the same argument, which the ns tier's hand-written BPF does.) */
    for (int bit = 0; rc == 0 && bit < 32; bit++) {
        json_int_t set = (json_int_t)1 << bit;
        json_int_t next = (json_int_t)1 << ((bit + 1) % 32);

        rc = nu__oci_add(rules, nu__oci_errno_rule(
            json_pack("[s]", "personality"), EPERM,
            nu__oci_masked_eq(0, set | next, set)));
    }
    return rc;
}

int nu_oci_seccomp(json_t **out, nu_err_t *err)
{
    json_t *seccomp = json_pack("{s:s,s:[s],s:[]}", "defaultAction",
                                "SCMP_ACT_ALLOW", "architectures",
                                NU__OCI_ARCH, "syscalls");

    *out = NULL;
    if (seccomp == NULL ||
        nu__oci_seccomp_rules(json_object_get(seccomp, "syscalls")) != 0) {
        json_decref(seccomp);
        return nu_err_set(err, NU_ENOMEM, "oci: out of memory");
    }
    *out = seccomp;
    return NU_OK;
}

/* --- mounts ----------------------------------------------------------- */

static int nu__oci_mount(json_t *mounts, const char *dest, const char *type,
                         const char *source, json_t *options)
{
    json_t *m = json_pack("{s:s,s:s,s:s,s:o}", "destination", dest, "type",
                          type, "source", source, "options", options);

    return m != NULL && json_array_append_new(mounts, m) == 0 ? 0 : -1;
}

/* Append the option names of the mount flags in flags. */
static int nu__oci_flag_options(json_t *options, unsigned long flags)
{
    static const struct {
        unsigned long flag;
        const char *name;
    } names[] = {
        { MS_RDONLY, "ro" }, { MS_NOSUID, "nosuid" }, { MS_NODEV, "nodev" },
        { MS_NOEXEC, "noexec" },
    };

    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if ((flags & names[i].flag) &&
            json_array_append_new(options, json_string(names[i].name)) != 0)
            return -1;
    return 0;
}

/* Add file system m of sandbox_mounts.c at dest with its flags, then its
 * data split at commas.  limits may be NULL when m has no size from
 * them. */
static int nu__oci_fs(json_t *mounts, const char *dest, const nu__mount_t *m,
                      const nu_sandbox_limits_t *limits)
{
    json_t *options = json_array();
    char data[160];
    char *save = NULL;

    if (options == NULL || nu__oci_flag_options(options, m->flags) != 0 ||
        nu__mount_data(m, limits, data, sizeof data) != 0) {
        json_decref(options);
        return -1;
    }
    for (char *opt = strtok_r(data, ",", &save); opt != NULL;
         opt = strtok_r(NULL, ",", &save))
        if (json_array_append_new(options, json_string(opt)) != 0) {
            json_decref(options);
            return -1;
        }
    return nu__oci_mount(mounts, dest, m->type, m->type, options);
}

/* Bind source at dest with mount flags flags, recursively ("rbind") or
 * not. */
static int nu__oci_bind(json_t *mounts, const char *dest, const char *source,
                        bool recursive, unsigned long flags)
{
    json_t *options = json_pack("[s]", recursive ? "rbind" : "bind");

    if (options == NULL || nu__oci_flag_options(options, flags) != 0) {
        json_decref(options);
        return -1;
    }
    return nu__oci_mount(mounts, dest, "bind", source, options);
}

/* Add the file systems of nu__pod_mounts, and /run/nucleus as a copy of
 * /run: the ns tier creates /run/nucleus, where nu_sandbox_put_file
 * writes, before the init starts, but a runtime can only mount it. */
static int nu__oci_pod_fs(json_t *mounts, const nu_sandbox_limits_t *l)
{
    int rc = 0;

    for (const nu__mount_t *m = nu__pod_mounts;
         rc == 0 && m->target != NULL; m++) {
        rc = nu__oci_fs(mounts, m->target, m, l);
        if (rc == 0 && strcmp(m->target, "/run") == 0)
            rc = nu__oci_fs(mounts, "/run/nucleus", m, l);
    }
    return rc;
}

/* Add the read-only binds that exist on the host and are not symbolic
 * links.  Links become links in the bundle's root (nu__oci_root_links in
 * sandbox_oci.c). */
static int nu__oci_ro_binds(json_t *mounts, const char *const *binds)
{
    struct stat st;

    for (size_t i = 0; binds[i] != NULL; i++) {
        if (binds[i][0] != '/')
            return -EINVAL;
        if (lstat(binds[i], &st) != 0 || S_ISLNK(st.st_mode))
            continue;
        if (nu__oci_bind(mounts, binds[i], binds[i], true,
                         NU__BIND_READONLY) != 0)
            return -ENOMEM;
    }
    return 0;
}

static int nu__oci_check_relative(const char *path, nu_err_t *err)
{
    const char *p = path;

    if (path[0] == '\0' || path[0] == '/')
        return nu_err_set(err, NU_EINVAL, "oci: cannot mask '%s': give a "
                          "workspace-relative path", path);
    while (p != NULL) {
        if (strncmp(p, "..", 2) == 0 && (p[2] == '/' || p[2] == '\0'))
            return nu_err_set(err, NU_EINVAL, "oci: cannot mask '%s': '..' "
                              "is not allowed", path);
        p = strchr(p, '/');
        if (p != NULL)
            p++;
    }
    return NU_OK;
}

/* Add the blocked paths (hidden) or write-blocked paths (read-only)
 * beneath the workspace.  Paths that are gone or are symbolic links are
 * skipped, as in the ns tier, because the runtime would follow a link out
 * of the workspace. */
static int nu__oci_masks(json_t *mounts, const char *workspace,
                         const char *const *paths, bool hide, nu_err_t *err)
{
    char host[PATH_MAX];
    char dest[PATH_MAX];
    struct stat st;
    int rc;

    for (size_t i = 0; paths != NULL && paths[i] != NULL; i++) {
        rc = nu__oci_check_relative(paths[i], err);
        if (rc < 0)
            return rc;
        if (snprintf(host, sizeof host, "%s/%s", workspace, paths[i]) >=
            (int)sizeof host ||
            snprintf(dest, sizeof dest, "/workspace/%s", paths[i]) >=
            (int)sizeof dest)
            return nu_err_set(err, NU_EINVAL, "oci: cannot mask '%s': path "
                              "too long", paths[i]);
        if (lstat(host, &st) != 0 || S_ISLNK(st.st_mode))
            continue;

        if (!hide)
            rc = nu__oci_bind(mounts, dest, host, true, NU__BIND_READONLY);
        else if (S_ISDIR(st.st_mode))
            /* NOTE: under runc 1.1.5 the tmpfs root shows the mode of
             * its mount point, so the empty directory stays listable. */
            rc = nu__oci_fs(mounts, dest, &nu__pod_hidden_dir, NULL);
        else
            rc = nu__oci_bind(mounts, dest, "/dev/null", false,
                              NU__BIND_HIDDEN_FILE);
        if (rc != 0)
            return nu_err_set(err, NU_ENOMEM, "oci: out of memory");
    }
    return NU_OK;
}

static int nu__oci_mounts(json_t *mounts, const nu_sandbox_opts_t *opts,
                          const nu_sandbox_limits_t *limits,
                          const nu_oci_bundle_t *bundle, nu_err_t *err)
{
    int rc;

    rc = nu__oci_pod_fs(mounts, limits);
    if (rc == 0 && opts->rootfs == NULL)
        rc = nu__oci_ro_binds(mounts, opts->ro_binds != NULL ?
                              opts->ro_binds : nu_sandbox_default_binds);
    if (rc == -EINVAL)
        return nu_err_set(err, NU_EINVAL, "oci: cannot bind a relative "
                          "path: give absolute read-only binds");
    if (rc == 0 && (opts->flags & NU_SANDBOX_MOUNT_SYS))
        rc = nu__oci_bind(mounts, "/sys", "/sys", true, NU__BIND_READONLY);
    if (rc == 0)
        rc = nu__oci_bind(mounts, "/workspace", opts->workspace, true,
                          NU__BIND_WORKSPACE);
    if (rc == 0)
        rc = nu__oci_mount(mounts, NU_OCI_INIT_PATH, "bind",
                           bundle->init_source,
                           json_pack("[s,s,s]", "bind", "ro", "nosuid"));
    if (rc != 0)
        return nu_err_set(err, NU_ENOMEM, "oci: out of memory");

    rc = nu__oci_masks(mounts, opts->workspace, opts->block_paths, true,
                       err);
    if (rc == NU_OK)
        rc = nu__oci_masks(mounts, opts->workspace, opts->write_block_paths,
                           false, err);
    return rc;
}

/* --- process ---------------------------------------------------------- */

static int nu__oci_rlimit(json_t *rlimits, const char *type, uint64_t value)
{
    json_t *r = json_pack("{s:s,s:I,s:I}", "type", type, "hard",
                          (json_int_t)value, "soft", (json_int_t)value);

    return r != NULL && json_array_append_new(rlimits, r) == 0 ? 0 : -1;
}

/* Build the ns tier's rlimits (sandbox_limits.c).  RLIMIT_NPROC applies
 * only without a pids cgroup.  It counts every process of the uid on the
 * host, so it is the caller's process count plus the pod's pids limit. */
static json_t *nu__oci_rlimits(const nu_sandbox_limits_t *l, bool cgroups)
{
    json_t *rlimits = json_array();
    int rc = rlimits != NULL ? 0 : -1;

    if (rc == 0)
        rc = nu__oci_rlimit(rlimits, "RLIMIT_CORE", 0);
#if !defined(__SANITIZE_ADDRESS__)
    /* NOTE: sanitizer builds skip RLIMIT_DATA, as the ns tier does,
     * because AddressSanitizer reserves terabytes at start-up. */
    if (rc == 0)
        rc = nu__oci_rlimit(rlimits, "RLIMIT_DATA", l->memory_bytes);
#endif
    if (rc == 0)
        rc = nu__oci_rlimit(rlimits, "RLIMIT_FSIZE", l->file_size_bytes);
    if (rc == 0)
        rc = nu__oci_rlimit(rlimits, "RLIMIT_NOFILE", l->open_files);
    if (rc == 0 && l->cpu_seconds > 0)
        rc = nu__oci_rlimit(rlimits, "RLIMIT_CPU", l->cpu_seconds);
    if (rc == 0 && !cgroups)
        rc = nu__oci_rlimit(rlimits, "RLIMIT_NPROC",
                            nu__count_own_processes() + l->pids);
    if (rc != 0) {
        json_decref(rlimits);
        return NULL;
    }
    return rlimits;
}

/* The environment written into config.json: the default one only.  The
 * pod's own (credentials included) must not rest in the bundle on disk;
 * nu__oci_create sends it over the pod's stream (_set_env) instead.
 * env is checked here, so that a bad entry fails the bundle. */
static json_t *nu__oci_env(const char *const *env)
{
    json_t *array = json_array();

    for (size_t i = 0; env != NULL && env[i] != NULL; i++)
        if (env[i][0] == '=' || strchr(env[i], '=') == NULL) {
            json_decref(array);
            return NULL;
        }
    for (size_t i = 0; array != NULL && nu__oci_default_env[i] != NULL; i++)
        if (json_array_append_new(array,
                                  json_string(nu__oci_default_env[i])) != 0) {
            json_decref(array);
            return NULL;
        }
    return array;
}

static int nu__oci_process(const nu_sandbox_opts_t *opts,
                           const nu_sandbox_limits_t *limits, bool cgroups,
                           json_t **out, nu_err_t *err)
{
    json_t *env = nu__oci_env(opts->env);
    json_t *rlimits = nu__oci_rlimits(limits, cgroups);
    json_t *process;

    if (env == NULL) {
        json_decref(rlimits);
        return nu_err_set(err, NU_EINVAL, "oci: cannot pass the environment: "
                          "expected NAME=value entries");
    }
    process = json_pack("{s:b,s:{s:I,s:I},s:[s,s],s:o,s:s,s:b,"
                        "s:{s:[],s:[],s:[],s:[],s:[]},s:o}",
                        "terminal", 0,
                        "user", "uid", (json_int_t)getuid(),
                        "gid", (json_int_t)getgid(),
                        "args", NU_OCI_INIT_PATH, NU_PODINIT_ARGV1,
                        "env", env,
                        "cwd", "/",
                        "noNewPrivileges", 1,
                        "capabilities", "bounding", "effective",
                        "inheritable", "permitted", "ambient",
                        "rlimits", rlimits);
    *out = process;
    if (process == NULL)
        return nu_err_set(err, NU_ENOMEM, "oci: out of memory");
    return NU_OK;
}

/* --- linux ------------------------------------------------------------ */

static json_t *nu__oci_namespaces(bool userns)
{
    json_t *ns = json_pack("[{s:s},{s:s},{s:s},{s:s},{s:s},{s:s}]",
                           "type", "pid", "type", "network", "type", "ipc",
                           "type", "uts", "type", "mount", "type", "cgroup");

    if (ns != NULL && userns &&
        json_array_append_new(ns, json_pack("{s:s}", "type", "user")) != 0) {
        json_decref(ns);
        return NULL;
    }
    return ns;
}

static json_t *nu__oci_resources(const nu_sandbox_limits_t *l)
{
    json_t *res = json_pack("{s:{s:I},s:{s:I}}",
                            "memory", "limit", (json_int_t)l->memory_bytes,
                            "pids", "limit", (json_int_t)l->pids);

    if (res != NULL && l->cpu_millis > 0 &&
        json_object_set_new(res, "cpu", json_pack(
            "{s:I,s:I}", "quota", (json_int_t)l->cpu_millis * 100,
            "period", (json_int_t)100000)) != 0) {
        json_decref(res);
        return NULL;
    }
    return res;
}

/* The entries of nu__pod_proc_masks as absolute paths: the read-only
 * ones (readonlyPaths) or the others (maskedPaths).  The runtime covers a
 * masked path with a writable /dev/null, so an entry that is hidden and
 * read-only, such as /proc/sysrq-trigger, is only made read-only here:
 * a write then fails with EROFS, as in the ns tier. */
static json_t *nu__oci_proc_paths(bool readonly)
{
    json_t *array = json_array();
    char path[64];

    for (size_t i = 0; array != NULL && nu__pod_proc_masks[i].name != NULL;
         i++) {
        const nu__proc_mask_t *mask = &nu__pod_proc_masks[i];

        if (((mask->cover & NU__PROC_READONLY) != 0) != readonly)
            continue;
        snprintf(path, sizeof path, "/proc/%s", mask->name);
        if (json_array_append_new(array, json_string(path)) != 0) {
            json_decref(array);
            return NULL;
        }
    }
    return array;
}

static bool nu__oci_listed(const char *const *list, const char *name)
{
    for (size_t i = 0; list[i] != NULL; i++)
        if (strcmp(list[i], name) == 0)
            return true;
    return false;
}

/* Check that the runtime creates every /dev link of nu__pod_dev_links:
 * config.json cannot add a link. */
static int nu__oci_check_dev_links(nu_err_t *err)
{
    for (size_t i = 0; nu__pod_dev_links[i][0] != NULL; i++)
        if (!nu__oci_listed(nu__oci_runtime_links, nu__pod_dev_links[i][1]))
            return nu_err_set(err, NU_ENOTSUP, "oci: cannot create the "
                              "link /dev/%s: OCI runtimes create only "
                              "/dev/fd, stdin, stdout, stderr and ptmx",
                              nu__pod_dev_links[i][1]);
    return NU_OK;
}

/* Build linux.devices: the device nodes of nu__pod_dev_nodes that the
 * runtime does not create by default, with the host node's type and
 * numbers.  Nodes missing on the host are skipped, as in the ns tier.
 * Returns NULL when out of memory.
 * NOTE: every node of the table is a runtime default today, so no pod
 * has yet been run with an entry from here. */
static json_t *nu__oci_devices(void)
{
    json_t *devices = json_array();
    char path[64];
    struct stat st;

    for (size_t i = 0; devices != NULL && i < NU__DEV_NODES_MAX &&
         nu__pod_dev_nodes[i] != NULL; i++) {
        json_t *device;

        if (nu__oci_listed(nu__oci_runtime_devices, nu__pod_dev_nodes[i]))
            continue;
        snprintf(path, sizeof path, "/dev/%s", nu__pod_dev_nodes[i]);
        if (stat(path, &st) != 0 ||
            (!S_ISCHR(st.st_mode) && !S_ISBLK(st.st_mode)))
            continue;
        device = json_pack("{s:s,s:s,s:I,s:I,s:i}", "path", path, "type",
                           S_ISCHR(st.st_mode) ? "c" : "b", "major",
                           (json_int_t)major(st.st_rdev), "minor",
                           (json_int_t)minor(st.st_rdev), "fileMode",
                           (int)(st.st_mode & 07777));
        if (json_array_append_new(devices, device) != 0) {
            json_decref(devices);
            return NULL;
        }
    }
    return devices;
}

static json_t *nu__oci_linux(const nu_sandbox_opts_t *opts,
                             const nu_sandbox_limits_t *limits,
                             const nu_oci_bundle_t *bundle, bool userns,
                             nu_err_t *err)
{
    json_t *seccomp;
    json_t *linux_obj;
    json_t *devices;
    int rc;

    rc = nu__oci_check_dev_links(err);
    if (rc < 0)
        return NULL;
    rc = nu_oci_seccomp(&seccomp, err);
    if (rc < 0)
        return NULL;
    linux_obj = json_pack("{s:o,s:o,s:o,s:o}",
                          "namespaces", nu__oci_namespaces(userns),
                          "seccomp", seccomp,
                          "maskedPaths", nu__oci_proc_paths(false),
                          "readonlyPaths", nu__oci_proc_paths(true));
    devices = nu__oci_devices();
    if (devices == NULL)
        rc = -1;
    else if (linux_obj != NULL && json_array_size(devices) > 0)
        rc = json_object_set(linux_obj, "devices", devices);
    json_decref(devices);
    if (linux_obj != NULL && rc == 0 && userns) {
        json_t *uid = json_pack("[{s:I,s:I,s:i}]", "containerID",
                                (json_int_t)getuid(), "hostID",
                                (json_int_t)getuid(), "size", 1);
        json_t *gid = json_pack("[{s:I,s:I,s:i}]", "containerID",
                                (json_int_t)getgid(), "hostID",
                                (json_int_t)getgid(), "size", 1);

        rc = json_object_set_new(linux_obj, "uidMappings", uid) |
             json_object_set_new(linux_obj, "gidMappings", gid);
    }
    if (linux_obj != NULL && rc == 0 && bundle->cgroups_path != NULL &&
        !(opts->flags & NU_SANDBOX_NO_CGROUPS))
        rc = json_object_set_new(linux_obj, "cgroupsPath",
                                 json_string(bundle->cgroups_path)) |
             json_object_set_new(linux_obj, "resources",
                                 nu__oci_resources(limits));
    if (linux_obj == NULL || rc != 0) {
        json_decref(linux_obj);
        nu_err_set(err, NU_ENOMEM, "oci: out of memory");
        return NULL;
    }
    return linux_obj;
}

/* --- the config ------------------------------------------------------- */

static void nu__oci_limits(nu_sandbox_limits_t *l)
{
    if (l->memory_bytes == 0)
        l->memory_bytes = 2ULL << 30;
    if (l->pids == 0)
        l->pids = 1024;
    if (l->file_size_bytes == 0)
        l->file_size_bytes = 4ULL << 30;
    if (l->open_files == 0)
        l->open_files = 4096;
    if (l->tmp_bytes == 0)
        l->tmp_bytes = 256ULL << 20;
    if (l->run_bytes == 0)
        l->run_bytes = 16ULL << 20;
}

static int nu__oci_check(const nu_sandbox_opts_t *opts,
                         const nu_oci_bundle_t *bundle, nu_err_t *err)
{
    struct stat st;

    if (opts->workspace == NULL || opts->workspace[0] != '/')
        return nu_err_set(err, NU_EINVAL, "oci: cannot use workspace '%s': "
                          "give an absolute directory path",
                          opts->workspace != NULL ? opts->workspace : "");
    if (stat(opts->workspace, &st) != 0 || !S_ISDIR(st.st_mode))
        return nu_err_set(err, NU_EINVAL, "oci: cannot use workspace '%s': "
                          "not a directory", opts->workspace);
    if (opts->rootfs != NULL &&
        (opts->rootfs[0] != '/' || stat(opts->rootfs, &st) != 0 ||
         !S_ISDIR(st.st_mode)))
        return nu_err_set(err, NU_EINVAL, "oci: cannot use rootfs '%s': "
                          "give an absolute directory path", opts->rootfs);
    if (bundle->init_source == NULL || bundle->init_source[0] != '/')
        return nu_err_set(err, NU_EINVAL, "oci: cannot bind the pod init: "
                          "give an absolute path");
    if (geteuid() != 0 && (opts->flags & NU_SANDBOX_NO_USERNS))
        return nu_err_set(err, NU_EINVAL, "oci: cannot create a pod without "
                          "a user namespace as uid %u: only root may (drop "
                          "NU_SANDBOX_NO_USERNS)", (unsigned)geteuid());
    return NU_OK;
}

int nu_oci_config(const nu_sandbox_opts_t *opts,
                  const nu_oci_bundle_t *bundle, json_t **out,
                  nu_err_t *err)
{
    nu_sandbox_limits_t limits = opts->limits;
    bool userns = !(geteuid() == 0 && (opts->flags & NU_SANDBOX_NO_USERNS));
    bool cgroups = bundle->cgroups_path != NULL &&
                   !(opts->flags & NU_SANDBOX_NO_CGROUPS);
    json_t *config;
    json_t *part;
    int rc;

    *out = NULL;
    rc = nu__oci_check(opts, bundle, err);
    if (rc < 0)
        return rc;
    nu__oci_limits(&limits);

    config = json_pack("{s:s,s:{s:s,s:b},s:s,s:[]}", "ociVersion", "1.0.2",
                       "root", "path", opts->rootfs != NULL ? opts->rootfs :
                       "rootfs", "readonly", 1, "hostname",
                       opts->hostname != NULL ? opts->hostname : "nucleus",
                       "mounts");
    if (config == NULL)
        return nu_err_set(err, NU_ENOMEM, "oci: out of memory");

    rc = nu__oci_mounts(json_object_get(config, "mounts"), opts, &limits,
                        bundle, err);
    if (rc < 0)
        goto fail;

    rc = nu__oci_process(opts, &limits, cgroups, &part, err);
    if (rc < 0)
        goto fail;
    json_object_set_new(config, "process", part);

    part = nu__oci_linux(opts, &limits, bundle, userns, err);
    if (part == NULL || json_object_set_new(config, "linux", part) != 0) {
        rc = NU_ENOMEM;
        goto fail;
    }
    *out = config;
    return NU_OK;

fail:
    json_decref(config);
    return rc;
}
