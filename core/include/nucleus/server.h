/*
 * server.h - the nucleus daemon: JSON-RPC 2.0 over a unix socket and over
 * TCP with mTLS, on libuv.
 *
 * Transport: one JSON-RPC message per line (jsonrpc.h).  A unix socket
 * client is authorized by its peer credentials (SO_PEERCRED): the server's
 * own uid, root, and the uids given in the options.  A TCP client must
 * complete an mTLS handshake with an X.509-SVID of the expected trust
 * domain.  Its SPIFFE ID is then looked up in the authorization map, a
 * JSON file:
 *
 *   [ { "id": "spiffe://nucleus.local/orchestrator/?*", glob over the ID
 *       "methods": ["tool.call", "pod.get"],           globs over methods
 *       "namespaces": ["ci"] } ]                       pod namespaces
 *
 * The first entry whose "id" matches decides, and an identity no entry
 * matches may call nothing.  Pod identities (paths /ns/NS/pod/ID, which
 * every pod's agent can read from its own SVID) match only entries with
 * "pods": true, so an agent cannot use its SVID to approve its own calls.
 * SIGHUP reloads the map.  A map that fails to load keeps the previous one
 * and logs the error.
 *
 * Methods mirror the Lua API (docs/api.md): pod.create, pod.list, pod.get,
 * pod.close, tool.call, pod.charge, approval.list, approval.grant,
 * approval.deny, pod.attenuate, pod.spawn, audit.verify, identity.bundle,
 * server.health.
 *
 * Pods belong to the connection that created them and close when it
 * disconnects, unless created with "detached": true; then they live until
 * pod.close or shutdown.  Any authorized client may call into any pod of a
 * namespace it is allowed, so a second client (a human approver's tool)
 * can grant the approvals a first one is waiting for.
 *
 * SIGTERM and SIGINT stop accepting, let in-flight calls finish (their
 * results are audited even when the client is gone), close every pod and
 * write a final audit checkpoint.
 */
#ifndef NUCLEUS_SERVER_H
#define NUCLEUS_SERVER_H

#include <stddef.h>
#include <sys/types.h>

#include "nucleus/error.h"

typedef enum { NU_LOG_FORMAT_TEXT = 0, NU_LOG_FORMAT_JSON = 1 } nu_log_format_t;

typedef struct nu_server_options {
    const char *home;            /* state directory; NULL: nu_home_path */
    const char *socket_path;     /* NULL: HOME/nucleus.sock */
    const char *tcp_listen;      /* "HOST:PORT" for mTLS, or NULL */
    const char *svid_dir;        /* server SVID (svid.pem, svid.key,
                                  * bundle.pem); required with tcp_listen */
    const char *trust_domain;    /* accepted client trust domain; NULL:
                                  * the SVID's */
    const char *authz_path;      /* authorization map for TCP clients */
    const uid_t *allow_uids;     /* extra unix peers; may be NULL */
    size_t nallow_uids;
    /* Callers other than root and the daemon's own uid (TCP clients,
     * --allow-uid peers) may only use workspaces below workspace_root and
     * profiles that are built-in names or files below profile_dir.  With
     * workspace_root NULL they cannot create pods at all. */
    const char *workspace_root;
    const char *profile_dir;
    size_t max_message;          /* bytes per line; 0: 16 MiB */
    unsigned workers;            /* concurrent tool calls; 0: 16 */
    int audit;                   /* write the audit log (default 1) */
    nu_log_format_t log_format;
} nu_server_options_t;

void nu_server_options_init(nu_server_options_t *opts);

/* Run the daemon until SIGTERM or SIGINT.  Returns NU_OK after a clean
 * shutdown, or an error (socket in use, bad TLS material, bad map) with
 * err filled before serving anything. */
int nu_server_run(const nu_server_options_t *opts, nu_err_t *err);

#endif
