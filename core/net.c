/*
 * net.c - the pod network handle: prepare, attach, drift watcher, close.
 *
 * net.h describes the layout and the life cycle.  The pieces live in
 * net_link.c (libnl-3: veth, addresses, routes), net_filter.c (iptables
 * rules, read-back, sweep), net_proxy.c (egress proxy on libuv) and
 * net_fetch.c (web_fetch on libcurl).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "net_internal.h"
#include "nucleus/log.h"

void nu_net_opts_init(nu_net_opts_t *opts)
{
    memset(opts, 0, sizeof *opts);
}

static char **nu__strv_copy(const char *const *list)
{
    size_t n = 0;
    char **copy;

    if (list == NULL)
        return NULL;
    while (list[n] != NULL)
        n++;
    copy = calloc(n + 1, sizeof *copy);
    if (copy == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        copy[i] = strdup(list[i]);
        if (copy[i] == NULL) {
            for (size_t j = 0; j < i; j++)
                free(copy[j]);
            free(copy);
            return NULL;
        }
    }
    return copy;
}

static void nu__strv_free(char **list)
{
    if (list == NULL)
        return;
    for (size_t i = 0; list[i] != NULL; i++)
        free(list[i]);
    free(list);
}

static int nu__net_build_env(nu_net_t *net)
{
    char proxy[64];
    char no_proxy[] = "localhost,127.0.0.1,::1";
    const char *names[] = { "HTTP_PROXY", "HTTPS_PROXY", "http_proxy",
                            "https_proxy", "NO_PROXY", "no_proxy" };

    snprintf(proxy, sizeof proxy, "http://%s:%d", net->host_addr,
             NU_NET_PROXY_PORT);
    for (size_t i = 0; i < 6; i++) {
        const char *value = i < 4 ? proxy : no_proxy;
        if (asprintf(&net->env[i], "%s=%s", names[i], value) < 0) {
            net->env[i] = NULL;
            return NU_ENOMEM;
        }
    }
    net->env[6] = NULL;
    return NU_OK;
}

static int nu__net_copy_opts(nu_net_t *net, const nu_net_opts_t *opts)
{
    net->check_interval_ms = opts->check_interval_ms != 0
                                 ? opts->check_interval_ms : 1000;
    if (opts->hosts != NULL) {
        net->hosts = nu__strv_copy(opts->hosts);
        if (net->hosts == NULL)
            return NU_ENOMEM;
    }
    if (opts->ca_file != NULL) {
        net->ca_file = strdup(opts->ca_file);
        if (net->ca_file == NULL)
            return NU_ENOMEM;
    }
    return NU_OK;
}

static nu_net_t *nu__net_alloc(void)
{
    nu_net_t *net = calloc(1, sizeof *net);

    if (net == NULL)
        return NULL;
    net->pidfd = -1;
    net->pod_netns_fd = -1;
    net->lock_fd = -1;
    net->index_fd = -1;
    pthread_mutex_init(&net->lock, NULL);
    pthread_rwlock_init(&net->perm_lock, NULL);
    nu__denials_init(&net->denials);
    /* The watcher computes its deadlines on CLOCK_MONOTONIC.  On the
     * default CLOCK_REALTIME, the wait would take them as long past and
     * the watcher would re-read the rules without pause. */
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&net->cond, &attr);
    pthread_condattr_destroy(&attr);
    atomic_init(&net->drifted, false);
    atomic_init(&net->check_failed, false);
    atomic_init(&net->drift_checks, 0);
    nu_perm_init_bottom(&net->perm);
    return net;
}

/* Objects of dead owners are swept on the first prepare of a process;
 * nu_net_sweep removes later ones on request. */
static pthread_once_t nu__sweep_once = PTHREAD_ONCE_INIT;

static void nu__sweep_first(void)
{
    (void)nu_net_sweep(NULL);
}

/* Direct egress to network.allow entries leaves through the uplink,
 * which drops it silently unless it forwards, so pod creation warns. */
