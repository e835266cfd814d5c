/*
 * bench_net.c - pod egress setup time and egress proxy throughput, each
 * beside a baseline measured in the same run.  Needs root.
 *
 *   setup     nu_net_prepare + nu_net_attach (veth, addresses, route, pod
 *             and host filters with read-back, proxy start) into a fresh
 *             network namespace, then nu_net_close.  The baseline is "ip
 *             netns add", "ip link add ... type veth" with the peer
 *             created in it, and one iptables-restore of a two-rule table
 *             in it.
 *   proxy     a 100 MiB HTTP download from a loopback server through the
 *             pod's proxy; baseline: the same download over a direct
 *             loopback connection, alternating with it.
 *
 * Usage: bench_net [SETUPS [DOWNLOADS]]   (default 20 setups, 5 downloads
 * of each kind, at most 16)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "nucleus/lattice.h"
#include "nucleus/net.h"

#define DOWNLOAD_BYTES (100u << 20)

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* A child in a new network namespace, as a pod init would be. */
static pid_t netns_child(void)
{
    int fds[2];
    pid_t pid;
    char c;

    if (pipe(fds) != 0)
        return -1;
    pid = fork();
    if (pid == 0) {
        close(fds[0]);
        if (unshare(CLONE_NEWNET) != 0)
            _exit(1);
        if (write(fds[1], "x", 1) != 1)
            _exit(1);
        pause();
        _exit(0);
    }
    close(fds[1]);
    if (read(fds[0], &c, 1) != 1)
        pid = -1;
    close(fds[0]);
    return pid;
}

static void reap(pid_t pid)
{
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

static void perm_allow(nu_perm_t *p, const char *entry)
{
    nu_perm_init_top(p);
    nu_strset_free(&p->network.allow);
    nu_strset_free(&p->network.domains);
    nu_strset_init_empty(&p->network.allow);
    nu_strset_init_empty(&p->network.domains);
    nu_strset_add(&p->network.allow, entry);
    nu_strset_add(&p->network.domains, "example.org");
}

static int bench_setup(int n)
{
    double *ours = calloc((size_t)n, sizeof *ours);
    double *base = calloc((size_t)n, sizeof *base);
    nu_perm_t perm;
    nu_err_t err = { 0 };
    int rc = 0;

    perm_allow(&perm, "198.51.100.0/24:443");
    for (int i = 0; i < n && rc == 0; i++) {
        pid_t child = netns_child();
        nu_net_t *net = NULL;
        double t0 = now_ms();

        if (nu_net_prepare(&perm, NULL, &net, &err) != NU_OK ||
            nu_net_attach(net, child, &err) != NU_OK) {
            fprintf(stderr, "bench_net: %s\n", err.msg);
            rc = 1;
        }
        ours[i] = now_ms() - t0;
        nu_net_close(net);
        reap(child);

        t0 = now_ms();
        if (system("ip netns add nubench && "
                   "ip link add nubenchh type veth peer name nubenchp netns nubench && "
                   "printf '*filter\\n:INPUT DROP [0:0]\\n:FORWARD DROP [0:0]\\n"
                   ":OUTPUT DROP [0:0]\\n-A OUTPUT -o lo -j ACCEPT\\n"
                   "-A OUTPUT -d 198.51.100.0/24 -p tcp -m tcp --dport 443 -j ACCEPT\\n"
                   "COMMIT\\n' | ip netns exec nubench iptables-restore") != 0)
            rc = 1;
        base[i] = now_ms() - t0;
        if (system("ip link del nubenchh 2>/dev/null; ip netns del nubench") != 0)
            rc = 1;
    }
    if (rc == 0)
        printf("egress setup (prepare+attach)  median %.1f ms   baseline "
               "(ip netns add + veth + iptables-restore) median %.1f ms   "
               "n=%d\n", median(ours, n), median(base, n), n);
    nu_perm_free(&perm);
    free(ours);
    free(base);
    return rc;
}

/* --- download --------------------------------------------------------- */

static int listen_loopback(int *port)
{
    struct sockaddr_in sa = { .sin_family = AF_INET };
    socklen_t len = sizeof sa;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        listen(fd, 16) != 0 || getsockname(fd, (struct sockaddr *)&sa, &len) != 0)
        return -1;
    *port = ntohs(sa.sin_port);
    return fd;
}

