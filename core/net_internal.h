/*
 * net_internal.h - shared between core/net*.c; not installed.
 */
#ifndef NUCLEUS_NET_INTERNAL_H
#define NUCLEUS_NET_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "nucleus/net.h"

typedef struct nu__proxy nu__proxy_t;
typedef struct nu__job nu__job_t;

/* Bounded FIFO of proxy refusals (net_denials.c).  The proxy's loop thread
 * pushes and the pod drains.  The mutex is held only to copy entries, so
 * the proxy never waits on the audit log's SQLite writes. */
typedef struct nu__denials {
    pthread_mutex_t lock;
    nu_net_denial_t items[NU_NET_DENIALS_MAX];
    size_t head;                /* index of the oldest entry */
    size_t count;
    uint64_t dropped;           /* since the last queued entry */
    uint64_t dropped_total;
} nu__denials_t;

struct nu_net {
    nu_perm_t perm;             /* copy of the pod's policy */
    /* Guards perm: nu_net_restrict replaces it while the proxy thread and
     * web_fetch callers read it. */
    pthread_rwlock_t perm_lock;
    /* "nucleus:<hex>", the proxy credential of this process's own
     * web_fetch; connections from any peer but the pod must present it. */
    char proxy_credential[48];
    uint32_t range_base;        /* host byte order */
    int range_prefix;
    uint32_t index;             /* /30 number inside the range */
    char range[32];             /* "10.213.0.0/16" */
    char host_if[16];           /* nuh<N> */
    char pod_if[16];            /* nup<N> */
    char host_addr[16];
    char pod_addr[16];
    char owner_tag[64];         /* nucleus-<pid>-<start time> */
    char *env[7];
    char **hosts;               /* copy of opts->hosts */
    char *ca_file;
    uint32_t check_interval_ms;

    pid_t pod_pid;
    int pidfd;
    int pod_netns_fd;
    int lock_fd;                /* flock reserving index */
    int index_fd;               /* abstract socket reserving index */
    bool link_created;
    bool attached;
    bool host_rules;            /* host filter installed */
    char *pod_rules;            /* expected iptables-save text, pod */
    char *host_filter;          /* expected host rules, filter table */
    char *host_nat;
    char *host_rules_all;       /* host_filter then host_nat */
    nu__job_t *host_job;        /* host install, from prepare to attach */
    nu__job_t *pod_job;         /* pod install, during attach */

    pthread_t watcher;
    bool watcher_running;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stopping;
    atomic_bool drifted;
    atomic_bool check_failed;   /* the kill was for failed read-backs */
    bool restricted;            /* direct egress cut by nu_net_restrict */
    atomic_uint_least64_t drift_checks;

    nu__proxy_t *proxy;
    nu__denials_t denials;
};

/* net_denials.c */
void nu__denials_init(nu__denials_t *q);
void nu__denials_destroy(nu__denials_t *q);
/* Queue one refusal stamped with the current time, or count it as
 * dropped when the queue is full.  host may be "" (unknown). */
void nu__denials_push(nu__denials_t *q, const char *host, int port,
                      int status, const char *reason, const char *detail);
size_t nu__denials_take(nu__denials_t *q, nu_net_denial_t *out, size_t max);
uint64_t nu__denials_dropped(nu__denials_t *q);

/* net_link.c */
int nu__net_range_parse(const char *range, uint32_t *base, int *prefix,
                        nu_err_t *err);
int nu__net_range_check(uint32_t base, int prefix, nu_err_t *err);
/* Reserve a /30 (net->index, names, addresses); the veth itself is
 * created by nu__net_link_attach. */
int nu__net_link_create(nu_net_t *net, nu_err_t *err);
int nu__net_link_attach(nu_net_t *net, nu_err_t *err);
void nu__net_link_delete(const char *ifname);
int nu__net_link_sweep(nu_err_t *err);
bool nu__net_link_exists(const char *ifname);
/* Owner tag of this process ("nucleus-<pid>-<start time>"), and whether
 * the owner named by a tag is still alive. */
void nu__net_owner_tag(pid_t pid, char *out, size_t size);
bool nu__net_owner_alive(const char *tag);
/* Read back disable_ipv6 of "all", "default", "lo" and the pod's veth in
 * the calling thread's network namespace.  Returns NU_OK when every one
 * is 1, NU_EPOLICY naming the first that is not, or NU_EIO. */
int nu__net_ipv6_check(const nu_net_t *net, nu_err_t *err);

/* net_filter.c */
/* Build the expected rule texts and start installing the host's chains
 * and jumps on a thread, with their read-back.  The host rules name the
 * veth before it exists, so this runs at prepare time, while the caller
 * creates the sandbox. */
int nu__net_filter_host_start(nu_net_t *net, nu_err_t *err);
/* Start installing the pod's filter table in its namespace, with its
 * read-back, on a thread (needs net->pod_netns_fd). */
int nu__net_filter_pod_start(nu_net_t *net, nu_err_t *err);
/* Wait for both installs; returns the pod's failure first, then the
 * host's (NU_EPOLICY for a read-back mismatch, NU_EIO for a failed tool). */
int nu__net_filter_install_wait(nu_net_t *net, nu_err_t *err);
int nu__net_filter_check(nu_net_t *net, nu_err_t *err);
/* Wait for running installs, then delete this pod's host rules. */
void nu__net_filter_remove(nu_net_t *net);
int nu__net_filter_sweep(nu_err_t *err);
/* Run argv (argv[0] an absolute path) in the calling thread's network
 * namespace, feeding input (may be NULL) to stdin; *output (OUT, may be
 * NULL) receives stdout.  Returns NU_OK or NU_EIO with stderr's first
 * line in err. */
int nu__net_exec(const char *const argv[], const char *input, char **output,
                 nu_err_t *err);

/* net_proxy.c */
int nu__proxy_start(nu_net_t *net, nu_err_t *err);
void nu__proxy_stop(nu__proxy_t *proxy);

/* Close, on the proxy's thread, the connections whose destination the
 * (narrowed) policy no longer allows.  Does not wait. */
void nu__proxy_recheck(nu__proxy_t *proxy);
void nu__proxy_stats(const nu__proxy_t *proxy, nu_net_stats_t *out);
json_t *nu__proxy_denied(const nu__proxy_t *proxy);

/* net_proxy.c, shared with net_fetch.c: look name up in the static hosts
 * list (NULL-terminated "name=addr").  Returns a pointer to the address
 * inside the list's entry, or NULL. */
const char *nu__net_hosts_lookup(const char *const *hosts, const char *name);

/* Is addr:port (address in network byte order) one the proxy must never
 * connect to on a name's behalf (loopback, private, shared, link-local,
 * unspecified, multicast and reserved, the pod range, any address of the
 * host), unless the allow entries of net's policy name it?  net may be NULL (no policy, no
 * range). */
bool nu__net_addr_forbidden(const nu_net_t *net, uint32_t addr_be, int port);

#endif
