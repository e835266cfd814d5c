/*
 * net_proxy.c - the pod's egress proxy: HTTP forward proxy and CONNECT
 * tunnels on libuv, one loop thread per pod, listening on the host side of
 * the pod's veth (net.h).
 *
 * Threat model: everything the pod sends is hostile.  The pod chooses the
 * request line, the headers and the first bytes of a tunnel; the proxy
 * chooses the destination address itself.  Per connection:
 *
 *   0. Accept only the pod's address as the peer, or a peer whose request
 *      carries the owner's Proxy-Authorization credential (the owner's
 *      own web_fetch).  Other local processes and routed neighbours that
 *      reach the listening address get a 403.  At most
 *      NU_NET_PROXY_MAX_CONNS connections per pod are open at once; the
 *      next one gets a 503, so a pod cannot use up the owner's
 *      descriptors (a spliced connection uses eight).
 *   1. Read the request head (at most 16 KiB, ended by CRLF CRLF).
 *   2. Plain HTTP: the request target must be an absolute http:// URL and
 *      the only Host header must name the same host and port, so a pod
 *      cannot spoof Host towards a virtual host on an allowed address.  A
 *      second Host header is a 400, as RFC 9112 section 3.2 requires.
 *      The head is
 *      rewritten to origin form with "Connection: close", so one client
 *      connection carries one request.
 *      CONNECT host:port: resolve and check the target (steps 3 and 4),
 *      reply 200, then wait for the TLS ClientHello and require its SNI
 *      to equal host.  An IP literal target needs no SNI, because the
 *      CIDR entries allow it directly anyway.
 *   3. The host (canonical form of nu_url_parse, so 0x7f.1 and
 *      ::ffff:a.b.c.d are IPv4) must pass nu_perm_check_host.
 *   4. The proxy resolves names itself (static hosts list first, then
 *      getaddrinfo, IPv4 only) and checks every address it gets.  No name
 *      may lead to loopback, private (RFC 1918), shared (100.64/10),
 *      link-local, unspecified, multicast or reserved addresses, the pod
 *      range or any address of the host.  The policy's CIDR entries may
 *      name such an address and port to allow it.  The proxy connects to
 *      the first address that passes.
 *   5. Splice bytes both ways with backpressure (reading stops while the
 *      other side has more than 1 MiB queued), counting them per pod.
 *
 * A refused request gets a 403 (400 for bad syntax, 502 when the name does
 * not resolve or the connection fails, 503 over the connection cap) with
 * the header Nucleus-Proxy-Denied and the reason in the body.  A 403 is
 * counted in "denied" and its destination kept for nu_net_denied.  Every
 * refusal but a 502 is also queued (net_denials.c) for the pod, which
 * records it as a network_denied audit event.  A tunnel refused after its
 * 200 (a bad ClientHello) is closed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "executor_int.h"
#include "net_internal.h"
#include "nucleus/decide.h"
#include "nucleus/log.h"

#define NU__HEAD_MAX 16384
#define NU__HELLO_MAX (16384 + 5)
#define NU__DENIED_KEEP 32
#define NU__STR2(x) #x
#define NU__STR(x) NU__STR2(x)

struct nu__proxy {
    nu_net_t *net;
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_async_t stop;
    uv_async_t recheck;        /* the policy narrowed: recheck connections */
    pthread_t thread;
    bool loop_ready;
    atomic_uint_least64_t bytes_in;
    atomic_uint_least64_t bytes_out;
    atomic_uint_least64_t connections;
    atomic_uint_least64_t denied;
    void *pool[32];            /* idle read buffers, loop thread only */
    size_t pool_count;
    uint32_t pod_addr_be;      /* the only peer that needs no credential */
    char auth_header[96];      /* "Basic <base64 of net->proxy_credential>" */
    unsigned live;             /* open connections, loop thread only */
    /* Refused destinations ("host:port"), first NU__DENIED_KEEP distinct
     * ones; read by nu_net_denied from other threads. */
    pthread_mutex_t denied_lock;
    char *denied_list[NU__DENIED_KEEP];
    size_t denied_count;
    uint64_t denied_dropped;   /* distinct ones past the list's end */
};

typedef enum {
    NU__HEAD = 0,    /* reading the request head */
    NU__HELLO,       /* CONNECT accepted, waiting for the ClientHello */
    NU__DIALING,     /* resolving or connecting */
    NU__PIPE,        /* splicing */
    NU__CLOSING
} nu__state_t;

/* One direction of a spliced connection: bytes move from the source
 * socket into a pipe and from the pipe into the destination socket, as
 * page references, never through user space. */
typedef struct {
    int pipe[2];               /* read end, write end; -1 when closed */
    size_t capacity;           /* pipe size (F_GETPIPE_SZ) */
    size_t queued;             /* bytes in the pipe */
    bool eof;                  /* the source has shut down its side */
    bool shut;                 /* EOF passed on with shutdown(SHUT_WR) */
} nu__flow_t;

typedef struct nu__conn {
    nu__proxy_t *proxy;
    uv_tcp_t client;
    uv_tcp_t upstream;
    uv_getaddrinfo_t gai;
    uv_connect_t connect_req;
    nu__state_t state;
    bool tunnel;
    bool replied;              /* the CONNECT's 200 has been sent */
    bool from_pod;             /* the peer is the pod's address */
    bool upstream_init;
    bool close_after_reply;    /* a refusal is being written */
    int open_handles;          /* handles plus a pending getaddrinfo */
    int pending_writes;        /* uv_write requests not completed yet */
    /* Splicing (state NU__PIPE): duplicates of the two sockets' fds,
     * watched by the polls, and one pipe per direction. */
    bool splicing;
    uv_poll_t client_poll;
    uv_poll_t upstream_poll;
    int client_fd;
    int upstream_fd;
    nu__flow_t out;            /* client to upstream */
    nu__flow_t in;             /* upstream to client */
    char host[NU_URL_HOST_MAX];
    int port;
    uint32_t addr_be;          /* checked destination address */
    char *buf;                 /* head, then the ClientHello */
    size_t len;
    char *forward;             /* bytes to send upstream once connected */
    size_t forward_len;
} nu__conn_t;

typedef struct {
    uv_write_t req;
    nu__conn_t *conn;
    char *data;
    bool to_client;
    bool pooled;               /* data is a read buffer of the pool */
} nu__write_t;

static void nu__buf_put(nu__proxy_t *proxy, void *data);

/* --- shared helpers --------------------------------------------------- */