/* Serve DOWNLOAD_BYTES after each request head, forever. */
static void *serve(void *arg)
{
    int lfd = *(int *)arg;
    static char chunk[1 << 16];

    memset(chunk, 'x', sizeof chunk);
    for (;;) {
        char head[4096];
        char reply[128];
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0)
            return NULL;
        if (recv(fd, head, sizeof head, 0) <= 0) {
            close(fd);
            continue;
        }
        int n = snprintf(reply, sizeof reply, "HTTP/1.1 200 OK\r\n"
                         "Content-Length: %u\r\n\r\n", DOWNLOAD_BYTES);
        if (send(fd, reply, (size_t)n, MSG_NOSIGNAL) != n) {
            close(fd);
            continue;
        }
        for (size_t left = DOWNLOAD_BYTES; left > 0;) {
            size_t k = left < sizeof chunk ? left : sizeof chunk;
            ssize_t w = send(fd, chunk, k, MSG_NOSIGNAL);
            if (w <= 0)
                break;
            left -= (size_t)w;
        }
        close(fd);
    }
}

/* Connect to addr:port, send request, read to EOF; returns MiB/s. */
static double download(const char *addr, int port, const char *request)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    static char buf[1 << 16];
    size_t total = 0;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    double t0 = now_ms();

    /* A stalled transfer fails the run instead of hanging it. */
    struct timeval timeout = { .tv_sec = 10 };

    inet_pton(AF_INET, addr, &sa.sin_addr);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout,
                             sizeof timeout) != 0 ||
        connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        send(fd, request, strlen(request), 0) < 0) {
        fprintf(stderr, "bench_net: cannot request %s:%d: %s\n", addr, port,
                strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            fprintf(stderr, "bench_net: recv from %s:%d failed after %zu "
                    "bytes: %s\n", addr, port, total, strerror(errno));
        if (n <= 0)
            break;
        total += (size_t)n;
    }
    close(fd);
    if (total < DOWNLOAD_BYTES) {
        fprintf(stderr, "bench_net: download from %s:%d ended after %zu of "
                "%u bytes\n", addr, port, total, DOWNLOAD_BYTES);
        return -1;
    }
    return (double)DOWNLOAD_BYTES / (1 << 20) / ((now_ms() - t0) / 1e3);
}

static int bench_proxy(int n)
{
    char entry[64], request[256];
    nu_perm_t perm;
    nu_net_t *net = NULL;
    nu_err_t err = { 0 };
    pthread_t thread;
    double direct[16], proxied[16];
    int port, lfd;
    pid_t child;
    int rc = 0;

    lfd = listen_loopback(&port);
    if (lfd < 0 || pthread_create(&thread, NULL, serve, &lfd) != 0)
        return 1;
    snprintf(entry, sizeof entry, "127.0.0.1:%d", port);
    perm_allow(&perm, entry);
    child = netns_child();
    if (nu_net_prepare(&perm, NULL, &net, &err) != NU_OK ||
        nu_net_attach(net, child, &err) != NU_OK) {
        fprintf(stderr, "bench_net: %s\n", err.msg);
        rc = 1;
        goto out;
    }
    snprintf(request, sizeof request, "GET http://127.0.0.1:%d/ HTTP/1.1\r\n"
             "Host: 127.0.0.1:%d\r\n\r\n", port, port);
    if (n > 16)
        n = 16;
    for (int i = 0; i < n; i++) {
        direct[i] = download("127.0.0.1", port, request);
        proxied[i] = download(nu_net_host_addr(net), nu_net_proxy_port(net),
                              request);
        if (direct[i] < 0 || proxied[i] < 0) {
            fprintf(stderr, "bench_net: a download failed\n");
            rc = 1;
            goto out;
        }
    }
    double d = median(direct, n), p = median(proxied, n);
    printf("100 MiB through the proxy  median %.0f MiB/s   baseline (direct "
           "loopback) median %.0f MiB/s   ratio %.0f%%   n=%d\n", p, d,
           100.0 * p / d, n);

out:
    nu_net_close(net);
    reap(child);
    nu_perm_free(&perm);
    return rc;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 20;
    int downloads = argc > 2 ? atoi(argv[2]) : 5;

    if (geteuid() != 0) {
        printf("bench_net: skipped: needs root (CAP_NET_ADMIN)\n");
        return 0;
    }
    if (n < 1)
        n = 20;
    if (downloads < 1)
        downloads = 5;
    signal(SIGPIPE, SIG_IGN);
    if (bench_setup(n) != 0)
        return 1;
    return bench_proxy(downloads);
}
