/*
 * net_filter.c - the pod's packet filter with iptables (nf_tables backend).
 *
 * Why iptables-restore and not libnftnl: Debian 12 ships iptables-nft as
 * "iptables", so these rules land in nf_tables anyway, and the restore
 * format gives one atomic transaction per table with a read-back
 * (iptables-save) in the same syntax.  The rules below are written exactly
 * as iptables-save 1.8.9 prints them.  So the read-back is compared line
 * by line with what was written, and only counters are dropped.
 *
 * Pod namespace (the whole table is ours, restored with a flush):
 *   filter: INPUT, FORWARD, OUTPUT policy DROP; loopback and replies
 *   accepted; OUTPUT drops 169.254.0.0/16 and the pod range, accepts the
 *   proxy port on the host side, drops port 53, then accepts the policy's
 *   IPv4 CIDR[:port] entries (tcp and udp; an entry without a port allows
 *   every tcp and udp port except 53).  No ip6tables table: IPv6 is
 *   disabled by sysctl in the pod (net_link.c), and the read-back checks
 *   those sysctls too.
 *
 * Host (shared tables, restored with --noflush; every jump carries the
 * owner tag as a comment):
 *   FORWARD -i nuh<N> / -o nuh<N>  -> NUF<N>  the same allowlist, replies
 *                                             only towards the pod
 *   INPUT   -i nuh<N>              -> NUI<N>  the proxy port only
 *   nat POSTROUTING -s pod ! -o nuh<N> MASQUERADE
 *
 * Read-back: the rules of our chains, and the lines in the built-in chains
 * that carry our tag, are grouped by chain; built-in chains' lines are
 * compared as sets (their order among other software's rules is not
 * ours), our chains' lines in order.
 *
 * Timing: each tool start costs 4-8 ms on a loaded 2-core machine.  So
 * the host's restore and read-back run on a thread from nu_net_prepare
 * on, while the caller creates the sandbox.  The pod's run on a thread
 * while the veth is configured, and nu_net_attach waits for both.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <sched.h>
#include <spawn.h>
#include <stdarg.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "net_internal.h"
#include "nucleus/log.h"

/* Serializes host rule changes inside this process; iptables-nft restores
 * are atomic per table, so other processes can only make ours fail, not
 * corrupt them. */
static pthread_mutex_t nu__filter_lock = PTHREAD_MUTEX_INITIALIZER;

/* --- running iptables ------------------------------------------------- */

static const char *nu__tool_path(const char *name)
{
    static const char *const dirs[] = { "/usr/sbin", "/sbin", "/usr/bin" };
    static __thread char path[64];

    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dirs[i], name);
        if (access(path, X_OK) == 0)
            return path;
    }
    return NULL;
}

static void nu__close_pair(int fds[2])
{
    if (fds[0] >= 0)
        close(fds[0]);
    if (fds[1] >= 0)
        close(fds[1]);
}

/* Append what fd delivers to *buf until EOF. */
static int nu__read_all(int fd, char **buf, size_t *len)
{
    size_t cap = 4096;
    char *data = malloc(cap);

    *len = 0;
    if (data == NULL)
        return NU_ENOMEM;
    for (;;) {
        if (cap - *len < 1024) {
            char *bigger = realloc(data, cap * 2);
            if (bigger == NULL) {
                free(data);
                return NU_ENOMEM;
            }
            data = bigger;
            cap *= 2;
        }
        ssize_t n = read(fd, data + *len, cap - *len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        *len += (size_t)n;
    }
    data[*len] = '\0';
    *buf = data;
    return NU_OK;
}

/* Start argv with stdin, stdout and stderr on the given fds.  posix_spawn
 * (a vfork in glibc) does not copy the host process's page tables, which
 * fork does and which costs milliseconds in a large or sanitized process.
 * The child runs in the calling thread's network namespace, so callers
 * that target a pod enter its namespace on a thread of their own first. */
static int nu__spawn(const char *const argv[], int in, int out, int errfd,
                     pid_t *pid, nu_err_t *err)
{
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    sigset_t none, pipe_set;
    int rc;

    posix_spawn_file_actions_init(&actions);
    posix_spawnattr_init(&attr);
    sigemptyset(&none);
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    rc = posix_spawn_file_actions_adddup2(&actions, in, 0);
    if (rc == 0)
        rc = posix_spawn_file_actions_adddup2(&actions, out, 1);
    if (rc == 0)
        rc = posix_spawn_file_actions_adddup2(&actions, errfd, 2);
    /* The proxy thread blocks SIGPIPE; the tool gets the default. */
    if (rc == 0)
        rc = posix_spawnattr_setsigmask(&attr, &none);
    if (rc == 0)
        rc = posix_spawnattr_setsigdefault(&attr, &pipe_set);
    if (rc == 0)
        rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK |
                                                 POSIX_SPAWN_SETSIGDEF);
    if (rc == 0)
        rc = posix_spawn(pid, argv[0], &actions, &attr, (char *const *)argv,
                         environ);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0)
        return nu_err_errno(err, rc, "net: cannot start %s", argv[0]);
    return NU_OK;
}