static void nu__net_warn_forwarding(const nu_perm_t *perm)
{
    char ifname[32];
    nu_err_t err = { 0 };

    if (perm->network.allow.top || perm->network.allow.count == 0)
        return;
    if (nu_net_uplink_check(ifname, sizeof ifname, &err) != NU_EPOLICY)
        return;
    nu_log(NU_LOG_WARN, "net", "%s; until then the pod reaches those "
           "entries only through the proxy (HTTP and HTTPS)",
           strncmp(err.msg, "net: ", 5) == 0 ? err.msg + 5 : err.msg);
}

int nu_net_prepare(const nu_perm_t *perm, const nu_net_opts_t *opts,
                   nu_net_t **out, nu_err_t *err)
{
    nu_net_opts_t defaults;
    nu_net_t *net = NULL;
    const char *range;
    int rc;

    *out = NULL;
    if (opts == NULL) {
        nu_net_opts_init(&defaults);
        opts = &defaults;
    }
    if (!nu_perm_has_egress(perm))
        return nu_err_set(err, NU_EINVAL,
                          "net: cannot prepare egress: the policy's network "
                          "component allows no destination");

    net = nu__net_alloc();
    if (net == NULL)
        return nu_err_set(err, NU_ENOMEM, "net: out of memory");

    range = opts->range;
    if (range == NULL) {
        range = getenv("NUCLEUS_NET_RANGE");
        if (range == NULL || range[0] == '\0')
            range = NU_NET_DEFAULT_RANGE;
    }
    rc = nu__net_range_parse(range, &net->range_base, &net->range_prefix, err);
    if (rc != NU_OK)
        goto fail;
    snprintf(net->range, sizeof net->range, "%s", range);

    if (geteuid() != 0) {
        rc = nu_err_set(err, NU_EPERM,
                        "net: cannot prepare egress: needs CAP_NET_ADMIN on "
                        "the host (run as root, or drop the network policy "
                        "for a loopback-only pod)");
        goto fail;
    }

    rc = nu_perm_copy(&net->perm, perm);
    if (rc == NU_OK)
        rc = nu__net_copy_opts(net, opts);
    if (rc != NU_OK) {
        nu_err_set(err, rc, "net: out of memory");
        goto fail;
    }

    pthread_once(&nu__sweep_once, nu__sweep_first);

    rc = nu__net_range_check(net->range_base, net->range_prefix, err);
    if (rc != NU_OK)
        goto fail;

    nu__net_owner_tag(getpid(), net->owner_tag, sizeof net->owner_tag);
    rc = nu__net_link_create(net, err);
    if (rc != NU_OK)
        goto fail;

    rc = nu__net_build_env(net);
    if (rc != NU_OK) {
        nu_err_set(err, rc, "net: out of memory");
        goto fail;
    }

    nu__net_warn_forwarding(perm);

    /* The host rules go in while the caller creates the sandbox;
     * nu_net_attach waits for them and reports their failure. */
    rc = nu__net_filter_host_start(net, err);
    if (rc != NU_OK)
        goto fail;

    *out = net;
    return NU_OK;

fail:
    nu_net_close(net);
    return rc;
}

const char *const *nu_net_env(const nu_net_t *net)
{
    return (const char *const *)net->env;
}

/* Watcher: re-read the filters every check_interval_ms.  On drift, kill
 * the pod through its pidfd and stop watching. */
