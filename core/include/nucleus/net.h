/*
 * net.h - pod networking: a veth into the pod's network namespace, a
 * default-deny packet filter, an egress proxy and the web_fetch client.
 *
 * A pod always has its own network namespace.  Without an egress policy it
 * keeps only loopback and this module is not involved.  When the pod's
 * effective network component allows anything (nu_perm_has_egress), the
 * pod gets one veth pair and a /30 from a private range:
 *
 *   host side  nuh<N>  <base + 4N + 1>/30   proxy listens here on port 3128
 *   pod side   nup<N>  <base + 4N + 2>/30   default route via the host side
 *
 * N is the /30's index in the range.  An owner reserves N by holding an
 * exclusive flock on /run/nucleus/net/nucleus-net-<N>.lock and the abstract
 * socket name @nucleus-net-<N> for the pod's lifetime (the kernel releases
 * both when the owner dies; the name is seen from every mount namespace),
 * and the veth is created with NLM_F_EXCL, so two owners never hold the
 * same N.
 *
 * Filtering uses iptables on the nf_tables backend (docs/network.md says
 * why).  In the pod's namespace every chain drops by default.  The pod may
 * send to the proxy and to the policy's CIDR[:port] entries (except port
 * 53), and receive replies.  IPv6 is disabled in the pod by sysctl, which
 * the read-back checks like a rule.  On the host, per-pod chains NUF<N> (FORWARD) and
 * NUI<N> (INPUT) repeat the same allowlist, so a pod that somehow bypasses
 * its own filter is still stopped at the host, and the host's own services
 * are reachable only at the proxy port.  169.254.0.0/16 is dropped before
 * any allow rule.  Forwarding is enabled on nuh<N> only; allowed traffic is
 * masqueraded behind the host.
 *
 * Names (DNS) never leave the pod: HTTP_PROXY/HTTPS_PROXY point at the
 * proxy, which resolves names itself and allows a destination by the
 * policy's domains (Host header for HTTP, CONNECT target plus a TLS SNI
 * that must equal it for HTTPS).
 *
 * Life cycle, as the pod pipeline uses it:
 *
 *   nu_net_prepare   policy -> handle: reserve N, start installing the
 *                    host rules on a thread; nu_net_env gives the pod's
 *                    environment
 *   nu_sandbox_create with that environment
 *   nu_net_attach    create the veth with its pod end in the pod's
 *                    namespace, address it, install the pod filter,
 *                    verify both filters, start the proxy and the drift
 *                    watcher; before the pod runs any agent command
 *   nu_net_fetch     web_fetch calls, any number, any thread
 *   nu_net_close     before nu_sandbox_close
 *
 * Every object carries the owner's pid and start time (the host veth's
 * alias, the comment of every host rule), so nu_net_sweep can remove what
 * a SIGKILLed owner left behind.  The owner also holds an abstract socket
 * named after that tag, which tells a sweeper in another PID or time
 * namespace that the owner is alive.  All functions need CAP_NET_ADMIN on the
 * host except nu_net_fetch; without it they return NU_EPERM.
 */
#ifndef NUCLEUS_NET_H
#define NUCLEUS_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "nucleus/error.h"
#include "nucleus/lattice.h"

#define NU_NET_DEFAULT_RANGE "10.213.0.0/16"
#define NU_NET_PROXY_PORT 3128
/* Connections one pod may hold open through its proxy at once; the next
 * one gets a 503.  A spliced connection uses eight of the owner's file
 * descriptors, so 128 connections use at most 1,024 of them. */
#define NU_NET_PROXY_MAX_CONNS 128
/* Failed filter read-backs in a row (not drift: the read itself failed,
 * for example for lack of file descriptors) after which the watcher kills
 * the pod, because it can no longer tell that the filter holds. */
#define NU_NET_CHECK_FAILURES_MAX 3
/* Size of nu_net_denial_t.destination: a 255-byte name, ':' and a port. */
#define NU_NET_DENIAL_DEST_MAX 264