/* Write input to fd.  A tool that exits early must not SIGPIPE the host
 * process: the signal is blocked on this thread and consumed if raised. */
static void nu__write_input(int fd, const char *input)
{
    size_t left = strlen(input);
    const char *p = input;
    sigset_t pipe_set, saved;
    bool broken = false;

    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &saved);
    while (left > 0) {
        ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            broken = n < 0 && errno == EPIPE;
            break;
        }
        p += n;
        left -= (size_t)n;
    }
    if (broken && !sigismember(&saved, SIGPIPE)) {
        struct timespec zero = { 0, 0 };
        (void)sigtimedwait(&pipe_set, NULL, &zero);
    }
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
}

int nu__net_exec(const char *const argv[], const char *input, char **output,
                 nu_err_t *err)
{
    int in[2] = { -1, -1 }, out[2] = { -1, -1 }, errp[2] = { -1, -1 };
    char *text = NULL, *errtext = NULL;
    size_t len = 0, errlen = 0;
    int status = 0;
    pid_t pid;
    int rc = NU_EIO;

    if (output != NULL)
        *output = NULL;
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0 ||
        pipe2(errp, O_CLOEXEC) != 0) {
        rc = nu_err_errno(err, errno, "net: cannot create a pipe");
        goto out;
    }

    rc = nu__spawn(argv, in[0], out[1], errp[1], &pid, err);
    if (rc != NU_OK)
        goto out;
    close(in[0]);
    in[0] = -1;
    close(out[1]);
    out[1] = -1;
    close(errp[1]);
    errp[1] = -1;

    /* Only restores take input, and they print little (a pipe buffer
     * holds 64 KiB), while saves take none.  So writing all input before
     * reading cannot deadlock. */
    if (input != NULL)
        nu__write_input(in[1], input);
    close(in[1]);
    in[1] = -1;

    rc = NU_EIO;
    if (nu__read_all(out[0], &text, &len) != NU_OK ||
        nu__read_all(errp[0], &errtext, &errlen) != NU_OK) {
        rc = nu_err_set(err, NU_ENOMEM, "net: out of memory");
    }
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (rc == NU_ENOMEM)
        goto out;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char *nl = errtext != NULL ? strchr(errtext, '\n') : NULL;
        if (nl != NULL)
            *nl = '\0';
        rc = nu_err_set(err, NU_EIO, "net: %s failed (status %d): %s", argv[0],
                        WIFEXITED(status) ? WEXITSTATUS(status) : -1,
                        errtext != NULL ? errtext : "");
        goto out;
    }
    rc = NU_OK;
    if (output != NULL) {
        *output = text;
        text = NULL;
    }

out:
    free(text);
    free(errtext);
    nu__close_pair(in);
    nu__close_pair(out);
    nu__close_pair(errp);
    return rc;
}