static void *nu__net_watch(void *arg)
{
    nu_net_t *net = arg;
    struct timespec deadline;
    nu_err_t err = { 0 };
    int failures = 0;

    pthread_mutex_lock(&net->lock);
    while (!net->stopping) {
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += net->check_interval_ms / 1000;
        deadline.tv_nsec += (long)(net->check_interval_ms % 1000) * 1000000L;
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
        while (!net->stopping &&
               pthread_cond_timedwait(&net->cond, &net->lock, &deadline) == 0)
            ;
        if (net->stopping)
            break;
        pthread_mutex_unlock(&net->lock);

        int rc = nu__net_filter_check(net, &err);
        atomic_fetch_add(&net->drift_checks, 1);

        pthread_mutex_lock(&net->lock);
        if (rc == NU_OK || net->stopping) {
            failures = 0;
            continue;
        }

        /* A read-back that could not run is not drift: retry, and fail
         * closed only when several in a row fail. */
        if (rc != NU_EPOLICY && ++failures < NU_NET_CHECK_FAILURES_MAX) {
            nu_log(NU_LOG_WARN, "net", "cannot check the filters of %s "
                   "(attempt %d of %d, retrying): %s", net->host_if,
                   failures, NU_NET_CHECK_FAILURES_MAX, err.msg);
            continue;
        }
        if (rc == NU_EPOLICY) {
            nu_log(NU_LOG_ERROR, "net",
                   "filter drift on %s, killing pod pid %d: %s",
                   net->host_if, (int)net->pod_pid, err.msg);
        } else {
            nu_log(NU_LOG_ERROR, "net", "cannot check the filters of %s "
                   "%d times in a row, killing pod pid %d (fail closed): %s",
                   net->host_if, failures, (int)net->pod_pid, err.msg);
            atomic_store(&net->check_failed, true);
        }
        atomic_store(&net->drifted, true);
        if (syscall(SYS_pidfd_send_signal, net->pidfd, SIGKILL, NULL, 0) != 0)
            nu_log(NU_LOG_ERROR, "net", "cannot kill pod pid %d: %s",
                   (int)net->pod_pid, strerror(errno));
        break;
    }
    pthread_mutex_unlock(&net->lock);
    return NULL;
}

static int nu__net_open_pod(nu_net_t *net, pid_t pod_pid, nu_err_t *err)
{
    struct stat pod_ns, self_ns;
    char path[64];

    net->pidfd = (int)syscall(SYS_pidfd_open, pod_pid, 0);
    if (net->pidfd < 0)
        return nu_err_errno(err, errno, "net: cannot open pod pid %d",
                            (int)pod_pid);

    snprintf(path, sizeof path, "/proc/%d/ns/net", (int)pod_pid);
    net->pod_netns_fd = open(path, O_RDONLY | O_CLOEXEC);
    if (net->pod_netns_fd < 0)
        return nu_err_errno(err, errno, "net: cannot open %s", path);

    /* Fail closed on a pid that shares the host's network namespace (a
     * runtime's pid instead of the pod's): the routes, sysctls and
     * filters below would change the host itself. */
    if (fstat(net->pod_netns_fd, &pod_ns) != 0 ||
        stat("/proc/self/ns/net", &self_ns) != 0)
        return nu_err_errno(err, errno, "net: cannot compare network "
                            "namespaces");
    if (pod_ns.st_dev == self_ns.st_dev && pod_ns.st_ino == self_ns.st_ino)
        return nu_err_set(err, NU_EINVAL, "net: cannot attach pid %d: it "
                          "shares the host's network namespace (this "
                          "isolation tier cannot take egress)", (int)pod_pid);

    /* The pid may have been reused before pidfd_open.  A pidfd that is
     * still live after the namespace open proves that both name the same
     * process. */
    if (syscall(SYS_pidfd_send_signal, net->pidfd, 0, NULL, 0) != 0)
        return nu_err_errno(err, errno, "net: pod pid %d exited",
                            (int)pod_pid);
    return NU_OK;
}

