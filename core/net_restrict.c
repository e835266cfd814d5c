/*
 * net_restrict.c - narrowing a running pod's network after attenuation.
 *
 * The proxy and nu_net_fetch_pod read net->perm under net->perm_lock, so
 * replacing that copy is enough for everything that goes through the
 * proxy.  Direct egress is enforced by the iptables rules, which the drift
 * watcher compares with the texts built at prepare time.  Rewriting both
 * while the watcher runs is not done here.  When the CIDR allow set
 * changes, the pod's default route is deleted instead: the pod then
 * reaches only its on-link /30, that is the proxy, and every direct
 * connection to a network.allow entry fails with "Network is unreachable".
 * The filters stay as they were, so the watcher finds no drift.  A pod
 * needs CAP_NET_ADMIN in its network namespace to add the route back, and
 * pods run without capabilities.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>

#include <netlink/netlink.h>
#include <netlink/route/route.h>

#include "net_internal.h"
#include "nucleus/log.h"

typedef struct {
    nu_net_t *net;
    int rc;
    nu_err_t err;
} nu__cut_job_t;

/* Delete every IPv4 route with prefix length 0 (the default route) in the
 * calling thread's network namespace. */
static int nu__default_routes_delete(nu_err_t *err)
{
    struct nl_sock *sock = nl_socket_alloc();
    struct nl_cache *routes = NULL;
    int rc;

    if (sock == NULL)
        return nu_err_set(err, NU_ENOMEM, "net: out of memory");
    rc = nl_connect(sock, NETLINK_ROUTE);
    if (rc == 0)
        rc = rtnl_route_alloc_cache(sock, AF_INET, 0, &routes);
    if (rc < 0) {
        rc = nu_err_set(err, NU_EIO, "net: cannot read the pod's routes: %s",
                        nl_geterror(rc));
        goto out;
    }

    for (struct nl_object *obj = nl_cache_get_first(routes); obj != NULL;
         obj = nl_cache_get_next(obj)) {
        struct rtnl_route *route = (struct rtnl_route *)obj;
        struct nl_addr *dst = rtnl_route_get_dst(route);
        int drc;

        if (dst == NULL || nl_addr_get_prefixlen(dst) != 0 ||
            rtnl_route_get_table(route) != RT_TABLE_MAIN)
            continue;
        drc = rtnl_route_delete(sock, route, 0);
        if (drc < 0 && drc != -NLE_OBJ_NOTFOUND) {
            rc = nu_err_set(err, NU_EIO, "net: cannot delete the pod's "
                            "default route: %s", nl_geterror(drc));
            goto out;
        }
    }
    rc = NU_OK;

out:
    if (routes != NULL)
        nl_cache_free(routes);
    nl_socket_free(sock);
    return rc;
}

/* Runs on its own thread, which joins the pod's network namespace. */
static void *nu__cut_main(void *arg)
{
    nu__cut_job_t *job = arg;

    if (setns(job->net->pod_netns_fd, CLONE_NEWNET) != 0) {
        job->rc = nu_err_errno(&job->err, errno, "net: cannot enter the "
                               "pod's network namespace");
        return NULL;
    }
    job->rc = nu__default_routes_delete(&job->err);
    return NULL;
}

static int nu__cut_direct(nu_net_t *net, nu_err_t *err)
{
    nu__cut_job_t job = { .net = net, .rc = NU_EINTERNAL };
    pthread_t thread;

    if (pthread_create(&thread, NULL, nu__cut_main, &job) != 0)
        return nu_err_set(err, NU_ENOMEM, "net: cannot start a thread");
    pthread_join(thread, NULL);
    if (job.rc != NU_OK && err != NULL)
        *err = job.err;
    return job.rc;
}

int nu_net_restrict(nu_net_t *net, const nu_perm_t *perm, nu_err_t *err)
{
    nu_perm_t next, old;
    bool cut;
    int rc;

    if (!net->attached || net->pod_netns_fd < 0)
        return nu_err_set(err, NU_EINVAL, "net: cannot restrict %s: not "
                          "attached", net->host_if);
    rc = nu_perm_copy(&next, perm);
    if (rc != NU_OK)
        return nu_err_set(err, rc, "net: out of memory");

    pthread_rwlock_wrlock(&net->perm_lock);
    if (!nu_strset_subset(&next.network.allow, &net->perm.network.allow) ||
        !nu_strset_subset(&next.network.domains, &net->perm.network.domains)) {
        pthread_rwlock_unlock(&net->perm_lock);
        nu_perm_free(&next);
        return nu_err_set(err, NU_EINVAL, "net: cannot restrict %s: the new "
                          "network policy is not below the current one",
                          net->host_if);
    }
    cut = !nu_perm_has_egress(&next) ||
          !nu_strset_equal(&next.network.allow, &net->perm.network.allow);
    old = net->perm;
    net->perm = next;
    pthread_rwlock_unlock(&net->perm_lock);
    nu_perm_free(&old);

    /* Connections the proxy opened before are checked again. */
    nu__proxy_recheck(net->proxy);
    if (!cut || net->restricted)
        return NU_OK;

    rc = nu__cut_direct(net, err);
    if (rc != NU_OK)
        return rc;
    net->restricted = true;
    nu_log(NU_LOG_INFO, "net", "network of %s narrowed: direct egress cut "
           "(default route deleted), the proxy uses the new policy",
           net->host_if);
    return NU_OK;
}
