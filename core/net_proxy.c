/*
 * net_proxy.c - the pod's egress proxy (libuv).
 */
#include <stdlib.h>
#include <string.h>

#include "net_internal.h"

int nu__proxy_start(nu_net_t *net, nu_err_t *err)
{
    (void)net;
    (void)err;
    return NU_OK;
}

void nu__proxy_stop(nu__proxy_t *proxy)
{
    (void)proxy;
}

void nu__proxy_stats(const nu__proxy_t *proxy, nu_net_stats_t *out)
{
    (void)proxy;
    (void)out;
}

const char *nu__net_hosts_lookup(const char *const *hosts, const char *name)
{
    return NULL;
}

bool nu__net_addr_forbidden(const nu_net_t *net, uint32_t addr_be)
{
    return true;
}