/* Run an iptables tool in the calling thread's network namespace. */
static int nu__iptables(const char *tool, const char *const *args,
                        const char *input, char **output, nu_err_t *err)
{
    const char *argv[8];
    const char *path = nu__tool_path(tool);
    size_t n = 0;

    if (path == NULL)
        return nu_err_set(err, NU_ENOTSUP, "net: cannot find %s (install the "
                          "iptables package)", tool);
    argv[n++] = path;
    for (size_t i = 0; args != NULL && args[i] != NULL && n < 7; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    return nu__net_exec(argv, input, output, err);
}

/* --- rule text -------------------------------------------------------- */

typedef struct {
    char *data;
    size_t len;
    size_t cap;
    bool failed;
} nu__buf_t;

static void nu__buf_printf(nu__buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void nu__buf_printf(nu__buf_t *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (b->failed)
        return;
    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap == 0 ? 4096 : b->cap * 2;
        char *bigger = realloc(b->data, cap);
        if (bigger == NULL || n < 0) {
            b->failed = true;
            return;
        }
        b->data = bigger;
        b->cap = cap;
    }
}

/* An allow entry as iptables prints it: "10.0.0.0/8", port 0 for any. */
typedef struct {
    char cidr[48];
    int port;
} nu__allow_t;

/* Parse an IPv4 "CIDR[:port]" allow entry; false for IPv6 entries and
 * anything else (IPv6 is disabled in the pod). */
static bool nu__allow_parse(const char *entry, nu__allow_t *out)
{
    char addr[32];
    int prefix = 32;
    const char *colon = strchr(entry, ':');
    const char *slash;
    size_t len = colon != NULL ? (size_t)(colon - entry) : strlen(entry);
    struct in_addr in;

    if (entry[0] == '[' || (colon != NULL && strchr(colon + 1, ':') != NULL) ||
        len >= sizeof addr)
        return false;
    memcpy(addr, entry, len);
    addr[len] = '\0';
    slash = strchr(addr, '/');
    if (slash != NULL) {
        prefix = atoi(slash + 1);
        addr[slash - addr] = '\0';
    }
    if (inet_pton(AF_INET, addr, &in) != 1 || prefix < 0 || prefix > 32)
        return false;
    uint32_t mask = prefix == 0 ? 0 : 0xffffffffu << (32 - prefix);
    in.s_addr = htonl(ntohl(in.s_addr) & mask);
    inet_ntop(AF_INET, &in, addr, sizeof addr);
    snprintf(out->cidr, sizeof out->cidr, "%s/%d", addr, prefix);
    out->port = colon != NULL ? atoi(colon + 1) : 0;
    return out->port >= 0 && out->port <= 65535;
}

/* Emit the allow rules for chain ("OUTPUT" in the pod, "NUF<N>" on the
 * host).  src is "" or "-s <pod>/32", iface is "-o nup<N>" or "-i nuh<N>".
 * Options are joined by single spaces in iptables-save's order (-s, -d,
 * -i/-o, -p), and a 0.0.0.0/0 destination is left out as iptables-save
 * does, so the read-back matches. */
static void nu__emit_allow(nu__buf_t *b, const nu_net_t *net,
                           const char *chain, const char *src,
                           const char *iface)
{
    const nu_strset_t *allow = &net->perm.network.allow;
    size_t count = allow->top ? 1 : allow->count;

    for (size_t i = 0; i < count; i++) {
        nu__allow_t a;
        char match[160];

        if (allow->top) {
            snprintf(a.cidr, sizeof a.cidr, "0.0.0.0/0");
            a.port = 0;
        } else if (!nu__allow_parse(allow->items[i], &a)) {
            continue;
        }

        bool any = strcmp(a.cidr, "0.0.0.0/0") == 0;
        snprintf(match, sizeof match, "%s%s%s%s%s", src,
                 src[0] != '\0' ? " " : "", any ? "" : "-d ",
                 any ? "" : a.cidr, any ? "" : " ");
        for (int proto = 0; proto < 2; proto++) {
            const char *p = proto == 0 ? "tcp" : "udp";
            if (a.port != 0)
                nu__buf_printf(b, "-A %s %s%s -p %s -m %s --dport %d "
                               "-j ACCEPT\n", chain, match, iface, p, p,
                               a.port);
            else
                nu__buf_printf(b, "-A %s %s%s -p %s -j ACCEPT\n", chain,
                               match, iface, p);
        }
    }
}

static char *nu__pod_rules(const nu_net_t *net)
{
    nu__buf_t b = { 0 };
    char iface[32];

    snprintf(iface, sizeof iface, "-o %s", net->pod_if);
    nu__buf_printf(&b, "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n"
                       ":OUTPUT DROP [0:0]\n");
    nu__buf_printf(&b, "-A INPUT -i lo -j ACCEPT\n"
                       "-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED "
                       "-j ACCEPT\n");
    nu__buf_printf(&b, "-A OUTPUT -o lo -j ACCEPT\n"
                       "-A OUTPUT -m conntrack --ctstate RELATED,ESTABLISHED "
                       "-j ACCEPT\n");
    nu__buf_printf(&b, "-A OUTPUT -d 169.254.0.0/16 -j DROP\n");
    nu__buf_printf(&b, "-A OUTPUT -d %s/32 %s -p tcp -m tcp --dport %d "
                       "-j ACCEPT\n", net->host_addr, iface, NU_NET_PROXY_PORT);
    nu__buf_printf(&b, "-A OUTPUT -d %s -j DROP\n", net->range);
    nu__buf_printf(&b, "-A OUTPUT -p udp -m udp --dport 53 -j DROP\n"
                       "-A OUTPUT -p tcp -m tcp --dport 53 -j DROP\n");
    nu__emit_allow(&b, net, "OUTPUT", "", iface);
    nu__buf_printf(&b, "COMMIT\n");
    if (b.failed) {
        free(b.data);
        return NULL;
    }
    return b.data;
}

static char *nu__host_filter(const nu_net_t *net)
{
    nu__buf_t b = { 0 };
    unsigned n = net->index;
    char src[48];
    char iface[32];

    snprintf(src, sizeof src, "-s %s/32", net->pod_addr);
    snprintf(iface, sizeof iface, "-i %s", net->host_if);
    nu__buf_printf(&b, "*filter\n:NUF%u - [0:0]\n:NUI%u - [0:0]\n", n, n);
    nu__buf_printf(&b, "-A INPUT -i %s -m comment --comment %s -j NUI%u\n",
                   net->host_if, net->owner_tag, n);
    nu__buf_printf(&b, "-A FORWARD -i %s -m comment --comment %s -j NUF%u\n",
                   net->host_if, net->owner_tag, n);
    nu__buf_printf(&b, "-A FORWARD -o %s -m comment --comment %s -j NUF%u\n",
                   net->host_if, net->owner_tag, n);
    nu__buf_printf(&b, "-A NUF%u -o %s -m conntrack --ctstate "
                       "RELATED,ESTABLISHED -j ACCEPT\n", n, net->host_if);
    nu__buf_printf(&b, "-A NUF%u -o %s -j DROP\n", n, net->host_if);
    nu__buf_printf(&b, "-A NUF%u -d 169.254.0.0/16 -j DROP\n", n);
    nu__buf_printf(&b, "-A NUF%u -d %s -j DROP\n", n, net->range);
    nu__buf_printf(&b, "-A NUF%u -p udp -m udp --dport 53 -j DROP\n"
                       "-A NUF%u -p tcp -m tcp --dport 53 -j DROP\n", n, n);
    {
        char chain[16];
        snprintf(chain, sizeof chain, "NUF%u", n);
        nu__emit_allow(&b, net, chain, src, iface);
    }
    nu__buf_printf(&b, "-A NUF%u -j DROP\n", n);
    nu__buf_printf(&b, "-A NUI%u -m conntrack --ctstate RELATED,ESTABLISHED "
                       "-j ACCEPT\n", n);
    nu__buf_printf(&b, "-A NUI%u -s %s/32 -d %s/32 -p tcp -m tcp --dport %d "
                       "-j ACCEPT\n", n, net->pod_addr, net->host_addr,
                   NU_NET_PROXY_PORT);
    nu__buf_printf(&b, "-A NUI%u -j DROP\nCOMMIT\n", n);
    if (b.failed) {
        free(b.data);
        return NULL;
    }
    return b.data;
}

static char *nu__host_nat(const nu_net_t *net)
{
    char *text = NULL;

    if (asprintf(&text, "*nat\n-A POSTROUTING -s %s/32 ! -o %s -m comment "
                        "--comment %s -j MASQUERADE\nCOMMIT\n",
                 net->pod_addr, net->host_if, net->owner_tag) < 0)
        return NULL;
    return text;
}

/* Turn the built-in chains' "-A" lines into "-I CHAIN 1" so our jumps come
 * before other software's rules. */
static char *nu__insert_form(const char *rules)
{
    nu__buf_t b = { 0 };
    const char *line = rules;

    while (*line != '\0') {
        const char *end = strchr(line, '\n');
        size_t len = end != NULL ? (size_t)(end - line) : strlen(line);
        const char *builtin[] = { "-A INPUT ", "-A FORWARD ", "-A POSTROUTING " };
        bool done = false;

        for (size_t i = 0; i < 3 && !done; i++) {
            size_t plen = strlen(builtin[i]);
            if (len > plen && strncmp(line, builtin[i], plen) == 0) {
                const char *chain = builtin[i] + 3;
                nu__buf_printf(&b, "-I %.*s 1 %.*s\n",
                               (int)(strlen(chain) - 1), chain,
                               (int)(len - plen), line + plen);
                done = true;
            }
        }
        if (!done)
            nu__buf_printf(&b, "%.*s\n", (int)len, line);
        line += len + (end != NULL ? 1 : 0);
    }
    if (b.failed) {
        free(b.data);
        return NULL;
    }
    return b.data;
}

/* --- read-back -------------------------------------------------------- */

typedef struct {
    char *chain;
    char *text;
    size_t order;
    bool builtin;
} nu__line_t;

static int nu__line_cmp(const void *pa, const void *pb)
{
    const nu__line_t *a = pa, *b = pb;
    int c = strcmp(a->chain, b->chain);

    if (c != 0)
        return c;
    if (a->builtin) {
        c = strcmp(a->text, b->text);
        if (c != 0)
            return c;
    }
    return a->order < b->order ? -1 : a->order > b->order;
}

/* Does chain name one of the per-pod chains of net (host side)? */
static bool nu__our_chain(const nu_net_t *net, const char *chain, size_t len)
{
    char f[16], i[16];

    snprintf(f, sizeof f, "NUF%u", net->index);
    snprintf(i, sizeof i, "NUI%u", net->index);
    return (len == strlen(f) && strncmp(chain, f, len) == 0) ||
           (len == strlen(i) && strncmp(chain, i, len) == 0);
}

/* Does a line carry our owner tag and name this pod's host interface?
 * The tag names the owner process, which may hold many pods, so the
 * interface picks this pod's lines. */
static bool nu__our_tagged_line(const nu_net_t *net, const char *line,
                                size_t len)
{
    char in_match[32], out_match[32];

    if (memmem(line, len, net->owner_tag, strlen(net->owner_tag)) == NULL)
        return false;
    snprintf(in_match, sizeof in_match, " -i %s ", net->host_if);
    snprintf(out_match, sizeof out_match, " -o %s ", net->host_if);
    return memmem(line, len, in_match, strlen(in_match)) != NULL ||
           memmem(line, len, out_match, strlen(out_match)) != NULL;
}

/* Collect the lines of text that concern this pod, grouped by chain.
 * whole: every rule and chain line (the pod's own table); otherwise only
 * our chains and lines carrying our tag.  Counters are dropped. */
static int nu__collect(const nu_net_t *net, const char *text, bool whole,
                       nu__line_t **out, size_t *count)
{
    nu__line_t *lines = NULL;
    size_t n = 0, cap = 0;
    const char *line = text;

    while (line != NULL && *line != '\0') {
        const char *end = strchr(line, '\n');
        size_t len = end != NULL ? (size_t)(end - line) : strlen(line);
        const char *chain = NULL;
        size_t chain_len = 0;
        bool keep = false;

        if (len > 3 && strncmp(line, "-A ", 3) == 0) {
            chain = line + 3;
            chain_len = strcspn(chain, " \n");
        } else if (len > 1 && line[0] == ':') {
            chain = line + 1;
            chain_len = strcspn(chain, " \n");
            const char *bracket = memchr(line, '[', len);
            if (bracket != NULL)
                len = (size_t)(bracket - line);
        }
        if (chain != NULL) {
            bool ours = !whole && nu__our_chain(net, chain, chain_len);
            bool tagged = !whole && nu__our_tagged_line(net, line, len);
            keep = whole || ours || tagged;
        }
        if (keep) {
            if (n == cap) {
                cap = cap == 0 ? 32 : cap * 2;
                nu__line_t *bigger = realloc(lines, cap * sizeof *lines);
                if (bigger == NULL)
                    goto nomem;
                lines = bigger;
            }
            while (len > 0 && line[len - 1] == ' ')
                len--;
            lines[n].chain = strndup(chain, chain_len);
            lines[n].text = strndup(line, len);
            lines[n].order = n;
            lines[n].builtin = whole || !nu__our_chain(net, chain, chain_len);
            n++;
            if (lines[n - 1].chain == NULL || lines[n - 1].text == NULL)
                goto nomem;
        }
        line = end != NULL ? end + 1 : NULL;
    }
    if (lines != NULL && !whole)
        qsort(lines, n, sizeof *lines, nu__line_cmp);
    *out = lines;
    *count = n;
    return NU_OK;

nomem:
    for (size_t i = 0; i < n; i++) {
        free(lines[i].chain);
        free(lines[i].text);
    }
    free(lines);
    return NU_ENOMEM;
}

static void nu__lines_free(nu__line_t *lines, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(lines[i].chain);
        free(lines[i].text);
    }
    free(lines);
}

