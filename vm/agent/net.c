/*
 * net.c - configure the guest's network interface for a vm pod with
 * egress (see net.h and the "Guest network" section of docs/vm.md).
 *
 * Everything uses the classic ioctls (SIOCSIFADDR, SIOCSIFNETMASK,
 * SIOCSIFFLAGS, SIOCADDRT) on an AF_INET datagram socket, so the agent
 * needs neither netlink code nor BusyBox's ip.  The guest kernel names
 * the first virtio-net device eth0, but the interface is found by type
 * (ARPHRD_ETHER in /sys/class/net/NAME/type) so no name is assumed.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <net/route.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net.h"

#define NU__NET_PARAM "nucleus.net="

/* The guest's interface configuration, parsed from the command line. */
typedef struct nu__agent_net_config {
    char address[16];    /* dotted IPv4 */
    int prefix;          /* 1 to 30 */
    char gateway[16];    /* dotted IPv4, inside address/prefix */
} nu__agent_net_config_t;

static void nu__net_say(const char *message, const char *detail)
{
    fprintf(stderr, "nucleus-agent: %s%s%s\n", message,
            detail != NULL ? ": " : "", detail != NULL ? detail : "");
}

/* Copy the dotted IPv4 address in [start, end) to out and check it. */
static int nu__net_parse_addr(const char *start, const char *end, char *out,
                              size_t size, struct in_addr *addr)
{
    size_t len = (size_t)(end - start);

    if (len == 0 || len >= size)
        return -1;
    memcpy(out, start, len);
    out[len] = '\0';
    return inet_pton(AF_INET, out, addr) == 1 ? 0 : -1;
}

/* Parse the nucleus.net parameter out of cmdline (the text of
 * /proc/cmdline).  Returns 1 and fills *out when the parameter is there
 * and valid, 0 when it is absent, and -1 when it is malformed, with a
 * message in detail. */
static int nu__net_parse(const char *cmdline, nu__agent_net_config_t *out,
                         char *detail, size_t size)
{
    const char *value = NULL;
    const char *slash, *comma, *end;
    struct in_addr address, gateway;
    uint32_t mask;
    char prefix[4];
    char *prefix_end;
    long bits;

    /* The parameter must start a word: "xnucleus.net=" is another one. */
    for (const char *p = strstr(cmdline, NU__NET_PARAM); p != NULL;
         p = strstr(p + 1, NU__NET_PARAM)) {
        if (p == cmdline || p[-1] == ' ') {
            value = p + strlen(NU__NET_PARAM);
            break;
        }
    }
    if (value == NULL)
        return 0;

    end = value + strcspn(value, " \n");
    slash = memchr(value, '/', (size_t)(end - value));
    comma = memchr(value, ',', (size_t)(end - value));
    if (slash == NULL || comma == NULL || comma < slash ||
        nu__net_parse_addr(value, slash, out->address, sizeof out->address,
                           &address) != 0 ||
        nu__net_parse_addr(comma + 1, end, out->gateway, sizeof out->gateway,
                           &gateway) != 0 ||
        (size_t)(comma - slash - 1) >= sizeof prefix ||
        comma - slash - 1 == 0)
        goto invalid;

    memcpy(prefix, slash + 1, (size_t)(comma - slash - 1));
    prefix[comma - slash - 1] = '\0';
    bits = strtol(prefix, &prefix_end, 10);
    if (*prefix_end != '\0' || bits < 1 || bits > 30)
        goto invalid;
    out->prefix = (int)bits;

    mask = htonl(~0U << (32 - bits));
    if ((address.s_addr & mask) != (gateway.s_addr & mask) ||
        address.s_addr == gateway.s_addr)
        goto invalid;
    return 1;

invalid:
    snprintf(detail, size, "invalid %.*s (expected " NU__NET_PARAM
             "ADDRESS/PREFIX,GATEWAY: IPv4, prefix 1 to 30, gateway in the "
             "address's subnet)",
             (int)(end - value) + (int)strlen(NU__NET_PARAM),
             value - strlen(NU__NET_PARAM));
    return -1;
}

/* The name of the one Ethernet interface in /sys/class/net. */
static int nu__net_find_ether(char *name, size_t size)
{
    DIR *dir = opendir("/sys/class/net");
    struct dirent *e;
    int found = 0;

    if (dir == NULL)
        return -1;
    while ((e = readdir(dir)) != NULL) {
        char path[300];
        FILE *f;
        int type = -1;

        if (e->d_name[0] == '.' || strlen(e->d_name) >= IFNAMSIZ)
            continue;
        snprintf(path, sizeof path, "/sys/class/net/%s/type", e->d_name);
        f = fopen(path, "re");
        if (f == NULL)
            continue;
        if (fscanf(f, "%d", &type) != 1)
            type = -1;
        fclose(f);
        if (type != ARPHRD_ETHER)
            continue;
        found++;
        if (found == 1)
            snprintf(name, size, "%s", e->d_name);
    }
    closedir(dir);
    return found == 1 ? 0 : -1;
}