const char *nu__net_hosts_lookup(const char *const *hosts, const char *name)
{
    size_t len = strlen(name);

    for (size_t i = 0; hosts != NULL && hosts[i] != NULL; i++) {
        if (strncasecmp(hosts[i], name, len) == 0 && hosts[i][len] == '=')
            return hosts[i] + len + 1;
    }
    return NULL;
}

static bool nu__in_prefix(uint32_t addr, uint32_t net, int bits)
{
    uint32_t mask = bits == 0 ? 0 : 0xffffffffu << (32 - bits);
    return (addr & mask) == (net & mask);
}

static bool nu__is_host_addr(uint32_t addr_be)
{
    struct ifaddrs *list = NULL;
    bool found = false;

    if (getifaddrs(&list) != 0)
        return true; /* fail closed */
    for (struct ifaddrs *ifa = list; ifa != NULL && !found; ifa = ifa->ifa_next) {
        if (ifa->ifa_addr != NULL && ifa->ifa_addr->sa_family == AF_INET &&
            ((struct sockaddr_in *)ifa->ifa_addr)->sin_addr.s_addr == addr_be)
            found = true;
    }
    freeifaddrs(list);
    return found;
}

/* Does net's current policy allow host:port?  The policy may be replaced
 * by nu_net_restrict at any time. */
static bool nu__policy_allows(const nu_net_t *net, const char *host, int port)
{
    pthread_rwlock_t *lock = (pthread_rwlock_t *)&net->perm_lock;
    bool allowed;

    pthread_rwlock_rdlock(lock);
    allowed = nu_perm_check_host(&net->perm, host, port);
    pthread_rwlock_unlock(lock);
    return allowed;
}

/* Ranges a connection reaches only when an allow entry inside the range
 * names it (a broad entry such as 0.0.0.0/0 does not): the host's
 * loopback, link-local addresses such as cloud metadata services, and
 * addresses that are not unicast. */
static const struct {
    uint32_t net;
    int bits;
} nu__strict_ranges[] = {
    { 0x00000000u, 8 },   /* "this network", unspecified */
    { 0x7f000000u, 8 },   /* loopback */
    { 0xa9fe0000u, 16 },  /* link-local, cloud metadata */
    { 0xe0000000u, 3 },   /* multicast, reserved, broadcast */
};

/* Networks behind the host: reachable through an allow entry inside the
 * same range, as database_client's 10.0.0.0/8:5432 is. */
static const struct {
    uint32_t net;
    int bits;
} nu__private_ranges[] = {
    { 0x0a000000u, 8 },   /* private, RFC 1918 */
    { 0x64400000u, 10 },  /* shared address space (CGNAT), RFC 6598 */
    { 0xac100000u, 12 },  /* private, RFC 1918 */
    { 0xc0a80000u, 16 },  /* private, RFC 1918 */
};

/* Parse an IPv4 allow entry "A.B.C.D[/N][:PORT]" into *net (host order),
 * *bits and *port (0 = every port).  Returns false for other entries. */
static bool nu__allow_entry_v4(const char *entry, uint32_t *net, int *bits,
                               int *port)
{
    char buf[64];
    const char *colon = strchr(entry, ':');
    size_t len = colon != NULL ? (size_t)(colon - entry) : strlen(entry);
    char *slash, *end;
    struct in_addr in;

    if (len == 0 || len >= sizeof buf)
        return false;
    memcpy(buf, entry, len);
    buf[len] = '\0';
    *bits = 32;
    slash = strchr(buf, '/');
    if (slash != NULL) {
        *slash = '\0';
        *bits = (int)strtol(slash + 1, &end, 10);
        if (*end != '\0' || *bits < 0 || *bits > 32)
            return false;
    }
    if (inet_pton(AF_INET, buf, &in) != 1)
        return false;
    *net = ntohl(in.s_addr);
    *port = colon != NULL ? (int)strtol(colon + 1, NULL, 10) : 0;
    return true;
}

/* Whether an allow entry that lies within range_net/range_bits covers a
 * (host order) and port. */
static bool nu__allow_within(const nu_net_t *net, uint32_t a, int port,
                             uint32_t range_net, int range_bits)
{
    pthread_rwlock_t *lock = (pthread_rwlock_t *)&net->perm_lock;
    const nu_strset_t *allow = &net->perm.network.allow;
    bool named = false;

    pthread_rwlock_rdlock(lock);
    for (size_t i = 0; !named && !allow->top && i < allow->count; i++) {
        uint32_t e_net;
        int e_bits, e_port;

        if (!nu__allow_entry_v4(allow->items[i], &e_net, &e_bits, &e_port))
            continue;
        named = e_bits >= range_bits &&
                nu__in_prefix(e_net, range_net, range_bits) &&
                nu__in_prefix(a, e_net, e_bits) &&
                (e_port == 0 || e_port == port);
    }
    pthread_rwlock_unlock(lock);
    return named;
}

bool nu__net_addr_forbidden(const nu_net_t *net, uint32_t addr_be, int port)
{
    uint32_t a = ntohl(addr_be);

    /* This host and the pods' range: only an entry for the one address. */
    if (nu__is_host_addr(addr_be) ||
        (net != NULL && nu__in_prefix(a, net->range_base, net->range_prefix)))
        return net == NULL || !nu__allow_within(net, a, port, a, 32);

    for (size_t i = 0; i < sizeof nu__strict_ranges /
                           sizeof nu__strict_ranges[0]; i++)
        if (nu__in_prefix(a, nu__strict_ranges[i].net,
                          nu__strict_ranges[i].bits))
            return net == NULL ||
                   !nu__allow_within(net, a, port, nu__strict_ranges[i].net,
                                     nu__strict_ranges[i].bits);

    for (size_t i = 0; i < sizeof nu__private_ranges /
                           sizeof nu__private_ranges[0]; i++)
        if (nu__in_prefix(a, nu__private_ranges[i].net,
                          nu__private_ranges[i].bits))
            return net == NULL ||
                   !nu__allow_within(net, a, port, nu__private_ranges[i].net,
                                     nu__private_ranges[i].bits);
    return false;
}

/* Parse the SNI host name of a TLS ClientHello record in data[0..len).
 * Returns 1 (name in out), 0 (no SNI), -1 (need more bytes) or -2 (not a
 * ClientHello). */