typedef struct nu_net_opts {
    /* IPv4 range carved into /30s, prefix /8 to /28; NULL selects the
     * environment variable NUCLEUS_NET_RANGE, or NU_NET_DEFAULT_RANGE when
     * that is unset or empty.  Rejected when a host route other than the
     * default route overlaps it. */
    const char *range;
    /* Drift check period in milliseconds; 0 selects 1000. */
    uint32_t check_interval_ms;
    /* Static name-to-address entries ("name=1.2.3.4") the proxy and
     * nu_net_fetch use before the system resolver, NULL-terminated; may be
     * NULL.  For pinned mirrors and for tests. */
    const char *const *hosts;
    /* Extra CA file for nu_net_fetch (PEM); NULL uses the system store. */
    const char *ca_file;
} nu_net_opts_t;

typedef struct nu_net nu_net_t;

/* Byte counters of one pod's proxy, totals since nu_net_prepare. */
typedef struct nu_net_stats {
    uint64_t bytes_in;       /* from destinations to the pod */
    uint64_t bytes_out;      /* from the pod to destinations */
    uint64_t connections;    /* accepted by the proxy */
    uint64_t denied;         /* refused by the proxy's allowlist */
    uint64_t denials_dropped;/* refusals lost because the queue was full */
    uint64_t drift_checks;   /* filter read-backs done by the watcher */
} nu_net_stats_t;

void nu_net_opts_init(nu_net_opts_t *opts);

/* Reserve a /30 and keep a copy of perm's network component; the pod's
 * addresses and nu_net_env are fixed from here on.
 * perm must allow egress (nu_perm_has_egress).  Sweeps objects of dead
 * owners first.  On NU_OK *out (OUT) owns everything; free with
 * nu_net_close.  Returns NU_EINVAL (bad range, no egress in perm),
 * NU_EEXIST (range collides with a host route), NU_EPERM (no
 * CAP_NET_ADMIN), NU_ELIMIT (range exhausted), NU_EIO or NU_ENOMEM. */
int nu_net_prepare(const nu_perm_t *perm, const nu_net_opts_t *opts,
                   nu_net_t **out, nu_err_t *err);

/* The pod's environment additions, "NAME=value", NULL-terminated, owned
 * by net: HTTP_PROXY, HTTPS_PROXY, http_proxy, https_proxy, NO_PROXY,
 * no_proxy. */
const char *const *nu_net_env(const nu_net_t *net);

/* Create the veth with its pod end in the network namespace of pod_pid
 * (the pod init), configure it, install the pod and host filters, read both back and
 * compare them with what was written, then start the drift watcher: when
 * a later read-back differs, the watcher logs the difference and sends
 * SIGKILL to pod_pid (through a pidfd, so a reused pid is never hit).
 * Returns NU_OK, NU_EPOLICY (read-back mismatch; nothing left installed),
 * NU_EIO, NU_ESANDBOX (pod_pid gone) or NU_EINVAL (called twice). */
int nu_net_attach(nu_net_t *net, pid_t pod_pid, nu_err_t *err);

/* Read both filters back now and compare them with the installed rules.
 * Returns NU_OK or NU_EPOLICY with the first differing line in err. */
int nu_net_check(nu_net_t *net, nu_err_t *err);

/* Has the watcher killed the pod, for drift or for failed checks? */
bool nu_net_drifted(const nu_net_t *net);

/* Did the watcher kill the pod because NU_NET_CHECK_FAILURES_MAX read-backs
 * in a row failed, rather than for a rule that differed?  Meaningful when
 * nu_net_drifted is true. */
bool nu_net_check_failed(const nu_net_t *net);

/* Narrow the attached pod's network to perm's network component, for a
 * pod whose effective permission moved down (attenuation).  The proxy and
 * nu_net_fetch_pod use the new policy from their next request on.  When the
 * CIDR allow set changed, direct egress is cut entirely (fail closed):
 * the pod's default route is deleted, so only the proxy on the on-link
 * host address stays reachable.  The filters and the drift watcher stay
 * as they are.  Returns NU_OK, NU_EINVAL (perm is not below the current
 * policy, or net is not attached), NU_EIO or NU_ENOMEM; on NU_EIO the
 * policy copy is already replaced. */
int nu_net_restrict(nu_net_t *net, const nu_perm_t *perm, nu_err_t *err);

/* The destinations ("host:port") the proxy refused with a 403, distinct,
 * at most 32 plus a "... and N more" entry.  Returns a new JSON array, or
 * NULL when out of memory. */
json_t *nu_net_denied(const nu_net_t *net);

/* Refusals the proxy queues for the pod's audit log before it drops the
 * newest ones; the pod drains the queue at the start and end of every call
 * and at close. */
