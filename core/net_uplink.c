/*
 * net_uplink.c - is the host's uplink ready for a pod's direct egress?
 *
 * Direct egress to network.allow entries is routed: it leaves the pod's
 * veth, which nucleus sets to forward, and goes out through the interface
 * of the host's default route.  Linux forwards a packet only when the
 * outgoing interface has forwarding on too
 * (net.ipv4.conf.<uplink>.forwarding), and Debian ships with it off.  A
 * host like that drops the pod's direct connections without a word, while
 * everything through the proxy works, so pod creation and `nucleus
 * doctor` report it.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "nucleus/net.h"

/* Find the interface of the IPv4 default route in /proc/net/route
 * (columns Iface, Destination, Gateway, Flags, ..., Mask, hex). */
static int nu__default_route_if(char *ifname, size_t size, nu_err_t *err)
{
    FILE *fp = fopen("/proc/net/route", "re");
    char line[256];
    int rc = NU_ENOENT;

    if (fp == NULL)
        return nu_err_errno(err, errno, "net: cannot open /proc/net/route");
    while (fgets(line, sizeof line, fp) != NULL) {
        char name[32];
        unsigned long dst, gw, flags, mask;
        int refcnt, use, metric;

        if (sscanf(line, "%31s %lx %lx %lx %d %d %d %lx", name, &dst, &gw,
                   &flags, &refcnt, &use, &metric, &mask) != 8)
            continue;           /* the header line */
        if (dst == 0 && mask == 0 && (flags & 0x1) != 0) {   /* RTF_UP */
            snprintf(ifname, size, "%s", name);
            rc = NU_OK;
            break;
        }
    }
    fclose(fp);
    if (rc == NU_ENOENT)
        nu_err_set(err, NU_ENOENT, "net: the host has no IPv4 default route");
    return rc;
}

int nu_net_uplink_check(char *ifname, size_t size, nu_err_t *err)
{
    char path[128];
    char value[8] = "";
    FILE *fp;
    int rc;

    ifname[0] = '\0';
    rc = nu__default_route_if(ifname, size, err);
    if (rc != NU_OK)
        return rc;

    snprintf(path, sizeof path, "/proc/sys/net/ipv4/conf/%s/forwarding",
             ifname);
    fp = fopen(path, "re");
    if (fp == NULL)
        return nu_err_errno(err, errno, "net: cannot open %s", path);
    if (fgets(value, sizeof value, fp) == NULL)
        value[0] = '\0';
    fclose(fp);
    if (value[0] == '1')
        return NU_OK;
    return nu_err_set(err, NU_EPOLICY, "net: the uplink %s does not forward "
                      "IPv4, so pods cannot reach network.allow entries "
                      "behind it directly (turn it on with sysctl -w "
                      "net.ipv4.conf.%s.forwarding=1)", ifname, ifname);
}