static int nu__sni_parse(const uint8_t *d, size_t len, char *out, size_t size)
{
    size_t rec, p, end, ext_end;

    if (len < 5)
        return -1;
    if (d[0] != 0x16 || d[1] != 0x03)
        return -2;
    rec = ((size_t)d[3] << 8) | d[4];
    if (len < 5 + rec)
        return -1;
    end = 5 + rec;
    p = 5;
    if (p + 4 > end || d[p] != 0x01)
        return -2;
    p += 4 + 2 + 32;                                  /* header, version, random */
    if (p + 1 > end)
        return -2;
    p += 1 + d[p];                                    /* session id */
    if (p + 2 > end)
        return -2;
    p += 2 + (((size_t)d[p] << 8) | d[p + 1]);        /* cipher suites */
    if (p + 1 > end)
        return -2;
    p += 1 + d[p];                                    /* compression */
    if (p + 2 > end)
        return p == end ? 0 : -2;
    ext_end = p + 2 + (((size_t)d[p] << 8) | d[p + 1]);
    p += 2;
    if (ext_end > end)
        return -2;
    while (p + 4 <= ext_end) {
        unsigned type = ((unsigned)d[p] << 8) | d[p + 1];
        size_t elen = ((size_t)d[p + 2] << 8) | d[p + 3];
        p += 4;
        if (p + elen > ext_end)
            return -2;
        if (type == 0) {
            /* server_name_list: length(2), type(1) = host_name, length(2) */
            if (elen < 5 || d[p + 2] != 0)
                return -2;
            size_t nlen = ((size_t)d[p + 3] << 8) | d[p + 4];
            if (5 + nlen > elen || nlen == 0 || nlen >= size)
                return -2;
            memcpy(out, d + p + 5, nlen);
            out[nlen] = '\0';
            return 1;
        }
        p += elen;
    }
    return 0;
}

/* --- connection life cycle -------------------------------------------- */

static void nu__close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* Runs once every handle is closed, so no poll watches these fds. */
static void nu__conn_free(nu__conn_t *c)
{
    c->proxy->live--;
    nu__close_fd(&c->client_fd);
    nu__close_fd(&c->upstream_fd);
    for (int i = 0; i < 2; i++) {
        nu__close_fd(&c->out.pipe[i]);
        nu__close_fd(&c->in.pipe[i]);
    }
    free(c->buf);
    free(c->forward);
    free(c);
}

static void nu__on_close(uv_handle_t *handle)
{
    nu__conn_t *c = handle->data;

    if (--c->open_handles == 0)
        nu__conn_free(c);
}

static void nu__conn_close(nu__conn_t *c)
{
    if (c->state == NU__CLOSING)
        return;
    c->state = NU__CLOSING;
    if (!uv_is_closing((uv_handle_t *)&c->client))
        uv_close((uv_handle_t *)&c->client, nu__on_close);
    if (c->upstream_init && !uv_is_closing((uv_handle_t *)&c->upstream))
        uv_close((uv_handle_t *)&c->upstream, nu__on_close);
    if (c->splicing) {
        uv_close((uv_handle_t *)&c->client_poll, nu__on_close);
        uv_close((uv_handle_t *)&c->upstream_poll, nu__on_close);
    }
}

static void nu__on_write(uv_write_t *req, int status);

static int nu__send(nu__conn_t *c, bool to_client, char *data, size_t len,
                   bool pooled)
{
    nu__write_t *w = malloc(sizeof *w);
    uv_buf_t buf = uv_buf_init(data, (unsigned)len);
    uv_stream_t *s = to_client ? (uv_stream_t *)&c->client
                               : (uv_stream_t *)&c->upstream;

    if (w == NULL) {
        if (pooled)
            nu__buf_put(c->proxy, data);
        else
            free(data);
        return UV_ENOMEM;
    }
    w->conn = c;
    w->data = data;
    w->to_client = to_client;
    w->pooled = pooled;
    int rc = uv_write(&w->req, s, &buf, 1, nu__on_write);
    if (rc != 0) {
        if (pooled)
            nu__buf_put(c->proxy, data);
        else
            free(data);
        free(w);
        return rc;
    }
    c->pending_writes++;
    return 0;
}

/* Keep "host:port" in the proxy's list of refused destinations, once. */
static void nu__denied_record(nu__proxy_t *proxy, const char *host, int port)
{
    char *item = NULL;

    if (asprintf(&item, "%s:%d", host[0] != '\0' ? host : "?", port) < 0)
        return;
    pthread_mutex_lock(&proxy->denied_lock);
    for (size_t i = 0; i < proxy->denied_count; i++) {
        if (strcmp(proxy->denied_list[i], item) == 0) {
            free(item);
            item = NULL;
            break;
        }
    }
    if (item != NULL && proxy->denied_count < NU__DENIED_KEEP) {
        proxy->denied_list[proxy->denied_count++] = item;
        item = NULL;
    } else if (item != NULL) {
        proxy->denied_dropped++;
    }
    pthread_mutex_unlock(&proxy->denied_lock);
    free(item);
}

/* Reply status with why as the body and close.  reason is the refusal's
 * code for the audit log (nu_net_denial_t.reason), or NULL for an
 * upstream failure (502), which is not a refusal and is not queued. */
static void nu__deny(nu__conn_t *c, int status, const char *reason_code,
                     const char *why)
{
    static const char fmt[] = "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\n"
                              "Nucleus-Proxy-Denied: 1\r\n"
                              "Connection: close\r\nContent-Length: %zu\r\n\r\n%s\n";
    char *text = NULL;
    const char *reason = status == 403 ? "Forbidden"
                         : status == 400 ? "Bad Request"
                         : status == 503 ? "Service Unavailable" : "Bad Gateway";

    if (status == 403) {
        atomic_fetch_add(&c->proxy->denied, 1);
        nu__denied_record(c->proxy, c->host, c->port);
    }
    if (reason_code != NULL)
        nu__denials_push(&c->proxy->net->denials, c->host, c->port, status,
                         reason_code, why);
    nu_log(NU_LOG_INFO, "net", "proxy of %s refused %s:%d: %s",
           c->proxy->net->host_if, c->host[0] != '\0' ? c->host : "?",
           c->port, why);
    if (c->tunnel && c->replied) {
        nu__conn_close(c);
        return;
    }
    if (asprintf(&text, fmt, status, reason, strlen(why) + 1, why) < 0 ||
        nu__send(c, true, text, strlen(text), false) != 0) {
        nu__conn_close(c);
        return;
    }
    uv_read_stop((uv_stream_t *)&c->client);
    c->state = NU__DIALING;
    c->close_after_reply = true;
}