int nu_net_attach(nu_net_t *net, pid_t pod_pid, nu_err_t *err)
{
    int rc;

    if (net->attached)
        return nu_err_set(err, NU_EINVAL, "net: cannot attach %s: already "
                          "attached to pid %d", net->host_if,
                          (int)net->pod_pid);
    net->pod_pid = pod_pid;
    net->attached = true;

    rc = nu__net_open_pod(net, pod_pid, err);
    if (rc != NU_OK) {
        rc = NU_ESANDBOX;
        goto fail;
    }

    /* The pod's filter goes in while the veth is set up: neither needs
     * the other, and the pod runs nothing until attach returns. */
    rc = nu__net_filter_pod_start(net, err);
    if (rc != NU_OK)
        goto fail;

    rc = nu__net_link_attach(net, err);
    if (rc != NU_OK)
        goto fail;

    rc = nu__net_filter_install_wait(net, err);
    if (rc != NU_OK)
        goto fail;

    rc = nu__proxy_start(net, err);
    if (rc != NU_OK)
        goto fail;

    if (pthread_create(&net->watcher, NULL, nu__net_watch, net) != 0) {
        rc = nu_err_set(err, NU_ENOMEM, "net: cannot start the drift watcher");
        goto fail;
    }
    net->watcher_running = true;
    return NU_OK;

fail:
    nu__net_filter_remove(net);
    return rc;
}

int nu_net_check(nu_net_t *net, nu_err_t *err)
{
    if (!net->attached)
        return nu_err_set(err, NU_EINVAL, "net: cannot check %s: not attached",
                          net->host_if);
    return nu__net_filter_check(net, err);
}

bool nu_net_drifted(const nu_net_t *net)
{
    return atomic_load(&net->drifted);
}

bool nu_net_check_failed(const nu_net_t *net)
{
    return atomic_load(&net->check_failed);
}

json_t *nu_net_denied(const nu_net_t *net)
{
    if (net->proxy == NULL)
        return json_array();
    return nu__proxy_denied(net->proxy);
}

const char *nu_net_host_addr(const nu_net_t *net) { return net->host_addr; }
const char *nu_net_pod_addr(const nu_net_t *net) { return net->pod_addr; }
const char *nu_net_host_ifname(const nu_net_t *net) { return net->host_if; }
int nu_net_proxy_port(const nu_net_t *net) { return NU_NET_PROXY_PORT; }

void nu_net_stats(const nu_net_t *net, nu_net_stats_t *out)
{
    memset(out, 0, sizeof *out);
    if (net->proxy != NULL)
        nu__proxy_stats(net->proxy, out);
    out->drift_checks = atomic_load(&net->drift_checks);
    /* The queue's mutex is the only state changed here. */
    out->denials_dropped = nu__denials_dropped((nu__denials_t *)&net->denials);
}

void nu_net_close(nu_net_t *net)
{
    if (net == NULL)
        return;

    if (net->watcher_running) {
        pthread_mutex_lock(&net->lock);
        net->stopping = true;
        pthread_cond_broadcast(&net->cond);
        pthread_mutex_unlock(&net->lock);
        pthread_join(net->watcher, NULL);
    }
    if (net->proxy != NULL)
        nu__proxy_stop(net->proxy);

    nu__net_filter_remove(net);
    if (net->link_created)
        nu__net_link_delete(net->host_if);
    if (net->lock_fd >= 0)
        close(net->lock_fd);
    if (net->index_fd >= 0)
        close(net->index_fd);

    if (net->pidfd >= 0)
        close(net->pidfd);
    if (net->pod_netns_fd >= 0)
        close(net->pod_netns_fd);
    for (size_t i = 0; i < 6; i++)
        free(net->env[i]);
    nu__strv_free(net->hosts);
    free(net->ca_file);
    free(net->pod_rules);
    free(net->host_filter);
    free(net->host_nat);
    free(net->host_rules_all);
    nu_perm_free(&net->perm);
    pthread_mutex_destroy(&net->lock);
    pthread_rwlock_destroy(&net->perm_lock);
    pthread_cond_destroy(&net->cond);
    nu__denials_destroy(&net->denials);
    free(net);
}

int nu_net_sweep(nu_err_t *err)
{
    int links;
    int rules;

    if (geteuid() != 0)
        return 0;
    links = nu__net_link_sweep(err);
    rules = nu__net_filter_sweep(err);
    if (links < 0)
        return links;
    if (rules < 0)
        return rules;
    return links + rules;
}
