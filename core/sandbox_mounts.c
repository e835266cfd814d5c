/*
 * sandbox_mounts.c - the table of a pod's file systems, shared by the ns
 * and oci tiers (see sandbox_mounts.h).
 *
 * A change here reaches both tiers.  The oci tier cannot express every
 * entry in config.json: runtimes create /dev's device nodes and links
 * themselves, so sandbox_oci_config.c adds device nodes that the OCI
 * runtime specification does not list and rejects links it does not.
 */
#include <stdio.h>

#include "sandbox_mounts.h"

const nu__mount_t nu__pod_mounts[] = {
    /* hidepid=invisible (Linux 5.8) hides other users' processes; the ns
     * tier falls back to hidepid=2 on older kernels. */
    { "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC,
      "hidepid=invisible", NU__MOUNT_SIZE_NONE },
    { "/dev", "tmpfs", MS_RDONLY | MS_NOSUID | MS_NOEXEC,
      "size=64k,mode=0755", NU__MOUNT_SIZE_NONE },
    { "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
      "newinstance,ptmxmode=0666,mode=0620", NU__MOUNT_SIZE_NONE },
    /* POSIX shared memory (shm_open) needs a writable /dev/shm; it gets
     * the size of /tmp. */
    { "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777",
      NU__MOUNT_SIZE_TMP },
    { "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777",
      NU__MOUNT_SIZE_TMP },
    { "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755",
      NU__MOUNT_SIZE_RUN },
    { NULL, NULL, 0, NULL, NU__MOUNT_SIZE_NONE },
};

/* Mode 000: the pod's processes have no capabilities, so they cannot
 * even list the empty directory. */
const nu__mount_t nu__pod_hidden_dir = {
    NULL, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
    "size=4k,mode=000", NU__MOUNT_SIZE_NONE
};

const char *const nu__pod_dev_nodes[NU__DEV_NODES_MAX] = {
    "null", "zero", "full", "random", "urandom", "tty", NULL
};

const char *const nu__pod_dev_links[][2] = {
    { "pts/ptmx", "ptmx" }, { "/proc/self/fd", "fd" },
    { "/proc/self/fd/0", "stdin" }, { "/proc/self/fd/1", "stdout" },
    { "/proc/self/fd/2", "stderr" }, { NULL, NULL },
};

/* As container runtimes do: many /proc/sys entries check writes by file
 * mode only, the pod's uid may be the host's root, and the hidden
 * entries reveal kernel addresses, timers and keys. */
const nu__proc_mask_t nu__pod_proc_masks[] = {
    { "sys", NU__PROC_READONLY },
    { "irq", NU__PROC_READONLY },
    { "bus", NU__PROC_READONLY },
    { "fs", NU__PROC_READONLY },
    { "sysrq-trigger", NU__PROC_HIDDEN | NU__PROC_READONLY },
    { "kcore", NU__PROC_HIDDEN },
    { "kallsyms", NU__PROC_HIDDEN },
    { "timer_list", NU__PROC_HIDDEN },
    { "keys", NU__PROC_HIDDEN },
    { "latency_stats", NU__PROC_HIDDEN },
    { "sched_debug", NU__PROC_HIDDEN },
    { NULL, 0 },
};

int nu__mount_data(const nu__mount_t *m, const nu_sandbox_limits_t *limits,
                   char *out, size_t size)
{
    unsigned long long bytes = 0;
    int n;

    if (m->size == NU__MOUNT_SIZE_TMP)
        bytes = (unsigned long long)limits->tmp_bytes;
    else if (m->size == NU__MOUNT_SIZE_RUN)
        bytes = (unsigned long long)limits->run_bytes;

    if (m->size == NU__MOUNT_SIZE_NONE)
        n = snprintf(out, size, "%s", m->data != NULL ? m->data : "");
    else
        n = snprintf(out, size, "%s%ssize=%llu",
                     m->data != NULL ? m->data : "",
                     m->data != NULL && m->data[0] != '\0' ? "," : "",
                     bytes);
    return n >= 0 && (size_t)n < size ? 0 : -1;
}