/* Compare the expected rules with an iptables-save output. */
static int nu__compare(const nu_net_t *net, const char *where,
                       const char *expected, const char *actual, bool whole,
                       nu_err_t *err)
{
    nu__line_t *want = NULL, *have = NULL;
    size_t nwant = 0, nhave = 0;
    int rc;

    rc = nu__collect(net, expected, whole, &want, &nwant);
    if (rc == NU_OK)
        rc = nu__collect(net, actual, whole, &have, &nhave);
    if (rc != NU_OK) {
        rc = nu_err_set(err, rc, "net: out of memory");
        goto out;
    }

    for (size_t i = 0; i < nwant || i < nhave; i++) {
        if (i < nwant && i < nhave && strcmp(want[i].text, have[i].text) == 0)
            continue;
        rc = nu_err_set(err, NU_EPOLICY,
                        "net: %s filter of %s differs: expected '%s', found "
                        "'%s'", where, net->host_if,
                        i < nwant ? want[i].text : "(nothing)",
                        i < nhave ? have[i].text : "(nothing)");
        goto out;
    }
    rc = NU_OK;

out:
    nu__lines_free(want, nwant);
    nu__lines_free(have, nhave);
    return rc;
}

/* One filter job, on a thread of its own: restore rules (optional), read
 * them back and compare (optional), then check that IPv6 is off
 * (optional).  A job for the pod first enters the pod's network namespace,
 * which setns(2) does for the calling thread only.  Jobs for the pod and
 * the host run concurrently, since each tool start costs a few
 * milliseconds. */
