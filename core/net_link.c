/*
 * net_link.c - veth pairs, addresses and routes with libnl-3.
 *
 * Configuration inside the pod's network namespace runs on a short-lived
 * thread that joins the namespace with setns(2).  setns changes only the
 * calling thread, and a netlink socket stays bound to the namespace it was
 * created in.  So the caller's threads never leave the host namespace.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/route.h>

#include "net_internal.h"
#include "nucleus/log.h"

static int nu__nl_err(nu_err_t *err, int nlerr, const char *what,
                      const char *object)
{
    int code = NU_EIO;

    if (nlerr == -NLE_PERM)
        code = NU_EPERM;
    else if (nlerr == -NLE_NOMEM)
        code = NU_ENOMEM;
    else if (nlerr == -NLE_EXIST)
        code = NU_EEXIST;
    return nu_err_set(err, code, "net: cannot %s %s: %s", what, object,
                      nl_geterror(nlerr));
}

static struct nl_sock *nu__nl_open(nu_err_t *err)
{
    struct nl_sock *sock = nl_socket_alloc();
    int rc;

    if (sock == NULL) {
        nu_err_set(err, NU_ENOMEM, "net: out of memory");
        return NULL;
    }
    rc = nl_connect(sock, NETLINK_ROUTE);
    if (rc < 0) {
        nu__nl_err(err, rc, "open", "a netlink socket");
        nl_socket_free(sock);
        return NULL;
    }
    return sock;
}

/* --- owner tags ------------------------------------------------------- */

/* Start time of pid in clock ticks since boot (field 22 of
 * /proc/PID/stat), or 0 when the process does not exist. */
static unsigned long long nu__proc_start_time(pid_t pid)
{
    char path[64];
    char buf[1024];
    unsigned long long start = 0;
    const char *p;
    FILE *fp;

    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    fp = fopen(path, "re");
    if (fp == NULL)
        return 0;
    if (fgets(buf, sizeof buf, fp) == NULL) {
        fclose(fp);
        return 0;
    }
    fclose(fp);

    /* The command name may contain spaces; fields restart after ')'.
     * p starts at the space before field 3 (state) and must stop at the
     * space before field 22 (starttime).  Field 23 is the virtual memory
     * size, which changes while the owner runs. */
    p = strrchr(buf, ')');
    if (p == NULL)
        return 0;
    p++;
    for (int field = 3; field < 22 && p != NULL; field++)
        p = strchr(p + 1, ' ');
    if (p != NULL)
        start = strtoull(p + 1, NULL, 10);
    return start;
}

void nu__net_owner_tag(pid_t pid, char *out, size_t size)
{
    snprintf(out, size, "nucleus-%d-%llu", (int)pid, nu__proc_start_time(pid));
}

/* Bind an abstract AF_UNIX socket named name.  Abstract names belong to
 * the network namespace, not to a file system, so processes in any mount,
 * PID or time namespace on the host's network find the same names.  The
 * kernel frees a name when the last fd of its socket closes.  Returns the
 * fd, or -1 with errno (EADDRINUSE: another socket has the name). */
