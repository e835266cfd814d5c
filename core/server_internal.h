/*
 * server_internal.h - state shared by server.c (transport) and
 * server_methods.c (the JSON-RPC methods).
 */
#ifndef NUCLEUS_SERVER_INTERNAL_H
#define NUCLEUS_SERVER_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>

#include <jansson.h>

#include "nucleus/audit.h"
#include "nucleus/pod.h"
#include "nucleus/server.h"

/* Who is calling: "unix:uid=1000" or a SPIFFE ID, and what it may do. */
typedef struct nu_caller {
    char name[2100];
    bool unix_peer;              /* unix peers may call every method */
    bool trusted;                /* root or the daemon's own uid: may name
                                  * any host path as workspace or profile */
    json_t *methods;             /* TCP: globs of allowed methods */
    json_t *namespaces;          /* TCP: globs of allowed pod namespaces */
    unsigned long conn_id;       /* owning connection, for pod lifetimes */
} nu_caller_t;

typedef struct nu_server_pod {
    nu_pod_t *pod;
    char namespace_[128];
    unsigned long owner;         /* connection id; 0 when detached */
    int busy;                    /* calls in flight */
    bool closing;
    struct nu_server_pod *next;
} nu_server_pod_t;

typedef struct nu_srv {
    pthread_mutex_t lock;
    pthread_cond_t idle;         /* signalled when a pod's busy drops */
    nu_server_pod_t *pods;
    nu_audit_t *audit;
    char home[4096];
    char workspace_root[4096];   /* "" when not configured */
    char profile_dir[4096];      /* "" when not configured */
    json_t *authz;               /* the map, replaced on SIGHUP */
    unsigned long next_conn;
    long long started;
    long long calls;
    long inflight;
    bool draining;
} nu_srv_t;

/* Dispatch one JSON-RPC request for caller (thread-safe). */
json_t *nu__server_dispatch(nu_srv_t *s, const nu_caller_t *caller,
                            const char *method, json_t *params,
                            json_t **error);

/* Close every pod the connection owns (waits for their calls). */
void nu__server_drop_connection(nu_srv_t *s, unsigned long conn_id);

/* Close every pod (shutdown). */
void nu__server_close_all(nu_srv_t *s);

/* Fill caller's rights from the authorization map; false when no entry
 * matches. */
bool nu__server_authorize(nu_srv_t *s, nu_caller_t *caller);

/* Load an authorization map file; NULL with err on failure. */
json_t *nu__server_load_authz(const char *path, nu_err_t *err);

#endif