/* --- head reads ------------------------------------------------------ */

/* Read buffers of the request head and the ClientHello.  They return to a
 * small pool, which saves glibc from mapping and faulting in a fresh
 * buffer of this size for every read. */
#define NU__READ_SIZE (64u << 10)

static void nu__buf_put(nu__proxy_t *proxy, void *data)
{
    if (data == NULL)
        return;
    if (proxy->pool_count < sizeof proxy->pool / sizeof proxy->pool[0])
        proxy->pool[proxy->pool_count++] = data;
    else
        free(data);
}

static void nu__on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    nu__conn_t *c = handle->data;
    nu__proxy_t *proxy = c->proxy;

    (void)suggested;
    buf->base = proxy->pool_count > 0 ? proxy->pool[--proxy->pool_count]
                                      : malloc(NU__READ_SIZE);
    buf->len = buf->base != NULL ? NU__READ_SIZE : 0;
}

/* --- splicing --------------------------------------------------------- */

/* Once the request or the tunnel has passed the checks, the proxy no
 * longer looks at the bytes.  They move with splice(2) from one socket
 * into a pipe and from the pipe into the other socket, so the data pages
 * are never copied through user space.  uv_poll watches duplicates of the
 * two sockets' fds, because libuv allows only one watcher per fd and the
 * idle uv_tcp handles still own the originals.  A full pipe stops reading
 * from its source, which is the backpressure. */
#define NU__PIPE_SIZE (1u << 20)

static void nu__start_splice(nu__conn_t *c);

static void nu__on_write(uv_write_t *req, int status)
{
    nu__write_t *w = (nu__write_t *)req;
    nu__conn_t *c = w->conn;

    if (w->pooled)
        nu__buf_put(c->proxy, w->data);
    else
        free(w->data);
    free(w);
    c->pending_writes--;
    if (c->state == NU__CLOSING)
        return;
    if (status < 0) {
        nu__conn_close(c);
        return;
    }
    if (c->close_after_reply) {
        nu__conn_close(c);
        return;
    }
    /* The 200 reply and the forwarded head go before any spliced byte. */
    if (c->state == NU__PIPE && !c->splicing && c->pending_writes == 0)
        nu__start_splice(c);
}

static int nu__flow_open(nu__flow_t *flow)
{
    int size;

    if (pipe2(flow->pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        flow->pipe[0] = flow->pipe[1] = -1;
        return -errno;
    }
    /* A larger pipe means fewer splice calls per MiB.  An unprivileged
     * process may be held to a smaller size, so failure is not fatal. */
    (void)fcntl(flow->pipe[1], F_SETPIPE_SZ, (int)NU__PIPE_SIZE);
    size = fcntl(flow->pipe[1], F_GETPIPE_SZ);
    flow->capacity = size > 0 ? (size_t)size : 65536;
    return 0;
}

/* Move what can move now from src through flow to dst, without blocking.
 * A short splice means the source is drained or the destination is full
 * for now, and the poll reports when that changes, so neither side is
 * tried again in this call.  Returns 0, or a negative errno when either
 * socket failed. */
static int nu__flow_pump(nu__flow_t *flow, int src, int dst,
                         atomic_uint_least64_t *counter)
{
    const unsigned flags = SPLICE_F_MOVE | SPLICE_F_NONBLOCK;
    bool dst_full = false;
    bool src_empty = false;
    bool progress = true;

    while (progress) {
        progress = false;

        if (!dst_full && flow->queued > 0) {
            ssize_t n = splice(flow->pipe[0], NULL, dst, NULL, flow->queued,
                               flags);
            if (n > 0) {
                flow->queued -= (size_t)n;
                atomic_fetch_add(counter, (uint64_t)n);
                dst_full = flow->queued > 0;
                progress = true;
            } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
                return -errno;
            } else {
                dst_full = true;
            }
        }

        if (!src_empty && !flow->eof && flow->queued < flow->capacity) {
            size_t room = flow->capacity - flow->queued;
            ssize_t n = splice(src, NULL, flow->pipe[1], NULL, room, flags);
            if (n > 0) {
                flow->queued += (size_t)n;
                src_empty = (size_t)n < room;
                progress = true;
            } else if (n == 0) {
                flow->eof = true;
            } else if (errno != EAGAIN && errno != EINTR) {
                return -errno;
            } else {
                src_empty = true;
            }
        }
    }

    if (flow->eof && flow->queued == 0 && !flow->shut) {
        flow->shut = true;
        if (shutdown(dst, SHUT_WR) != 0 && errno != ENOTCONN)
            return -errno;
    }
    return 0;
}

static int nu__poll_events(const nu__flow_t *from, const nu__flow_t *to)
{
    int events = 0;

    if (!from->eof && from->queued < from->capacity)
        events |= UV_READABLE;
    if (to->queued > 0)
        events |= UV_WRITABLE;
    return events;
}

static void nu__on_poll(uv_poll_t *handle, int status, int events);

static int nu__poll_update(uv_poll_t *poll, int events)
{
    if (events == 0)
        return uv_poll_stop(poll);
    return uv_poll_start(poll, events, nu__on_poll);
}

/* Pump both directions, then close the connection when both have ended,
 * or watch each socket for what its flows wait for. */
static void nu__splice_run(nu__conn_t *c)
{
    nu__proxy_t *proxy = c->proxy;
    int rc;

    rc = nu__flow_pump(&c->out, c->client_fd, c->upstream_fd,
                       &proxy->bytes_out);
    if (rc == 0)
        rc = nu__flow_pump(&c->in, c->upstream_fd, c->client_fd,
                           &proxy->bytes_in);
    if (rc != 0 || (c->out.shut && c->in.shut)) {
        nu__conn_close(c);
        return;
    }

    rc = nu__poll_update(&c->client_poll, nu__poll_events(&c->out, &c->in));
    if (rc == 0)
        rc = nu__poll_update(&c->upstream_poll,
                             nu__poll_events(&c->in, &c->out));
    if (rc != 0)
        nu__conn_close(c);
}

static void nu__on_poll(uv_poll_t *handle, int status, int events)
{
    nu__conn_t *c = handle->data;

    (void)events;
    if (c->state == NU__CLOSING)
        return;
    if (status < 0) {
        nu__conn_close(c);
        return;
    }
    nu__splice_run(c);
}