struct nu__job {
    nu_net_t *net;
    int netns_fd;               /* -1: the host's namespace */
    const char *const *restore_args;
    char *input;                /* rules to restore (owned), or NULL */
    bool host_lock;             /* hold nu__filter_lock while restoring */
    const char *const *save_args;
    const char *where;          /* "pod" or "host", for messages */
    const char *expected;       /* rules to compare the read-back with */
    bool whole;                 /* nu__collect's whole, see there */
    bool ipv6;                  /* check the pod's disable_ipv6 sysctls */
    pthread_t thread;
    bool started;
    nu_err_t err;
    int rc;
};

static void *nu__job_run(void *arg)
{
    nu__job_t *job = arg;
    char *saved = NULL;

    job->rc = NU_OK;
    if (job->netns_fd >= 0 && setns(job->netns_fd, CLONE_NEWNET) != 0) {
        job->rc = nu_err_errno(&job->err, errno, "net: cannot enter the "
                               "pod's network namespace");
        return NULL;
    }

    if (job->input != NULL) {
        if (job->host_lock)
            pthread_mutex_lock(&nu__filter_lock);
        job->rc = nu__iptables("iptables-restore", job->restore_args,
                               job->input, NULL, &job->err);
        if (job->host_lock)
            pthread_mutex_unlock(&nu__filter_lock);
    }

    if (job->rc == NU_OK && job->expected != NULL) {
        job->rc = nu__iptables("iptables-save", job->save_args, NULL, &saved,
                               &job->err);
        if (job->rc == NU_OK)
            job->rc = nu__compare(job->net, job->where, job->expected, saved,
                                  job->whole, &job->err);
    }

    if (job->rc == NU_OK && job->ipv6)
        job->rc = nu__net_ipv6_check(job->net, &job->err);
    free(saved);
    return NULL;
}