static int nu__abstract_bind(const char *name)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    size_t len = strlen(name);
    int fd;

    if (len + 1 > sizeof sa.sun_path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(sa.sun_path + 1, name, len);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (bind(fd, (struct sockaddr *)&sa,
             (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + len)) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

/* This process's hold on its owner tag, bound once per process; a forked
 * child binds its own. */
static pthread_mutex_t nu__owner_mutex = PTHREAD_MUTEX_INITIALIZER;
static int nu__owner_fd = -1;
static pid_t nu__owner_pid;

static int nu__owner_claim(const char *tag, nu_err_t *err)
{
    int rc = NU_OK;

    pthread_mutex_lock(&nu__owner_mutex);
    if (nu__owner_fd >= 0 && nu__owner_pid != getpid()) {
        close(nu__owner_fd);    /* the parent's, inherited by fork */
        nu__owner_fd = -1;
    }
    if (nu__owner_fd < 0) {
        nu__owner_fd = nu__abstract_bind(tag);
        if (nu__owner_fd < 0)
            rc = nu_err_errno(err, errno, "net: cannot bind the owner name "
                              "@%s", tag);
        nu__owner_pid = getpid();
    }
    pthread_mutex_unlock(&nu__owner_mutex);
    return rc;
}

/* An owner is alive while its pid has its start time, or while its
 * abstract name is bound.  The second test keeps a sweeper in
 * another PID or time namespace, whose /proc shows other pids or shifted
 * start times, from removing a live owner's veths and rules. */
bool nu__net_owner_alive(const char *tag)
{
    int pid;
    unsigned long long start;
    int fd;

    if (sscanf(tag, "nucleus-%d-%llu", &pid, &start) != 2 || pid <= 0)
        return true; /* not ours: leave it alone */
    if (nu__proc_start_time(pid) == start)
        return true;
    fd = nu__abstract_bind(tag);
    if (fd < 0)
        return true; /* held, or unknown: keep the objects */
    close(fd);
    return false;
}

/* --- range ------------------------------------------------------------ */

int nu__net_range_parse(const char *range, uint32_t *base, int *prefix,
                        nu_err_t *err)
{
    char addr[32];
    const char *slash = strchr(range, '/');
    struct in_addr in;
    char *end;
    long bits;

    if (slash == NULL || (size_t)(slash - range) >= sizeof addr)
        goto bad;
    memcpy(addr, range, (size_t)(slash - range));
    addr[slash - range] = '\0';
    if (inet_pton(AF_INET, addr, &in) != 1)
        goto bad;
    errno = 0;
    bits = strtol(slash + 1, &end, 10);
    if (errno != 0 || *end != '\0' || end == slash + 1 || bits < 8 || bits > 28)
        goto bad;

    *base = ntohl(in.s_addr);
    *prefix = (int)bits;
    if ((*base & ~(0xffffffffu << (32 - bits))) != 0)
        return nu_err_set(err, NU_EINVAL,
                          "net: invalid range '%s': host bits are set (write "
                          "the network address)", range);
    return NU_OK;

bad:
    return nu_err_set(err, NU_EINVAL,
                      "net: invalid range '%s': expected an IPv4 CIDR with a "
                      "prefix from /8 to /28, such as %s", range,
                      NU_NET_DEFAULT_RANGE);
}

static bool nu__prefixes_overlap(uint32_t a, int alen, uint32_t b, int blen)
{
    int bits = alen < blen ? alen : blen;
    uint32_t mask = bits == 0 ? 0 : 0xffffffffu << (32 - bits);

    return (a & mask) == (b & mask);
}

static bool nu__route_is_ours(struct rtnl_route *route, struct nl_cache *links)
{
    char name[IFNAMSIZ];

    if (rtnl_route_get_nnexthops(route) < 1)
        return false;
    int ifindex = rtnl_route_nh_get_ifindex(rtnl_route_nexthop_n(route, 0));
    if (rtnl_link_i2name(links, ifindex, name, sizeof name) == NULL)
        return false;
    return strncmp(name, "nuh", 3) == 0;
}

int nu__net_range_check(uint32_t base, int prefix, nu_err_t *err)
{
    struct nl_sock *sock = nu__nl_open(err);
    struct nl_cache *routes = NULL;
    struct nl_cache *links = NULL;
    int rc = NU_OK;

    if (sock == NULL)
        return err != NULL ? err->code : NU_EIO;
    rc = rtnl_link_alloc_cache(sock, AF_UNSPEC, &links);
    if (rc < 0) {
        rc = nu__nl_err(err, rc, "list", "links");
        goto out;
    }
    rc = rtnl_route_alloc_cache(sock, AF_INET, 0, &routes);
    if (rc < 0) {
        rc = nu__nl_err(err, rc, "list", "routes");
        goto out;
    }

    for (struct nl_object *obj = nl_cache_get_first(routes); obj != NULL;
         obj = nl_cache_get_next(obj)) {
        struct rtnl_route *route = (struct rtnl_route *)obj;
        struct nl_addr *dst = rtnl_route_get_dst(route);
        int len = (int)nl_addr_get_prefixlen(dst);
        uint32_t addr;
        char text[64];

        if (len == 0 || nl_addr_get_len(dst) != 4 || nu__route_is_ours(route, links))
            continue;
        memcpy(&addr, nl_addr_get_binary_addr(dst), 4);
        if (!nu__prefixes_overlap(base, prefix, ntohl(addr), len))
            continue;
        nl_addr2str(dst, text, sizeof text);
        rc = nu_err_set(err, NU_EEXIST,
                        "net: cannot use the pod address range: host route "
                        "%s overlaps it (set NUCLEUS_NET_RANGE to a free "
                        "IPv4 range, for example 10.214.0.0/16)", text);
        goto out;
    }
    rc = NU_OK;

out:
    if (routes != NULL)
        nl_cache_free(routes);
    if (links != NULL)
        nl_cache_free(links);
    nl_socket_free(sock);
    return rc;
}

/* --- sysctl ----------------------------------------------------------- */

/* Write value to /proc/sys/net/<path> in the calling thread's network
 * namespace. */
static int nu__sysctl_write(const char *path, const char *value, nu_err_t *err)
{
    char full[128];
    int fd;
    ssize_t n;

    snprintf(full, sizeof full, "/proc/sys/net/%s", path);
    fd = open(full, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return nu_err_errno(err, errno, "net: cannot open %s", full);
    n = write(fd, value, strlen(value));
    if (n != (ssize_t)strlen(value)) {
        int saved = errno;
        close(fd);
        return nu_err_errno(err, saved, "net: cannot write %s", full);
    }
    close(fd);
    return NU_OK;
}

static int nu__sysctl_read(const char *path, char *value, size_t size,
                           nu_err_t *err)
{
    char full[128];
    int fd;
    ssize_t n;

    snprintf(full, sizeof full, "/proc/sys/net/%s", path);
    fd = open(full, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return nu_err_errno(err, errno, "net: cannot open %s", full);
    n = read(fd, value, size - 1);
    if (n < 0) {
        int saved = errno;
        close(fd);
        return nu_err_errno(err, saved, "net: cannot read %s", full);
    }
    close(fd);
    value[n] = '\0';
    return NU_OK;
}

int nu__net_ipv6_check(const nu_net_t *net, nu_err_t *err)
{
    const char *names[] = { "all", "default", "lo", net->pod_if };

    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char path[64];
        char value[16];
        int rc;

        snprintf(path, sizeof path, "ipv6/conf/%s/disable_ipv6", names[i]);
        rc = nu__sysctl_read(path, value, sizeof value, err);
        if (rc != NU_OK)
            return rc;
        if (strcmp(value, "1\n") != 0)
            return nu_err_set(err, NU_EPOLICY, "net: pod filter of %s "
                              "differs: expected net.ipv6.conf.%s."
                              "disable_ipv6 = 1, found %.*s", net->host_if,
                              names[i], (int)strcspn(value, "\n"), value);
    }
    return NU_OK;
}

/* --- links ------------------------------------------------------------ */

static int nu__link_change(struct nl_sock *sock, const char *name,
                           struct rtnl_link *change, nu_err_t *err)
{
    struct rtnl_link *link = NULL;
    int rc = rtnl_link_get_kernel(sock, 0, name, &link);

    if (rc < 0)
        return nu__nl_err(err, rc, "find link", name);
    rc = rtnl_link_change(sock, link, change, 0);
    rtnl_link_put(link);
    if (rc < 0)
        return nu__nl_err(err, rc, "change link", name);
    return NU_OK;
}

static int nu__link_up(struct nl_sock *sock, const char *name, nu_err_t *err)
{
    struct rtnl_link *change = rtnl_link_alloc();
    int rc;

    if (change == NULL)
        return nu_err_set(err, NU_ENOMEM, "net: out of memory");
    rtnl_link_set_flags(change, IFF_UP);
    rc = nu__link_change(sock, name, change, err);
    rtnl_link_put(change);
    return rc;
}

static int nu__addr_add(struct nl_sock *sock, const char *ifname,
                        const char *cidr, nu_err_t *err)
{
    struct rtnl_addr *addr = rtnl_addr_alloc();
    struct nl_addr *local = NULL;
    int ifindex;
    int rc;

    if (addr == NULL)
        return nu_err_set(err, NU_ENOMEM, "net: out of memory");
    ifindex = (int)if_nametoindex(ifname);
    rc = nl_addr_parse(cidr, AF_INET, &local);
    if (rc < 0 || ifindex == 0) {
        rc = nu__nl_err(err, rc < 0 ? rc : -NLE_OBJ_NOTFOUND, "add address",
                        cidr);
        goto out;
    }
    rtnl_addr_set_ifindex(addr, ifindex);
    rtnl_addr_set_local(addr, local);
    rc = rtnl_addr_add(sock, addr, 0);
    rc = rc < 0 ? nu__nl_err(err, rc, "add address", cidr) : NU_OK;

out:
    if (local != NULL)
        nl_addr_put(local);
    rtnl_addr_put(addr);
    return rc;
}

static int nu__route_add_default(struct nl_sock *sock, const char *ifname,
                                 const char *gateway, nu_err_t *err)
{
    struct rtnl_route *route = rtnl_route_alloc();
    struct rtnl_nexthop *nh = rtnl_route_nh_alloc();
    struct nl_addr *dst = NULL;
    struct nl_addr *gw = NULL;
    int rc;

    if (route == NULL || nh == NULL) {
        rc = nu_err_set(err, NU_ENOMEM, "net: out of memory");
        goto out;
    }
    if (nl_addr_parse("0.0.0.0/0", AF_INET, &dst) < 0 ||
        nl_addr_parse(gateway, AF_INET, &gw) < 0) {
        rc = nu_err_set(err, NU_EINVAL, "net: invalid gateway '%s'", gateway);
        goto out;
    }
    rtnl_route_set_family(route, AF_INET);
    rtnl_route_set_dst(route, dst);
    rtnl_route_nh_set_ifindex(nh, (int)if_nametoindex(ifname));
    rtnl_route_nh_set_gateway(nh, gw);
    rtnl_route_add_nexthop(route, nh);
    nh = NULL; /* owned by route now */
    rc = rtnl_route_add(sock, route, NLM_F_CREATE | NLM_F_EXCL);
    rc = rc < 0 ? nu__nl_err(err, rc, "add the default route via", gateway)
                : NU_OK;

out:
    if (nh != NULL)
        rtnl_route_nh_free(nh);
    if (dst != NULL)
        nl_addr_put(dst);
    if (gw != NULL)
        nl_addr_put(gw);
    if (route != NULL)
        rtnl_route_put(route);
    return rc;
}

static void nu__net_set_addresses(nu_net_t *net)
{
    struct in_addr a;

    a.s_addr = htonl(net->range_base + net->index * 4 + 1);
    inet_ntop(AF_INET, &a, net->host_addr, sizeof net->host_addr);
    a.s_addr = htonl(net->range_base + net->index * 4 + 2);
    inet_ntop(AF_INET, &a, net->pod_addr, sizeof net->pod_addr);
    snprintf(net->host_if, sizeof net->host_if, "nuh%u", net->index);
    snprintf(net->pod_if, sizeof net->pod_if, "nup%u", net->index);
}

/* Lock files live in a directory that only root can write, so no other
 * user can plant links there or hold the files. */
#define NU__LOCK_DIR "/run/nucleus/net"

/* Create /run/nucleus/net (mode 0700) if needed and open it, refusing a
 * symbolic link or a directory that another user owns or may write.
 * Returns the directory fd, or -1 with err set. */
static int nu__lock_dir_open(nu_err_t *err)
{
    const char *const dirs[] = { "/run/nucleus", NU__LOCK_DIR };
    struct stat st;
    int fd = -1;

    for (size_t i = 0; i < 2; i++) {
        if (fd >= 0)
            close(fd);
        if (mkdir(dirs[i], 0700) != 0 && errno != EEXIST) {
            nu_err_errno(err, errno, "net: cannot create %s", dirs[i]);
            return -1;
        }
        fd = open(dirs[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
            nu_err_errno(err, errno, "net: cannot open %s", dirs[i]);
            return -1;
        }
        if (fstat(fd, &st) != 0 || st.st_uid != geteuid() ||
            (st.st_mode & 022) != 0) {
            nu_err_set(err, NU_EPERM, "net: cannot use %s: it must be a "
                       "directory owned by uid %d that no other user may "
                       "write (remove it and retry)", dirs[i], (int)geteuid());
            close(fd);
            return -1;
        }
    }
    return fd;
}

/* Reserve the first free N: hold an exclusive flock on
 * /run/nucleus/net/nucleus-net-<N>.lock and the abstract name @nucleus-net-<N>
 * for the handle's lifetime (the kernel drops both when the owner dies,
 * even by SIGKILL) and check that no nuh<N> link exists (one left by an
 * owner that nu_net_sweep has not reached yet). */
static int nu__reserve_first(nu_net_t *net, nu_err_t *err)
{
    uint32_t count = 1u << (32 - net->range_prefix - 2);
    int dir = nu__lock_dir_open(err);

    if (dir < 0)
        return err != NULL ? err->code : NU_EIO;
    for (uint32_t n = 0; n < count; n++) {
        char path[64];
        int fd;

        /* O_NOFOLLOW, and a slot whose file cannot be opened is skipped,
         * so a planted entry costs one /30, never the whole range. */
        snprintf(path, sizeof path, "nucleus-net-%u.lock", n);
        fd = openat(dir, path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
                    0600);
        if (fd < 0) {
            nu_log(NU_LOG_WARN, "net", "cannot open " NU__LOCK_DIR "/%s, "
                   "skipping this /30: %s", path, strerror(errno));
            continue;
        }
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            close(fd);
            continue;
        }
        net->index = n;
        nu__net_set_addresses(net);
        if (if_nametoindex(net->host_if) != 0) {
            close(fd);
            continue;
        }

        /* /run/lock may be private to another mount namespace, so N is
         * also claimed by an abstract name that all of them see. */
        snprintf(path, sizeof path, "nucleus-net-%u", n);
        net->index_fd = nu__abstract_bind(path);
        if (net->index_fd < 0) {
            int saved = errno;
            close(fd);
            if (saved == EADDRINUSE)
                continue;
            close(dir);
            return nu_err_errno(err, saved, "net: cannot bind @%s", path);
        }
        net->lock_fd = fd;
        close(dir);
        return NU_OK;
    }
    close(dir);
    net->host_if[0] = '\0';
    return nu_err_set(err, NU_ELIMIT, "net: cannot allocate a /30 in %s: "
                      "every one is in use (choose a larger range)",
                      net->range);
}

int nu__net_link_create(nu_net_t *net, nu_err_t *err)
{
    int rc = nu__owner_claim(net->owner_tag, err);

    if (rc != NU_OK)
        return rc;
    return nu__reserve_first(net, err);
}

/* Create nuh<N> in the host and its peer nup<N> directly in the pod's
 * namespace: creating the peer there costs far less than moving it
 * (dev_change_net_namespace waits for an RCU grace period). */
static int nu__veth_create(nu_net_t *net, struct nl_sock *sock, nu_err_t *err)
{
    struct rtnl_link *veth = rtnl_link_veth_alloc();
    struct rtnl_link *peer;
    struct rtnl_link *change = NULL;
    char path[64];
    int rc;

    if (veth == NULL)
        return nu_err_set(err, NU_ENOMEM, "net: out of memory");
    rtnl_link_set_name(veth, net->host_if);
    peer = rtnl_link_veth_get_peer(veth);   /* takes a reference */
    rtnl_link_set_name(peer, net->pod_if);
    rtnl_link_set_ns_fd(peer, net->pod_netns_fd);
    rtnl_link_put(peer);
    rc = rtnl_link_add(sock, veth, NLM_F_CREATE | NLM_F_EXCL);
    rtnl_link_veth_release(veth);
    if (rc < 0)
        return nu__nl_err(err, rc, "create veth", net->host_if);

    /* NOTE: the alias is set after creation (the kernel ignores
     * IFLA_IFALIAS in RTM_NEWLINK), so an owner killed between the two
     * leaves a veth without a tag.  Its peer dies with the pod, and a
     * veth goes with its peer, so the kernel removes it anyway. */
    change = rtnl_link_alloc();
    if (change == NULL)
        return nu_err_set(err, NU_ENOMEM, "net: out of memory");
    rtnl_link_set_ifalias(change, net->owner_tag);
    rc = nu__link_change(sock, net->host_if, change, err);
    rtnl_link_put(change);
    if (rc != NU_OK)
        return rc;

    snprintf(path, sizeof path, "ipv6/conf/%s/disable_ipv6", net->host_if);
    return nu__sysctl_write(path, "1", err);
}

typedef struct {
    nu_net_t *net;
    nu_err_t err;
    int rc;
} nu__pod_side_t;

/* Runs on its own thread inside the pod's network namespace. */
static void *nu__pod_side(void *arg)
{
    nu__pod_side_t *job = arg;
    nu_net_t *net = job->net;
    struct nl_sock *sock = NULL;
    char cidr[32];
    char path[64];

    if (setns(net->pod_netns_fd, CLONE_NEWNET) != 0) {
        job->rc = nu_err_errno(&job->err, errno,
                               "net: cannot enter the pod's network namespace");
        return NULL;
    }
    job->rc = nu__sysctl_write("ipv6/conf/all/disable_ipv6", "1", &job->err);
    if (job->rc == NU_OK)
        job->rc = nu__sysctl_write("ipv6/conf/default/disable_ipv6", "1",
                                   &job->err);
    snprintf(path, sizeof path, "ipv6/conf/%s/disable_ipv6", net->pod_if);
    if (job->rc == NU_OK)
        job->rc = nu__sysctl_write(path, "1", &job->err);
    if (job->rc == NU_OK)
        job->rc = nu__net_ipv6_check(net, &job->err);
    if (job->rc != NU_OK)
        return NULL;

    sock = nu__nl_open(&job->err);
    if (sock == NULL) {
        job->rc = job->err.code;
        return NULL;
    }
    snprintf(cidr, sizeof cidr, "%s/30", net->pod_addr);
    job->rc = nu__link_up(sock, "lo", &job->err);
    if (job->rc == NU_OK)
        job->rc = nu__addr_add(sock, net->pod_if, cidr, &job->err);
    if (job->rc == NU_OK)
        job->rc = nu__link_up(sock, net->pod_if, &job->err);
    if (job->rc == NU_OK)
        job->rc = nu__route_add_default(sock, net->pod_if, net->host_addr,
                                        &job->err);
    nl_socket_free(sock);
    return NULL;
}

static int nu__pod_side_run(nu_net_t *net, nu_err_t *err)
{
    nu__pod_side_t job = { .net = net, .rc = NU_EINTERNAL };
    pthread_t thread;

    if (pthread_create(&thread, NULL, nu__pod_side, &job) != 0)
        return nu_err_set(err, NU_ENOMEM, "net: cannot start a thread");
    pthread_join(thread, NULL);
    if (job.rc != NU_OK && err != NULL)
        *err = job.err;
    return job.rc;
}

int nu__net_link_attach(nu_net_t *net, nu_err_t *err)
{
    struct nl_sock *sock = nu__nl_open(err);
    char cidr[32];
    char path[64];
    int rc;

    if (sock == NULL)
        return err != NULL ? err->code : NU_EIO;

    rc = nu__veth_create(net, sock, err);
    if (rc != NU_OK)
        goto out;
    net->link_created = true;

    snprintf(cidr, sizeof cidr, "%s/30", net->host_addr);
    rc = nu__addr_add(sock, net->host_if, cidr, err);
    if (rc != NU_OK)
        goto out;
    snprintf(path, sizeof path, "ipv4/conf/%s/forwarding", net->host_if);
    rc = nu__sysctl_write(path, "1", err);
    if (rc != NU_OK)
        goto out;
    rc = nu__link_up(sock, net->host_if, err);
    if (rc != NU_OK)
        goto out;

    rc = nu__pod_side_run(net, err);

out:
    nl_socket_free(sock);
    return rc;
}

bool nu__net_link_exists(const char *ifname)
{
    return if_nametoindex(ifname) != 0;
}

void nu__net_link_delete(const char *ifname)
{
    struct nl_sock *sock = nu__nl_open(NULL);
    struct rtnl_link *link;
    int rc;

    if (sock == NULL)
        return;
    link = rtnl_link_alloc();
    if (link != NULL) {
        rtnl_link_set_name(link, ifname);
        rc = rtnl_link_delete(sock, link);
        if (rc < 0 && rc != -NLE_OBJ_NOTFOUND && rc != -NLE_NODEV)
            nu_log(NU_LOG_WARN, "net", "cannot delete link %s: %s", ifname,
                   nl_geterror(rc));
        rtnl_link_put(link);
    }
    nl_socket_free(sock);
}

int nu__net_link_sweep(nu_err_t *err)
{
    struct nl_sock *sock = nu__nl_open(err);
    struct nl_cache *links = NULL;
    char stale[64][IFNAMSIZ];
    int count = 0;
    int rc;

    if (sock == NULL)
        return err != NULL ? err->code : NU_EIO;
    rc = rtnl_link_alloc_cache(sock, AF_UNSPEC, &links);
    if (rc < 0) {
        rc = nu__nl_err(err, rc, "list", "links");
        nl_socket_free(sock);
        return rc;
    }
    for (struct nl_object *obj = nl_cache_get_first(links);
         obj != NULL && count < 64; obj = nl_cache_get_next(obj)) {
        struct rtnl_link *link = (struct rtnl_link *)obj;
        const char *name = rtnl_link_get_name(link);
        const char *alias = rtnl_link_get_ifalias(link);

        if (name == NULL || strncmp(name, "nuh", 3) != 0 || alias == NULL ||
            strncmp(alias, "nucleus-", 8) != 0 || nu__net_owner_alive(alias))
            continue;
        snprintf(stale[count++], IFNAMSIZ, "%s", name);
    }
    nl_cache_free(links);
    nl_socket_free(sock);

    for (int i = 0; i < count; i++) {
        nu_log(NU_LOG_INFO, "net", "removing %s of a dead owner", stale[i]);
        nu__net_link_delete(stale[i]);
    }
    return count;
}