static int nu__dup_fd(uv_tcp_t *tcp, int *out)
{
    uv_os_fd_t fd;
    int rc = uv_fileno((uv_handle_t *)tcp, &fd);

    if (rc != 0)
        return rc;
    *out = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    return *out >= 0 ? 0 : -errno;
}

static void nu__start_splice(nu__conn_t *c)
{
    uv_loop_t *loop = &c->proxy->loop;
    int rc;

    rc = nu__dup_fd(&c->client, &c->client_fd);
    if (rc == 0)
        rc = nu__dup_fd(&c->upstream, &c->upstream_fd);
    if (rc == 0)
        rc = nu__flow_open(&c->out);
    if (rc == 0)
        rc = nu__flow_open(&c->in);
    if (rc == 0)
        rc = uv_poll_init(loop, &c->client_poll, c->client_fd);
    if (rc != 0) {
        nu_log(NU_LOG_WARN, "net", "proxy of %s cannot splice %s:%d: %s",
               c->proxy->net->host_if, c->host, c->port, uv_strerror(rc));
        nu__conn_close(c);
        return;
    }
    rc = uv_poll_init(loop, &c->upstream_poll, c->upstream_fd);
    if (rc != 0) {
        /* Close the one poll that exists; nu__conn_close closes both. */
        c->client_poll.data = c;
        c->open_handles++;
        uv_close((uv_handle_t *)&c->client_poll, nu__on_close);
        nu_log(NU_LOG_WARN, "net", "proxy of %s cannot splice %s:%d: %s",
               c->proxy->net->host_if, c->host, c->port, uv_strerror(rc));
        nu__conn_close(c);
        return;
    }
    c->client_poll.data = c;
    c->upstream_poll.data = c;
    c->open_handles += 2;
    c->splicing = true;
    nu__splice_run(c);
}

static void nu__start_pipe(nu__conn_t *c)
{
    c->state = NU__PIPE;
    if (c->forward != NULL && c->forward_len > 0) {
        atomic_fetch_add(&c->proxy->bytes_out, c->forward_len);
        if (nu__send(c, false, c->forward, c->forward_len, false) != 0) {
            c->forward = NULL;
            nu__conn_close(c);
            return;
        }
        c->forward = NULL;
        c->forward_len = 0;
    }
    if (c->pending_writes == 0)
        nu__start_splice(c);
}

/* --- dialing ---------------------------------------------------------- */

static void nu__on_connect(uv_connect_t *req, int status)
{
    nu__conn_t *c = req->data;

    if (c->state == NU__CLOSING)
        return;
    if (status < 0) {
        nu__deny(c, 502, NULL, uv_strerror(status));
        return;
    }
    nu__start_pipe(c);
}

/* Connect to the checked address c->addr_be. */
static void nu__dial(nu__conn_t *c)
{
    struct sockaddr_in sa = { .sin_family = AF_INET,
                              .sin_port = htons((uint16_t)c->port),
                              .sin_addr.s_addr = c->addr_be };

    uv_tcp_init(&c->proxy->loop, &c->upstream);
    c->upstream.data = c;
    c->upstream_init = true;
    c->open_handles++;
    c->connect_req.data = c;
    int rc = uv_tcp_connect(&c->connect_req, &c->upstream,
                            (const struct sockaddr *)&sa, nu__on_connect);
    if (rc != 0)
        nu__deny(c, 502, NULL, uv_strerror(rc));
}

static void nu__on_head_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);
static void nu__check_hello(nu__conn_t *c);

/* The destination address is checked: a tunnel now gets its 200 and waits
 * for the ClientHello, a plain request is sent on. */
static void nu__resolved(nu__conn_t *c, uint32_t addr_be)
{
    static const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";
    char *reply;

    c->addr_be = addr_be;
    if (!c->tunnel) {
        nu__dial(c);
        return;
    }

    reply = strdup(ok);
    if (reply == NULL || nu__send(c, true, reply, sizeof ok - 1, false) != 0) {
        nu__conn_close(c);
        return;
    }
    c->replied = true;
    c->state = NU__HELLO;
    uv_read_start((uv_stream_t *)&c->client, nu__on_alloc, nu__on_head_read);
    nu__check_hello(c);
}

static void nu__on_resolved(uv_getaddrinfo_t *req, int status,
                            struct addrinfo *res)
{
    nu__conn_t *c = req->data;
    uint32_t addr = 0;
    bool found = false;

    /* Check every address; connect only to one that passed. */
    for (struct addrinfo *ai = status == 0 ? res : NULL;
         ai != NULL && addr == 0; ai = ai->ai_next) {
        uint32_t a;

        if (ai->ai_family != AF_INET)
            continue;
        a = ((struct sockaddr_in *)ai->ai_addr)->sin_addr.s_addr;
        found = true;
        if (!nu__net_addr_forbidden(c->proxy->net, a, c->port))
            addr = a;
    }
    uv_freeaddrinfo(res);
    if (--c->open_handles == 0) {
        nu__conn_free(c);
        return;
    }
    if (c->state == NU__CLOSING)
        return;
    if (!found) {
        nu__deny(c, 502, NULL, "the name does not resolve to an IPv4 address "
                 "(the proxy connects over IPv4 only)");
        return;
    }
    if (addr == 0) {
        nu__deny(c, 403, "private_address",
                 "the name resolves only to addresses pods may not "
                 "reach (private, loopback, link-local or this host's); "
                 "name the address in network.allow to reach it");
        return;
    }
    nu__resolved(c, addr);
}

static void nu__resolve(nu__conn_t *c)
{
    const char *pinned = nu__net_hosts_lookup(
        (const char *const *)c->proxy->net->hosts, c->host);
    struct in_addr in;
    struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM };

    c->state = NU__DIALING;
    uv_read_stop((uv_stream_t *)&c->client);
    if (inet_pton(AF_INET, c->host, &in) == 1 ||
        (pinned != NULL && inet_pton(AF_INET, pinned, &in) == 1)) {
        if (nu__net_addr_forbidden(c->proxy->net, in.s_addr, c->port))
            nu__deny(c, 403, "private_address",
                     "the name resolves to an address pods may not "
                     "reach (private, loopback, link-local or this host's); "
                     "name the address in network.allow to reach it");
        else
            nu__resolved(c, in.s_addr);
        return;
    }
    c->gai.data = c;
    c->open_handles++;
    if (uv_getaddrinfo(&c->proxy->loop, &c->gai, nu__on_resolved, c->host,
                       NULL, &hints) != 0) {
        c->open_handles--;
        nu__deny(c, 502, NULL, "the name does not resolve");
    }
}