static int nu__job_start(nu__job_t *job, nu_err_t *err)
{
    int rc = pthread_create(&job->thread, NULL, nu__job_run, job);

    if (rc != 0) {
        job->rc = nu_err_errno(&job->err, rc, "net: cannot start a thread "
                               "for the %s filter", job->where);
        if (err != NULL)
            *err = job->err;
        return job->rc;
    }
    job->started = true;
    return NU_OK;
}

/* Wait for job (if started) and return its result, copying its error
 * into err. */
static int nu__job_wait(nu__job_t *job, nu_err_t *err)
{
    if (job->started) {
        pthread_join(job->thread, NULL);
        job->started = false;
    }
    if (job->rc != NU_OK && err != NULL)
        *err = job->err;
    return job->rc;
}

static void nu__job_free(nu__job_t *job)
{
    if (job == NULL)
        return;
    (void)nu__job_wait(job, NULL);
    free(job->input);
    free(job);
}

static const char *const nu__save_filter[] = { "-t", "filter", NULL };
static const char *const nu__noflush[] = { "--noflush", "-w", NULL };

int nu__net_filter_check(nu_net_t *net, nu_err_t *err)
{
    nu__job_t pod = { .net = net, .netns_fd = net->pod_netns_fd,
                      .save_args = nu__save_filter, .where = "pod",
                      .expected = net->pod_rules, .whole = true,
                      .ipv6 = true, .rc = NU_EINTERNAL };
    nu__job_t host = { .net = net, .netns_fd = -1, .where = "host",
                       .expected = net->host_rules_all,
                       .rc = NU_EINTERNAL };
    int pod_rc, host_rc;
    nu_err_t host_err = { 0 };

    if (nu__job_start(&pod, err) != NU_OK)
        return pod.rc;
    if (nu__job_start(&host, NULL) != NU_OK)
        nu__job_run(&host);     /* the host's namespace is ours anyway */
    pod_rc = nu__job_wait(&pod, err);
    host_rc = nu__job_wait(&host, &host_err);
    if (pod_rc == NU_OK && host_rc != NU_OK && err != NULL)
        *err = host_err;
    return pod_rc != NU_OK ? pod_rc : host_rc;
}

/* --- install and remove ----------------------------------------------- */

/* The expected texts of every table; they depend only on what
 * nu_net_prepare fixes (index, addresses, names, policy, owner tag). */
static int nu__build_rules(nu_net_t *net, nu_err_t *err)
{
    net->pod_rules = nu__pod_rules(net);
    net->host_filter = nu__host_filter(net);
    net->host_nat = nu__host_nat(net);
    if (net->pod_rules == NULL || net->host_filter == NULL ||
        net->host_nat == NULL ||
        asprintf(&net->host_rules_all, "%s%s", net->host_filter,
                 net->host_nat) < 0) {
        net->host_rules_all = NULL;
        return nu_err_set(err, NU_ENOMEM, "net: out of memory");
    }
    return NU_OK;
}