static int nu__net_set_up(int fd, const char *ifname)
{
    struct ifreq ifr;

    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", ifname);
    if (ioctl(fd, SIOCGIFFLAGS, &ifr) != 0)
        return -1;
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    return ioctl(fd, SIOCSIFFLAGS, &ifr);
}

static void nu__net_sockaddr(struct sockaddr *sa, struct in_addr addr)
{
    struct sockaddr_in sin;

    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr = addr;
    memcpy(sa, &sin, sizeof sin);
}

/* Address and netmask of ifname, then the default route. */
static int nu__net_configure(int fd, const char *ifname,
                             const nu__agent_net_config_t *cfg)
{
    struct in_addr address, gateway, any = { 0 }, mask;
    struct rtentry route;
    struct ifreq ifr;

    inet_pton(AF_INET, cfg->address, &address);
    inet_pton(AF_INET, cfg->gateway, &gateway);
    mask.s_addr = htonl(~0U << (32 - cfg->prefix));

    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", ifname);
    nu__net_sockaddr(&ifr.ifr_addr, address);
    if (ioctl(fd, SIOCSIFADDR, &ifr) != 0)
        return -1;
    nu__net_sockaddr(&ifr.ifr_netmask, mask);
    if (ioctl(fd, SIOCSIFNETMASK, &ifr) != 0)
        return -1;
    if (nu__net_set_up(fd, ifname) != 0)
        return -1;

    memset(&route, 0, sizeof route);
    nu__net_sockaddr(&route.rt_dst, any);
    nu__net_sockaddr(&route.rt_genmask, any);
    nu__net_sockaddr(&route.rt_gateway, gateway);
    route.rt_flags = RTF_UP | RTF_GATEWAY;
    return ioctl(fd, SIOCADDRT, &route);
}

/* IPv6 stays off: QEMU's user network runs with ipv6=off, and the pod's
 * filters speak IPv4 only.  A kernel without IPv6 has no such file. */
static void nu__net_disable_ipv6(void)
{
    static const char *const paths[] = {
        "/proc/sys/net/ipv6/conf/all/disable_ipv6",
        "/proc/sys/net/ipv6/conf/default/disable_ipv6",
    };

    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        int fd = open(paths[i], O_WRONLY | O_CLOEXEC);

        if (fd < 0)
            continue;
        if (write(fd, "1", 1) != 1)
            nu__net_say("cannot disable IPv6", strerror(errno));
        close(fd);
    }
}

/* Bring up loopback, which every pod has, as in the ns and oci tiers. */
static int nu__net_loopback(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int rc;

    if (fd < 0 || nu__net_set_up(fd, "lo") != 0) {
        nu__net_say("cannot bring up lo", strerror(errno));
        rc = -1;
    } else {
        rc = 0;
    }
    if (fd >= 0)
        close(fd);
    return rc;
}

int nu__agent_net_setup(void)
{
    nu__agent_net_config_t cfg;
    char cmdline[4096], detail[512], ifname[IFNAMSIZ];
    ssize_t n;
    int fd;
    int rc;

    if (nu__net_loopback() != 0)
        return -1;
    fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        nu__net_say("cannot read /proc/cmdline", strerror(errno));
        return -1;
    }
    n = read(fd, cmdline, sizeof cmdline - 1);
    close(fd);
    if (n < 0) {
        nu__net_say("cannot read /proc/cmdline", strerror(errno));
        return -1;
    }
    cmdline[n] = '\0';

    rc = nu__net_parse(cmdline, &cfg, detail, sizeof detail);
    if (rc <= 0) {
        if (rc < 0)
            nu__net_say("cannot configure the network", detail);
        return rc;
    }

    nu__net_disable_ipv6();
    if (nu__net_find_ether(ifname, sizeof ifname) != 0) {
        nu__net_say("cannot configure the network", "expected exactly one "
                    "Ethernet interface (is the virtio_net module loaded?)");
        return -1;
    }
    fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        nu__net_say("cannot configure the network", strerror(errno));
        return -1;
    }
    rc = nu__net_configure(fd, ifname, &cfg);
    if (rc != 0)
        snprintf(detail, sizeof detail, "%s %s/%d via %s: %s", ifname,
                 cfg.address, cfg.prefix, cfg.gateway, strerror(errno));
    close(fd);
    if (rc != 0) {
        nu__net_say("cannot configure the network", detail);
        return -1;
    }
    fprintf(stderr, "nucleus-agent: network %s %s/%d via %s\n", ifname,
            cfg.address, cfg.prefix, cfg.gateway);
    return 0;
}