/* --- request head ----------------------------------------------------- */

/* Canonicalize "host[:port]" (authority form) into c->host / c->port. */
static bool nu__authority(const char *scheme, const char *authority,
                          size_t len, char *host, int *port)
{
    char url[NU_URL_HOST_MAX + 32];
    nu_url_t u;

    if (len == 0 || len > NU_URL_HOST_MAX)
        return false;
    snprintf(url, sizeof url, "%s://%.*s/", scheme, (int)len, authority);
    if (nu_url_parse(url, &u, NULL) != NU_OK)
        return false;
    snprintf(host, NU_URL_HOST_MAX, "%s", u.host);
    *port = u.port;
    return true;
}

/* Find header name (case-insensitive) in head; returns its value and
 * length, or NULL. */
static const char *nu__header(const char *head, const char *name, size_t *len)
{
    size_t nlen = strlen(name);
    const char *p = strstr(head, "\r\n");

    while (p != NULL && p[2] != '\r') {
        p += 2;
        if (strncasecmp(p, name, nlen) == 0 && p[nlen] == ':') {
            const char *v = p + nlen + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            const char *e = strstr(v, "\r\n");
            *len = e != NULL ? (size_t)(e - v) : strlen(v);
            while (*len > 0 && (v[*len - 1] == ' ' || v[*len - 1] == '\t'))
                (*len)--;
            return v;
        }
        p = strstr(p, "\r\n");
    }
    return NULL;
}

/* Count the header lines named name (case-insensitive) in head. */
static size_t nu__header_count(const char *head, const char *name)
{
    size_t nlen = strlen(name);
    size_t count = 0;
    const char *p = strstr(head, "\r\n");

    while (p != NULL && p[2] != '\r') {
        p += 2;
        if (strncasecmp(p, name, nlen) == 0 && p[nlen] == ':')
            count++;
        p = strstr(p, "\r\n");
    }
    return count;
}

/* Is the peer allowed to use this proxy?  The pod is; any other peer must
 * send the owner's credential, which only the owner's web_fetch has. */
static bool nu__peer_allowed(nu__conn_t *c)
{
    const char *value;
    size_t len = 0;
    const char *want = c->proxy->auth_header;
    unsigned char diff = 0;

    if (c->from_pod)
        return true;
    value = nu__header(c->buf, "Proxy-Authorization", &len);
    if (value == NULL || len != strlen(want) ||
        nu__header_count(c->buf, "Proxy-Authorization") != 1)
        return false;
    for (size_t i = 0; i < len; i++)
        diff |= (unsigned char)(value[i] ^ want[i]);
    return diff == 0;
}

static bool nu__hop_header(const char *line)
{
    static const char *const names[] = { "connection:", "proxy-connection:",
                                         "proxy-authorization:", "keep-alive:" };
    for (size_t i = 0; i < 4; i++)
        if (strncasecmp(line, names[i], strlen(names[i])) == 0)
            return true;
    return false;
}

/* Build the origin-form request for upstream. */
static char *nu__rewrite(const char *method, const char *path,
                         const char *version, const char *head,
                         const char *rest, size_t rest_len, size_t *out_len)
{
    size_t cap = strlen(head) + strlen(path) + rest_len + 64;
    char *out = malloc(cap);
    size_t n;
    const char *p = strstr(head, "\r\n");

    if (out == NULL)
        return NULL;
    n = (size_t)snprintf(out, cap, "%s %s %s\r\n", method, path, version);
    while (p != NULL && p[2] != '\r') {
        const char *line = p + 2;
        const char *e = strstr(line, "\r\n");
        size_t len = e != NULL ? (size_t)(e - line) : strlen(line);
        if (!nu__hop_header(line)) {
            memcpy(out + n, line, len);
            n += len;
            memcpy(out + n, "\r\n", 2);
            n += 2;
        }
        p = e;
    }
    n += (size_t)snprintf(out + n, cap - n, "Connection: close\r\n\r\n");
    memcpy(out + n, rest, rest_len);
    *out_len = n + rest_len;
    return out;
}

static void nu__handle_http(nu__conn_t *c, char *method, char *target,
                            char *version, size_t head_len)
{
    const char *hv;
    size_t hlen = 0;
    char host[NU_URL_HOST_MAX];
    int port = 0;
    const char *path;
    nu_url_t u;

    if (strncasecmp(target, "http://", 7) != 0 ||
        nu_url_parse(target, &u, NULL) != NU_OK) {
        nu__deny(c, 400, "bad_request",
                 "expected an absolute http:// URL (use CONNECT for https)");
        return;
    }
    snprintf(c->host, sizeof c->host, "%s", u.host);
    c->port = u.port;

    if (nu__header_count(c->buf, "Host") > 1) {
        nu__deny(c, 400, "bad_request", "more than one Host header");
        return;
    }
    hv = nu__header(c->buf, "Host", &hlen);
    if (hv == NULL || !nu__authority("http", hv, hlen, host, &port) ||
        strcmp(host, c->host) != 0 || port != c->port) {
        nu__deny(c, 403, "host_mismatch",
                 "the Host header does not match the request URL");
        return;
    }
    if (!nu__policy_allows(c->proxy->net, c->host, c->port)) {
        nu__deny(c, 403, "not_in_policy",
                 "the destination is not in the pod's network policy");
        return;
    }

    path = strchr(target + 7, '/');
    c->forward = nu__rewrite(method, path != NULL ? path : "/", version, c->buf,
                             c->buf + head_len, c->len - head_len,
                             &c->forward_len);
    if (c->forward == NULL) {
        nu__conn_close(c);
        return;
    }
    nu__resolve(c);
}

static void nu__check_hello(nu__conn_t *c)
{
    char sni[NU_URL_HOST_MAX];
    struct in_addr in;
    int rc;

    if (inet_pton(AF_INET, c->host, &in) == 1) {
        rc = 0;
    } else {
        rc = nu__sni_parse((const uint8_t *)c->buf, c->len, sni, sizeof sni);
        if (rc == -1 && c->len < NU__HELLO_MAX)
            return;  /* wait for more */
        if (rc != 1 || strcasecmp(sni, c->host) != 0) {
            nu__deny(c, 403, rc == 1 ? "sni_mismatch" : "bad_request",
                     rc == 1 ? "the TLS SNI does not match the CONNECT target"
                             : "expected a TLS ClientHello with SNI");
            return;
        }
    }
    c->forward = c->buf;
    c->forward_len = c->len;
    c->buf = NULL;
    c->len = 0;
    c->state = NU__DIALING;
    uv_read_stop((uv_stream_t *)&c->client);
    nu__dial(c);
}