static nu__job_t *nu__job_alloc(nu_net_t *net, nu_err_t *err)
{
    nu__job_t *job = calloc(1, sizeof *job);

    if (job == NULL) {
        nu_err_set(err, NU_ENOMEM, "net: out of memory");
        return NULL;
    }
    job->net = net;
    job->netns_fd = -1;
    job->rc = NU_EINTERNAL;
    return job;
}

int nu__net_filter_host_start(nu_net_t *net, nu_err_t *err)
{
    nu__job_t *job;
    int rc;

    rc = nu__build_rules(net, err);
    if (rc != NU_OK)
        return rc;
    job = nu__job_alloc(net, err);
    if (job == NULL)
        return NU_ENOMEM;

    /* Our chains and jumps are added to the host's shared tables
     * (--noflush), one transaction per table, then everything is read
     * back with one iptables-save. */
    job->input = nu__insert_form(net->host_rules_all);
    if (job->input == NULL) {
        free(job);
        return nu_err_set(err, NU_ENOMEM, "net: out of memory");
    }
    job->restore_args = nu__noflush;
    job->host_lock = true;
    job->where = "host";
    job->expected = net->host_rules_all;
    net->host_job = job;
    net->host_rules = true;
    return nu__job_start(job, err);
}

int nu__net_filter_pod_start(nu_net_t *net, nu_err_t *err)
{
    nu__job_t *job = nu__job_alloc(net, err);

    if (job == NULL)
        return NU_ENOMEM;

    /* The pod's filter table is replaced whole (no --noflush).  The
     * IPv6 sysctls are checked by the link setup, which writes them. */
    job->input = strdup(net->pod_rules);
    if (job->input == NULL) {
        free(job);
        return nu_err_set(err, NU_ENOMEM, "net: out of memory");
    }
    job->netns_fd = net->pod_netns_fd;
    job->save_args = nu__save_filter;
    job->where = "pod";
    job->expected = net->pod_rules;
    job->whole = true;
    net->pod_job = job;
    return nu__job_start(job, err);
}

int nu__net_filter_install_wait(nu_net_t *net, nu_err_t *err)
{
    int rc = NU_OK;

    if (net->pod_job != NULL)
        rc = nu__job_wait(net->pod_job, err);
    if (net->host_job != NULL) {
        nu_err_t host_err = { 0 };
        int host_rc = nu__job_wait(net->host_job, &host_err);
        if (rc == NU_OK && host_rc != NU_OK) {
            rc = host_rc;
            if (err != NULL)
                *err = host_err;
        }
    }
    nu__job_free(net->pod_job);
    net->pod_job = NULL;
    nu__job_free(net->host_job);
    net->host_job = NULL;
    return rc;
}

/* Build the deletion script for every rule in saved (one table's
 * iptables-save output) whose comment names a dead owner (owner == NULL)
 * or exactly owner, and flush and delete the chains they jump to.
 * Returns the number of jumps found. */
static int nu__removal(const char *saved, const char *table,
                       const char *owner, nu__buf_t *b)
{
    const char *line = saved;
    int found = 0;

    nu__buf_printf(b, "*%s\n", table);
    while (line != NULL && *line != '\0') {
        const char *end = strchr(line, '\n');
        size_t len = end != NULL ? (size_t)(end - line) : strlen(line);
        const char *tag = memmem(line, len, "--comment nucleus-", 18);

        if (len > 3 && strncmp(line, "-A ", 3) == 0 && tag != NULL) {
            char name[64];
            size_t tlen = strcspn(tag + 10, " \n");
            snprintf(name, sizeof name, "%.*s", (int)tlen, tag + 10);
            bool match = owner != NULL ? strcmp(name, owner) == 0
                                       : !nu__net_owner_alive(name);
            if (match) {
                const char *jump = memmem(line, len, " -j ", 4);
                nu__buf_printf(b, "-D %.*s\n", (int)(len - 3), line + 3);
                if (jump != NULL && strncmp(jump + 4, "NU", 2) == 0) {
                    size_t jlen = strcspn(jump + 4, " \n");
                    nu__buf_printf(b, "-F %.*s\n", (int)jlen, jump + 4);
                }
                found++;
            }
        }
        line = end != NULL ? end + 1 : NULL;
    }
    return found;
}

/* "-F NUF3" lines may repeat (two FORWARD jumps); emit each chain's
 * "-X" once after every "-D", as iptables needs. */
