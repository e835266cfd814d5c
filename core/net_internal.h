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

struct nu_net {
    nu_perm_t perm;             /* copy of the pod's policy */
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
    bool link_created;
    bool attached;
    bool host_rules;            /* host filter installed */
    char *pod_rules;            /* expected iptables-save text, pod */
    char *pod_rules6;
    char *host_filter;          /* expected host rules, filter table */
    char *host_nat;
    char *host_rules_all;       /* host_filter then host_nat */

    pthread_t watcher;
    bool watcher_running;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stopping;
    atomic_bool drifted;
    atomic_uint_least64_t drift_checks;

    nu__proxy_t *proxy;
};

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

/* net_filter.c */
int nu__net_filter_install(nu_net_t *net, nu_err_t *err);
int nu__net_filter_check(nu_net_t *net, nu_err_t *err);
void nu__net_filter_remove(nu_net_t *net);
int nu__net_filter_sweep(nu_err_t *err);
/* Run argv (argv[0] an absolute path) in the network namespace netns_fd
 * (-1: the caller's), feeding input (may be NULL) to stdin; *output (OUT,
 * may be NULL) receives stdout.  Returns NU_OK or NU_EIO with stderr's
 * first line in err. */
int nu__net_exec(int netns_fd, const char *const argv[], const char *input,
                 char **output, nu_err_t *err);

/* net_proxy.c */
int nu__proxy_start(nu_net_t *net, nu_err_t *err);
void nu__proxy_stop(nu__proxy_t *proxy);
void nu__proxy_stats(const nu__proxy_t *proxy, nu_net_stats_t *out);

/* net_proxy.c, shared with net_fetch.c: look name up in the static hosts
 * list (NULL-terminated "name=addr").  Returns a pointer to the address
 * inside the list's entry, or NULL. */
const char *nu__net_hosts_lookup(const char *const *hosts, const char *name);

/* Is addr:port (address in network byte order) one the proxy must never
 * connect to on a name's behalf (loopback, link-local, unspecified,
 * multicast, the pod range, any address of the host), unless the allow
 * entries of net's policy name it?  net may be NULL (no policy, no
 * range). */
bool nu__net_addr_forbidden(const nu_net_t *net, uint32_t addr_be, int port);

#endif