static void nu__handle_connect(nu__conn_t *c, char *target, size_t head_len)
{
    c->tunnel = true;
    if (!nu__authority("https", target, strlen(target), c->host, &c->port) ||
        strchr(target, ':') == NULL) {
        nu__deny(c, 400, "bad_request", "expected CONNECT host:port");
        return;
    }
    if (!nu__policy_allows(c->proxy->net, c->host, c->port)) {
        nu__deny(c, 403, "not_in_policy",
                 "the destination is not in the pod's network policy");
        return;
    }

    /* Bytes after the head are the start of the ClientHello; they wait
     * in buf until the target is resolved and the 200 is sent. */
    memmove(c->buf, c->buf + head_len, c->len - head_len);
    c->len -= head_len;
    c->buf[c->len] = '\0';
    nu__resolve(c);
}

static void nu__parse_head(nu__conn_t *c, size_t head_len)
{
    char line[NU__HEAD_MAX];
    char *method, *target, *version, *save = NULL;
    const char *eol = strstr(c->buf, "\r\n");

    memcpy(line, c->buf, (size_t)(eol - c->buf));
    line[eol - c->buf] = '\0';
    method = strtok_r(line, " ", &save);
    target = strtok_r(NULL, " ", &save);
    version = strtok_r(NULL, " ", &save);
    if (method == NULL || target == NULL || version == NULL ||
        strtok_r(NULL, " ", &save) != NULL ||
        strncmp(version, "HTTP/1.", 7) != 0) {
        nu__deny(c, 400, "bad_request", "malformed request line");
        return;
    }
    if (!nu__peer_allowed(c)) {
        nu__deny(c, 403, "foreign_peer", "only the pod may use this proxy");
        return;
    }
    if (strcmp(method, "CONNECT") == 0)
        nu__handle_connect(c, target, head_len);
    else
        nu__handle_http(c, method, target, version, head_len);
}

static void nu__on_head_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    nu__conn_t *c = s->data;
    size_t cap = c->state == NU__HEAD ? NU__HEAD_MAX : NU__HELLO_MAX;

    if (n <= 0) {
        nu__buf_put(c->proxy, buf->base);
        if (n < 0)
            nu__conn_close(c);
        return;
    }
    if (c->len + (size_t)n > cap) {
        nu__buf_put(c->proxy, buf->base);
        nu__deny(c, 400, "bad_request", "request head too large");
        return;
    }
    memcpy(c->buf + c->len, buf->base, (size_t)n);
    c->len += (size_t)n;
    c->buf[c->len] = '\0';
    nu__buf_put(c->proxy, buf->base);

    if (c->state == NU__HELLO) {
        nu__check_hello(c);
        return;
    }
    if (memchr(c->buf, '\0', c->len) != NULL) {
        nu__deny(c, 400, "bad_request", "NUL byte in the request head");
        return;
    }
    char *end = strstr(c->buf, "\r\n\r\n");
    if (end != NULL)
        nu__parse_head(c, (size_t)(end - c->buf) + 4);
}

static void nu__on_accept(uv_stream_t *server, int status)
{
    nu__proxy_t *proxy = server->data;
    nu__conn_t *c;

    if (status < 0)
        return;
    c = calloc(1, sizeof *c);
    if (c != NULL)
        c->buf = malloc(NU__HELLO_MAX + 1);
    if (c == NULL || c->buf == NULL) {
        free(c);
        return;
    }
    c->proxy = proxy;
    c->client_fd = c->upstream_fd = -1;
    for (int i = 0; i < 2; i++)
        c->out.pipe[i] = c->in.pipe[i] = -1;
    uv_tcp_init(&proxy->loop, &c->client);
    c->client.data = c;
    c->open_handles = 1;
    proxy->live++;
    if (uv_accept(server, (uv_stream_t *)&c->client) != 0) {
        nu__conn_close(c);
        return;
    }

    struct sockaddr_storage peer;
    int peer_len = sizeof peer;
    if (uv_tcp_getpeername(&c->client, (struct sockaddr *)&peer,
                           &peer_len) == 0 && peer.ss_family == AF_INET)
        c->from_pod = ((struct sockaddr_in *)&peer)->sin_addr.s_addr ==
                      proxy->pod_addr_be;

    if (proxy->live > NU_NET_PROXY_MAX_CONNS) {
        nu__deny(c, 503, "connection_limit",
                 "too many open connections from this pod (the "
                 "limit is " NU__STR(NU_NET_PROXY_MAX_CONNS) ")");
        return;
    }
    atomic_fetch_add(&proxy->connections, 1);
    uv_read_start((uv_stream_t *)&c->client, nu__on_alloc, nu__on_head_read);
}

/* --- proxy thread ----------------------------------------------------- */

static void nu__close_walk(uv_handle_t *handle, void *arg)
{
    (void)arg;
    if (uv_is_closing(handle))
        return;
    if ((handle->type == UV_TCP || handle->type == UV_POLL) &&
        handle->data != NULL && handle->data != ((nu__proxy_t *)arg)) {
        nu__conn_close(handle->data);
        return;
    }
    uv_close(handle, NULL);
}

/* Close a connection whose destination the current policy no longer
 * allows.  Connections still reading their request are checked when they
 * name a destination. */
static void nu__recheck_walk(uv_handle_t *handle, void *arg)
{
    nu__proxy_t *proxy = arg;
    nu__conn_t *c = handle->data;

    if (uv_is_closing(handle) || handle->type != UV_TCP || c == NULL ||
        handle->data == proxy || handle != (uv_handle_t *)&c->client ||
        c->state == NU__CLOSING || c->host[0] == '\0')
        return;
    if (!nu__policy_allows(proxy->net, c->host, c->port) ||
        (c->addr_be != 0 &&
         nu__net_addr_forbidden(proxy->net, c->addr_be, c->port))) {
        nu_log(NU_LOG_INFO, "net", "proxy: closing a connection to %s:%d "
               "that the narrowed policy no longer allows", c->host,
               c->port);
        nu__conn_close(c);
    }
}

static void nu__on_recheck(uv_async_t *async)
{
    nu__proxy_t *proxy = async->data;
    uv_walk(&proxy->loop, nu__recheck_walk, proxy);
}