static void nu__finish_removal(nu__buf_t *b, size_t start)
{
    char *chains[64];
    size_t n = 0;
    const char *p = b->data != NULL ? b->data + start : NULL;

    while (p != NULL && (p = strstr(p, "\n-F ")) != NULL && n < 64) {
        size_t len = strcspn(p + 4, "\n");
        char *name = strndup(p + 4, len);
        bool dup = false;
        for (size_t i = 0; name != NULL && i < n; i++)
            dup = dup || strcmp(chains[i], name) == 0;
        if (name != NULL && !dup)
            chains[n++] = name;
        else
            free(name);
        p += 4;
    }
    for (size_t i = 0; i < n; i++) {
        nu__buf_printf(b, "-X %s\n", chains[i]);
        free(chains[i]);
    }
    nu__buf_printf(b, "COMMIT\n");
}

static int nu__remove_tagged(const char *owner, nu_err_t *err)
{
    static const char *const tables[] = { "filter", "nat" };
    int total = 0;

    for (size_t t = 0; t < 2; t++) {
        const char *args[] = { "-t", tables[t], NULL };
        const char *restore[] = { "--noflush", "-w", NULL };
        nu__buf_t b = { 0 };
        char *saved = NULL;
        int found;
        int rc = nu__iptables("iptables-save", args, NULL, &saved, err);

        if (rc != NU_OK)
            return rc;
        found = nu__removal(saved, tables[t], owner, &b);
        free(saved);
        if (found == 0) {
            free(b.data);
            continue;
        }
        nu__finish_removal(&b, 0);
        rc = b.failed ? NU_ENOMEM
                      : nu__iptables("iptables-restore", restore, b.data,
                                     NULL, err);
        free(b.data);
        if (rc != NU_OK)
            return rc;
        total += found;
    }
    return total;
}

/* Append "-D" lines for this pod's tagged rules in saved (one table), and
 * "-F"/"-X" for its chains that exist.  Returns the number of lines. */
static int nu__pod_removal(const nu_net_t *net, const char *saved,
                           nu__buf_t *b)
{
    int found = 0;

    for (const char *line = saved; line != NULL && *line != '\0';) {
        const char *end = strchr(line, '\n');
        size_t len = end != NULL ? (size_t)(end - line) : strlen(line);

        if (len > 3 && strncmp(line, "-A ", 3) == 0 &&
            nu__our_tagged_line(net, line, len)) {
            nu__buf_printf(b, "-D %.*s\n", (int)(len - 3), line + 3);
            found++;
        }
        line = end != NULL ? end + 1 : NULL;
    }
    for (int i = 0; i < 2; i++) {
        char decl[24];
        snprintf(decl, sizeof decl, "\n:NU%c%u ", i == 0 ? 'F' : 'I', net->index);
        if (strstr(saved, decl) != NULL) {
            nu__buf_printf(b, "-F %s\n", decl + 2);
            found++;
        }
    }
    return found;
}

void nu__net_filter_remove(nu_net_t *net)
{
    static const char *const tables[] = { "filter", "nat" };
    static const char *const noflush[] = { "--noflush", "-w", NULL };

    /* A restore still running would add rules after the removal. */
    nu__job_free(net->pod_job);
    net->pod_job = NULL;
    nu__job_free(net->host_job);
    net->host_job = NULL;
    if (!net->host_rules)
        return;

    pthread_mutex_lock(&nu__filter_lock);
    for (size_t t = 0; t < 2; t++) {
        const char *args[] = { "-t", tables[t], NULL };
        nu__buf_t b = { 0 };
        nu_err_t err = { 0 };
        char *saved = NULL;

        if (nu__iptables("iptables-save", args, NULL, &saved, &err) != NU_OK) {
            nu_log(NU_LOG_WARN, "net", "cannot read the host rules of %s: %s",
                   net->host_if, err.msg);
            continue;
        }
        nu__buf_printf(&b, "*%s\n", tables[t]);
        int found = nu__pod_removal(net, saved, &b);
        free(saved);
        nu__finish_removal(&b, 0);
        if (found > 0 && !b.failed &&
            nu__iptables("iptables-restore", noflush, b.data, NULL,
                         &err) != NU_OK)
            nu_log(NU_LOG_WARN, "net", "cannot remove the host rules of %s: %s",
                   net->host_if, err.msg);
        free(b.data);
    }
    pthread_mutex_unlock(&nu__filter_lock);
    net->host_rules = false;
}

int nu__net_filter_sweep(nu_err_t *err)
{
    int rc;

    if (nu__tool_path("iptables-save") == NULL)
        return 0;
    pthread_mutex_lock(&nu__filter_lock);
    rc = nu__remove_tagged(NULL, err);
    pthread_mutex_unlock(&nu__filter_lock);
    return rc;
}