#define NU_NET_DENIALS_MAX 256

/* One refusal by the pod's proxy: a 403 (destination outside the policy,
 * private address, foreign peer, spoofed Host or SNI), a 400 (bad request)
 * or a 503 (over NU_NET_PROXY_MAX_CONNS).  Failed lookups and connections
 * (502) are upstream failures, not refusals, and are not queued. */
typedef struct nu_net_denial {
    char destination[NU_NET_DENIAL_DEST_MAX]; /* "host:port", "?:0" unknown */
    /* not_in_policy, private_address, foreign_peer, host_mismatch,
     * sni_mismatch, bad_request or connection_limit */
    char reason[24];
    char detail[192];            /* the message sent to the client */
    int status;                  /* HTTP status sent: 400, 403 or 503 */
    int64_t time_ms;             /* CLOCK_REALTIME, milliseconds */
    /* Refusals dropped because the queue was full just before this one
     * was queued. */
    uint64_t dropped_before;
} nu_net_denial_t;

/* Move up to max queued refusals into out, oldest first; safe against the
 * proxy thread.  Returns how many were moved. */
size_t nu_net_denials_take(nu_net_t *net, nu_net_denial_t *out, size_t max);

/* Check that the uplink (the interface of the host's IPv4 default route)
 * forwards IPv4, which direct egress to network.allow entries needs.
 * Writes the interface's name to ifname (may be "" when there is no
 * default route).  Returns NU_OK (forwarding on), NU_ENOENT (no default
 * route), NU_EPOLICY (forwarding off, and err names the sysctl that turns
 * it on) or NU_EIO. */
int nu_net_uplink_check(char *ifname, size_t size, nu_err_t *err);

/* Addresses and names, valid while net lives. */
const char *nu_net_host_addr(const nu_net_t *net); /* "10.213.0.1" */
const char *nu_net_pod_addr(const nu_net_t *net);  /* "10.213.0.2" */
const char *nu_net_host_ifname(const nu_net_t *net);
int nu_net_proxy_port(const nu_net_t *net);
void nu_net_stats(const nu_net_t *net, nu_net_stats_t *out);

/* Stop the watcher and the proxy, delete the veth (its routes go with
 * it) and every host rule of this pod.  NULL is a no-op. */
void nu_net_close(nu_net_t *net);

/* Remove veths and host rules whose owner process is gone.  Returns the
 * number of objects removed or a negative code. */
int nu_net_sweep(nu_err_t *err);

/* --- web_fetch -------------------------------------------------------- */

typedef struct nu_fetch_opts {
    size_t max_bytes;        /* body cap; 0 selects 10 MiB */
    uint32_t timeout_ms;     /* whole transfer; 0 selects 30000 */
    int max_redirects;       /* hops followed; <0 selects 5, 0 follows none */
    const char *ca_file;     /* extra CA (PEM); NULL: system store */
    const char *proxy;       /* "http://10.213.0.1:3128"; NULL connects
                              * directly (the host's own egress) */
    const char *const *hosts;/* as nu_net_opts_t.hosts */
    const char *proxy_credential; /* "user:password" sent to the proxy
                                   * (Basic); NULL sends none */
    bool insecure;           /* skip TLS verification; tests only */
} nu_fetch_opts_t;

void nu_fetch_opts_init(nu_fetch_opts_t *opts);

/* Execute one web_fetch call: call holds url, method?, headers? (object
 * of strings), body?, max_bytes?.  The scheme must be http or https and
 * every hop's host must pass nu_perm_check_host before any connection is
 * made; redirects are followed by hand, re-checked hop by hop.  *result
 * (OUT, new reference) is {"ok": true, "status", "headers", "body",
 * "truncated", "url"} or {"ok": false, "kind", "error"} with kind
 * network_denied, invalid_request, timeout, output_truncated or
 * io_error.  Returns NU_OK when *result is set, NU_ENOMEM otherwise. */
int nu_net_fetch(const nu_perm_t *perm, const json_t *call,
                 const nu_fetch_opts_t *opts, json_t **result,
                 nu_err_t *err);

/* nu_net_fetch through net's proxy, with net's policy, CA and hosts. */
int nu_net_fetch_pod(nu_net_t *net, const json_t *call, json_t **result,
                     nu_err_t *err);

#endif