void nu__proxy_recheck(nu__proxy_t *proxy)
{
    if (proxy != NULL)
        uv_async_send(&proxy->recheck);
}

static void nu__on_stop(uv_async_t *async)
{
    nu__proxy_t *proxy = async->data;
    uv_walk(&proxy->loop, nu__close_walk, proxy);
}

static void *nu__proxy_main(void *arg)
{
    nu__proxy_t *proxy = arg;
    sigset_t pipe_set;

    /* A write to a connection the peer closed must fail with EPIPE, not
     * kill the host process; SIGPIPE is per-thread for socket writes. */
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, NULL);
    uv_run(&proxy->loop, UV_RUN_DEFAULT);
    return NULL;
}

/* Make the credential of this process's web_fetch (128 random bits) and
 * the Proxy-Authorization value that carries it. */
static int nu__proxy_credential(nu_net_t *net, nu__proxy_t *proxy)
{
    unsigned char secret[16];
    char hex[33];
    char *b64;
    size_t b64_len = 0;
    struct in_addr pod;

    if (getrandom(secret, sizeof secret, 0) != (ssize_t)sizeof secret)
        return NU_EIO;
    for (size_t i = 0; i < sizeof secret; i++)
        snprintf(hex + 2 * i, 3, "%02x", secret[i]);
    snprintf(net->proxy_credential, sizeof net->proxy_credential,
             "nucleus:%s", hex);
    b64 = nu__base64_encode((const unsigned char *)net->proxy_credential,
                            strlen(net->proxy_credential), &b64_len);
    if (b64 == NULL) {
        errno = ENOMEM;
        return NU_ENOMEM;
    }
    snprintf(proxy->auth_header, sizeof proxy->auth_header, "Basic %s", b64);
    free(b64);

    if (inet_pton(AF_INET, net->pod_addr, &pod) != 1) {
        errno = EINVAL;
        return NU_EINVAL;
    }
    proxy->pod_addr_be = pod.s_addr;
    return NU_OK;
}

int nu__proxy_start(nu_net_t *net, nu_err_t *err)
{
    nu__proxy_t *proxy = calloc(1, sizeof *proxy);
    struct sockaddr_in sa;
    int rc;

    if (proxy == NULL)
        return nu_err_set(err, NU_ENOMEM, "net: out of memory");
    proxy->net = net;
    pthread_mutex_init(&proxy->denied_lock, NULL);
    if (nu__proxy_credential(net, proxy) != NU_OK) {
        pthread_mutex_destroy(&proxy->denied_lock);
        free(proxy);
        return nu_err_set(err, NU_EIO, "net: cannot make the proxy "
                          "credential: %s", strerror(errno));
    }
    rc = uv_loop_init(&proxy->loop);
    if (rc != 0) {
        pthread_mutex_destroy(&proxy->denied_lock);
        free(proxy);
        return nu_err_set(err, NU_EIO, "net: cannot start the proxy loop: %s",
                          uv_strerror(rc));
    }
    proxy->loop_ready = true;
    net->proxy = proxy;

    uv_tcp_init(&proxy->loop, &proxy->listener);
    proxy->listener.data = proxy;
    uv_async_init(&proxy->loop, &proxy->stop, nu__on_stop);
    proxy->stop.data = proxy;
    uv_async_init(&proxy->loop, &proxy->recheck, nu__on_recheck);
    proxy->recheck.data = proxy;

    uv_ip4_addr(net->host_addr, NU_NET_PROXY_PORT, &sa);
    rc = uv_tcp_bind(&proxy->listener, (const struct sockaddr *)&sa, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&proxy->listener, 128, nu__on_accept);
    if (rc != 0) {
        nu_err_set(err, NU_EIO, "net: cannot listen on %s:%d: %s",
                   net->host_addr, NU_NET_PROXY_PORT, uv_strerror(rc));
        uv_close((uv_handle_t *)&proxy->listener, NULL);
        uv_close((uv_handle_t *)&proxy->stop, NULL);
        uv_close((uv_handle_t *)&proxy->recheck, NULL);
        uv_run(&proxy->loop, UV_RUN_DEFAULT);
        uv_loop_close(&proxy->loop);
        free(proxy);
        net->proxy = NULL;
        return NU_EIO;
    }
    if (pthread_create(&proxy->thread, NULL, nu__proxy_main, proxy) != 0) {
        uv_close((uv_handle_t *)&proxy->listener, NULL);
        uv_close((uv_handle_t *)&proxy->stop, NULL);
        uv_close((uv_handle_t *)&proxy->recheck, NULL);
        uv_run(&proxy->loop, UV_RUN_DEFAULT);
        uv_loop_close(&proxy->loop);
        free(proxy);
        net->proxy = NULL;
        return nu_err_set(err, NU_ENOMEM, "net: cannot start the proxy thread");
    }
    return NU_OK;
}

void nu__proxy_stop(nu__proxy_t *proxy)
{
    if (proxy == NULL)
        return;
    uv_async_send(&proxy->stop);
    pthread_join(proxy->thread, NULL);
    uv_loop_close(&proxy->loop);
    while (proxy->pool_count > 0)
        free(proxy->pool[--proxy->pool_count]);
    for (size_t i = 0; i < proxy->denied_count; i++)
        free(proxy->denied_list[i]);
    pthread_mutex_destroy(&proxy->denied_lock);
    proxy->net->proxy = NULL;
    free(proxy);
}

void nu__proxy_stats(const nu__proxy_t *proxy, nu_net_stats_t *out)
{
    nu__proxy_t *p = (nu__proxy_t *)proxy;

    out->bytes_in = atomic_load(&p->bytes_in);
    out->bytes_out = atomic_load(&p->bytes_out);
    out->connections = atomic_load(&p->connections);
    out->denied = atomic_load(&p->denied);
}

json_t *nu__proxy_denied(const nu__proxy_t *proxy)
{
    nu__proxy_t *p = (nu__proxy_t *)proxy;
    json_t *list = json_array();

    if (list == NULL)
        return NULL;
    pthread_mutex_lock(&p->denied_lock);
    for (size_t i = 0; i < p->denied_count; i++)
        json_array_append_new(list, json_string(p->denied_list[i]));
    if (p->denied_dropped > 0) {
        char more[64];
        snprintf(more, sizeof more, "... and %llu more",
                 (unsigned long long)p->denied_dropped);
        json_array_append_new(list, json_string(more));
    }
    pthread_mutex_unlock(&p->denied_lock);
    return list;
}
