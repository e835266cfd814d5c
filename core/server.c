/*
 * server.c - the daemon's transports: a unix socket served on a libuv
 * loop and an mTLS TCP listener whose connections each get a thread.
 *
 * Unix socket connections.  Reads arrive on the loop; complete lines are
 * handed one at a time to the libuv thread pool (uv_queue_work), so a slow
 * tool call never blocks the loop or other clients.  A connection has at
 * most one request in flight; further lines wait in its buffer, and
 * reading pauses while the buffer is over the message limit (back
 * pressure).  A client that stops reading its responses is disconnected
 * once NU__MAX_WRITE_QUEUE bytes are queued for it.  A line longer than
 * the limit is answered with an error and skipped up to its newline.
 *
 * TCP connections.  The mTLS library (mtls.h) works on blocking sockets,
 * so each accepted TCP connection is served by its own thread: handshake
 * (10 s), authorization by SPIFFE ID, then the same line protocol.
 *
 * A client that disconnects while its call runs does not cut the call
 * short: the call finishes and is audited, the response is dropped, and
 * the connection's pods are closed after it.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "nucleus/home.h"
#include "nucleus/jsonrpc.h"
#include "nucleus/log.h"
#include "nucleus/mtls.h"
#include "server_internal.h"

#define NU__MAX_WRITE_QUEUE (16u * 1024 * 1024)
#define NU__TLS_HANDSHAKE_MS 10000
#define NU__TLS_MAX_CONNECTIONS 256   /* TCP connections served at once */

typedef struct nu_server {
    nu_srv_t s;
    uv_loop_t loop;
    uv_pipe_t unix_listener;
    uv_tcp_t tcp_listener;
    bool have_unix, have_tcp;
    uv_signal_t sig_term, sig_int, sig_hup;
    nu_server_options_t opts;
    char socket_path[4200];
    char authz_path[4200];
    nu_mtls_config_t *mtls;
    struct nu_conn *conns;
    /* TLS connection threads, for shutdown. */
    pthread_mutex_t tls_lock;
    pthread_cond_t tls_done;
    int tls_threads;
    int tls_fds[NU__TLS_MAX_CONNECTIONS];
} nu_server_t;

typedef struct nu_conn {
    uv_pipe_t pipe;
    nu_server_t *server;
    nu_caller_t caller;
    char *buf;
    size_t len, cap;
    bool busy;          /* a request is on a worker */
    bool closing;       /* the handle is closing or closed */
    bool skipping;      /* discarding an over-long line */
    bool reading;
    bool shutdown;      /* uv_shutdown requested: no more writes */
    bool rejected;      /* unauthorized peer: input is discarded */
    uv_shutdown_t shutdown_req;
    struct nu_conn *next;
} nu_conn_t;

typedef struct nu_work {
    uv_work_t req;
    nu_conn_t *conn;
    char *line;
    size_t len;
    char *reply;
} nu_work_t;

typedef struct nu_write {
    uv_write_t req;
    char *data;
} nu_write_t;

static void nu__conn_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);
static void nu__conn_next(nu_conn_t *c);
static void nu__alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf);

/* --- logging ---------------------------------------------------------------- */

static void nu__log_event(nu_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void nu__log_event(nu_log_level_t level, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    nu_log(level, "server", "%s", msg);
}

/* --- writing ---------------------------------------------------------------- */

static void nu__write_done(uv_write_t *req, int status)
{
    nu_write_t *w = (nu_write_t *)req;

    (void)status;
    free(w->data);
    free(w);
}

static void nu__conn_send(nu_conn_t *c, char *line)
{
    size_t len = strlen(line);
    nu_write_t *w;
    uv_buf_t buf;

    if (uv_is_closing((uv_handle_t *)&c->pipe) || c->shutdown) {
        free(line);
        return;
    }
    if (uv_stream_get_write_queue_size((uv_stream_t *)&c->pipe) > NU__MAX_WRITE_QUEUE) {
        nu__log_event(NU_LOG_WARN, "disconnecting %s: it does not read its "
                      "responses (over %u bytes queued)", c->caller.name,
                      NU__MAX_WRITE_QUEUE);
        free(line);
        uv_read_stop((uv_stream_t *)&c->pipe);
        c->closing = true;
        return;
    }

    w = malloc(sizeof *w);
    line = realloc(line, len + 2);
    if (w == NULL || line == NULL) {
        free(w);
        free(line);
        return;
    }
    line[len] = '\n';
    line[len + 1] = '\0';
    w->data = line;
    buf = uv_buf_init(line, (unsigned)(len + 1));
    if (uv_write(&w->req, (uv_stream_t *)&c->pipe, &buf, 1, nu__write_done) != 0) {
        free(line);
        free(w);
    }
}

/* --- connection lifetime ---------------------------------------------------- */

static void nu__drop_work(uv_work_t *req)
{
    nu_work_t *w = (nu_work_t *)req;
    nu_server_t *server = w->conn->server;

    nu__server_drop_connection(&server->s, w->conn->caller.conn_id);
}

static void nu__drop_done(uv_work_t *req, int status)
{
    nu_work_t *w = (nu_work_t *)req;

    (void)status;
    json_decref(w->conn->caller.methods);
    json_decref(w->conn->caller.namespaces);
    free(w->conn->buf);
    free(w->conn);
    free(w);
}

static void nu__conn_closed(uv_handle_t *handle)
{
    nu_conn_t *c = handle->data;
    nu_server_t *server = c->server;
    nu_work_t *w;

    for (nu_conn_t **link = &server->conns; *link != NULL; link = &(*link)->next)
        if (*link == c) {
            *link = c->next;
            break;
        }

    /* Closing the connection's pods waits for their calls: off the loop. */
    w = calloc(1, sizeof *w);
    if (w == NULL) {
        free(c->buf);
        free(c);
        return;
    }
    w->conn = c;
    uv_queue_work(&server->loop, &w->req, nu__drop_work, nu__drop_done);
}

static void nu__conn_shutdown_done(uv_shutdown_t *req, int status)
{
    nu_conn_t *c = req->data;

    (void)status;
    if (!uv_is_closing((uv_handle_t *)&c->pipe))
        uv_close((uv_handle_t *)&c->pipe, nu__conn_closed);
}

/* Close the connection unless a request is still on a worker (then the
 * worker's completion closes it).  Queued responses are flushed first:
 * uv_shutdown waits for pending writes, where uv_close would cancel
 * them. */
static void nu__conn_close(nu_conn_t *c)
{
    c->closing = true;
    if (c->busy || c->shutdown || uv_is_closing((uv_handle_t *)&c->pipe))
        return;
    nu__log_event(NU_LOG_INFO, "connection closed: %s", c->caller.name);
    c->shutdown = true;
    c->shutdown_req.data = c;
    if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->pipe,
                    nu__conn_shutdown_done) != 0)
        uv_close((uv_handle_t *)&c->pipe, nu__conn_closed);
}

/* --- requests ----------------------------------------------------------------- */

static json_t *nu__dispatch_adapter(void *ctx, const char *method,
                                    json_t *params, int is_notification,
                                    json_t **error)
{
    nu_conn_t *c = ctx;

    (void)is_notification;
    return nu__server_dispatch(&c->server->s, &c->caller, method, params, error);
}

static void nu__work(uv_work_t *req)
{
    nu_work_t *w = (nu_work_t *)req;

    w->reply = nu_rpc_handle_line(w->line, w->len, w->conn->server->opts.max_message,
                                  nu__dispatch_adapter, w->conn);
}

static void nu__work_done(uv_work_t *req, int status)
{
    nu_work_t *w = (nu_work_t *)req;
    nu_conn_t *c = w->conn;
    nu_server_t *server = c->server;

    (void)status;
    pthread_mutex_lock(&server->s.lock);
    server->s.inflight--;
    pthread_mutex_unlock(&server->s.lock);

    c->busy = false;
    if (w->reply != NULL)
        nu__conn_send(c, w->reply);
    free(w->line);
    free(w);

    if (c->closing)
        nu__conn_close(c);
    else
        nu__conn_next(c);
}

static void nu__send_error_line(nu_conn_t *c, int code, const char *message)
{
    json_t *r = json_pack("{s:s, s:n, s:o}", "jsonrpc", "2.0", "id", "error",
                          nu_rpc_error(code, message, NULL));
    char *text = json_dumps(r, JSON_COMPACT);

    json_decref(r);
    if (text != NULL)
        nu__conn_send(c, text);
}

/*
 * Check whether a line is a single server.health request.  The loop thread
 * handles those itself, so a monitor gets a reply while every worker runs
 * a long tool call.  The substring test keeps other lines from being
 * parsed twice.
 */
static bool nu__is_health(const char *line, size_t len)
{
    static const char method[] = "server.health";
    json_t *request, *name;
    bool health;

    if (len == 0 || len > 4096 || line[0] != '{' ||
        memmem(line, len, method, sizeof method - 1) == NULL)
        return false;
    request = json_loadb(line, len, 0, NULL);
    name = json_object_get(request, "method");
    health = json_is_string(name) &&
             strcmp(json_string_value(name), method) == 0;
    json_decref(request);
    return health;
}

/* Handle a line on the loop thread and queue its reply.  Only for
 * server.health, which takes the server lock briefly and does no I/O. */
static void nu__answer_inline(nu_conn_t *c, const char *line, size_t len)
{
    char *reply = nu_rpc_handle_line(line, len, c->server->opts.max_message,
                                     nu__dispatch_adapter, c);

    if (reply != NULL)
        nu__conn_send(c, reply);
}

/* Start the next complete line, if any and if nothing is in flight. */
static void nu__conn_next(nu_conn_t *c)
{
    nu_server_t *server = c->server;
    size_t max = server->opts.max_message;
    char *nl;

    while (!c->busy && !c->closing) {
        nl = c->len > 0 ? memchr(c->buf, '\n', c->len) : NULL;
        if (nl == NULL) {
            if (c->len > max) {
                /* Over the limit without a newline: reply with one error,
                 * then drop bytes up to the next newline. */
                nu__send_error_line(c, NU_RPC_INVALID_REQUEST,
                                    "invalid request: message larger than the maximum");
                c->skipping = true;
                c->len = 0;
            }
            break;
        }

        size_t linelen = (size_t)(nl - c->buf);
        bool skip = c->skipping;
        c->skipping = false;

        if (!skip && nu__is_health(c->buf, linelen)) {
            nu__answer_inline(c, c->buf, linelen);
        } else if (!skip && linelen > 0 &&
                   !(linelen == 1 && c->buf[0] == '\r')) {
            nu_work_t *w = calloc(1, sizeof *w);
            char *line = malloc(linelen + 1);
            if (w == NULL || line == NULL) {
                free(w);
                free(line);
                nu__conn_close(c);
                return;
            }
            memcpy(line, c->buf, linelen);
            if (linelen > 0 && line[linelen - 1] == '\r')
                linelen--;
            line[linelen] = '\0';
            w->conn = c;
            w->line = line;
            w->len = linelen;
            c->busy = true;
            pthread_mutex_lock(&server->s.lock);
            server->s.inflight++;
            pthread_mutex_unlock(&server->s.lock);
            uv_queue_work(&server->loop, &w->req, nu__work, nu__work_done);
        }
        memmove(c->buf, nl + 1, c->len - linelen - 1);
        c->len -= linelen + 1;
    }

    /* Back pressure: stop reading while the buffer is over the limit. */
    bool want = c->len <= max && !c->closing && !server->s.draining;
    if (want && !c->reading) {
        uv_read_start((uv_stream_t *)&c->pipe, nu__alloc, nu__conn_read);
    } else if (!want && c->reading) {
        uv_read_stop((uv_stream_t *)&c->pipe);
    }
    c->reading = want;
}

static void nu__alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    nu_conn_t *c = handle->data;

    if (c->cap - c->len < suggested) {
        size_t cap = c->cap ? c->cap : 65536;
        while (cap - c->len < suggested)
            cap *= 2;
        char *grown = realloc(c->buf, cap);
        if (grown == NULL) {
            *buf = uv_buf_init(NULL, 0);
            return;
        }
        c->buf = grown;
        c->cap = cap;
    }
    *buf = uv_buf_init(c->buf + c->len, (unsigned)(c->cap - c->len));
}

static void nu__conn_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    nu_conn_t *c = stream->data;

    (void)buf;
    if (nread < 0) {
        uv_read_stop(stream);
        c->reading = false;
        if (c->rejected) {
            c->closing = true;
            if (!uv_is_closing((uv_handle_t *)&c->pipe))
                uv_close((uv_handle_t *)&c->pipe, nu__conn_closed);
            return;
        }
        nu__conn_close(c);
        return;
    }
    if (c->rejected) {
        c->len = 0;
        return;
    }
    if (c->skipping) {
        /* Discard up to the end of the over-long line. */
        char *nl = memchr(c->buf + c->len, '\n', (size_t)nread);
        if (nl == NULL)
            return;
        size_t keep = (size_t)(c->buf + c->len + nread - (nl + 1));
        memmove(c->buf, nl + 1, keep);
        c->len = keep;
        c->skipping = false;
    } else {
        c->len += (size_t)nread;
    }
    nu__conn_next(c);
}

static bool nu__uid_allowed(nu_server_t *server, uid_t uid)
{
    if (uid == 0 || uid == geteuid())
        return true;
    for (size_t i = 0; i < server->opts.nallow_uids; i++)
        if (server->opts.allow_uids[i] == uid)
            return true;
    return false;
}

static void nu__on_unix_connection(uv_stream_t *listener, int status)
{
    nu_server_t *server = listener->data;
    nu_conn_t *c;
    struct ucred cred;
    socklen_t credlen = sizeof cred;
    uv_os_fd_t fd;

    if (status < 0 || server->s.draining)
        return;
    c = calloc(1, sizeof *c);
    if (c == NULL)
        return;
    c->server = server;
    uv_pipe_init(&server->loop, &c->pipe, 0);
    c->pipe.data = c;
    if (uv_accept(listener, (uv_stream_t *)&c->pipe) != 0) {
        uv_close((uv_handle_t *)&c->pipe, (uv_close_cb)free);
        return;
    }

    pthread_mutex_lock(&server->s.lock);
    c->caller.conn_id = ++server->s.next_conn;
    pthread_mutex_unlock(&server->s.lock);
    c->next = server->conns;
    server->conns = c;

    if (uv_fileno((uv_handle_t *)&c->pipe, &fd) != 0 ||
        getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &credlen) != 0 ||
        !nu__uid_allowed(server, cred.uid)) {
        nu__log_event(NU_LOG_WARN, "rejected unix peer uid=%ld: not the server's "
                      "uid, root, or an --allow-uid",
                      credlen == sizeof cred ? (long)cred.uid : -1L);
        snprintf(c->caller.name, sizeof c->caller.name, "unix:rejected");
        nu__send_error_line(c, NU_RPC_UNAUTHORIZED, "unauthorized: your uid may "
                            "not use this socket");
        /* Half-close and discard what the peer sends until it hangs up: a
         * close with unread input would reset the connection before the
         * peer reads the error. */
        c->rejected = true;
        c->shutdown = true;
        c->shutdown_req.data = c;
        uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->pipe, NULL);
        uv_read_start((uv_stream_t *)&c->pipe, nu__alloc, nu__conn_read);
        return;
    }
    snprintf(c->caller.name, sizeof c->caller.name, "unix:uid=%ld:pid=%ld",
             (long)cred.uid, (long)cred.pid);
    c->caller.unix_peer = true;
    c->caller.trusted = cred.uid == 0 || cred.uid == geteuid();
    nu__log_event(NU_LOG_INFO, "connection accepted: %s", c->caller.name);
    nu__conn_next(c);
}

/* --- TCP with mTLS ------------------------------------------------------------ */

typedef struct nu_tls_job {
    nu_server_t *server;
    int fd;
} nu_tls_job_t;

static void nu__tls_track(nu_server_t *server, int fd, bool add)
{
    pthread_mutex_lock(&server->tls_lock);
    for (int i = 0; i < NU__TLS_MAX_CONNECTIONS; i++) {
        if (add && server->tls_fds[i] < 0) {
            server->tls_fds[i] = fd;
            break;
        }
        if (!add && server->tls_fds[i] == fd) {
            server->tls_fds[i] = -1;
            break;
        }
    }
    if (!add) {
        server->tls_threads--;
        pthread_cond_broadcast(&server->tls_done);
    }
    pthread_mutex_unlock(&server->tls_lock);
}

static json_t *nu__tls_dispatch(void *ctx, const char *method, json_t *params,
                                int is_notification, json_t **error)
{
    nu_tls_job_t *job = ((void **)ctx)[0];
    nu_caller_t *caller = ((void **)ctx)[1];

    (void)is_notification;

    /* Rights come from the current map, so a SIGHUP reload also narrows
     * connections that are already open. */
    json_decref(caller->methods);
    json_decref(caller->namespaces);
    caller->methods = caller->namespaces = NULL;
    if (!nu__server_authorize(&job->server->s, caller)) {
        *error = nu_rpc_error(NU_RPC_UNAUTHORIZED, "unauthorized: this "
                              "identity may call nothing", NULL);
        return NULL;
    }
    return nu__server_dispatch(&job->server->s, caller, method, params, error);
}

static int nu__tls_send(nu_mtls_conn_t *conn, const char *text)
{
    nu_err_t err;

    if (nu_mtls_write(conn, text, strlen(text), &err) != NU_OK ||
        nu_mtls_write(conn, "\n", 1, &err) != NU_OK)
        return -1;
    return 0;
}

static void nu__tls_serve(nu_tls_job_t *job, nu_mtls_conn_t *conn,
                          nu_caller_t *caller)
{
    size_t max = job->server->opts.max_message, len = 0, cap = 65536;
    char *buf = malloc(cap);
    bool skipping = false;
    void *ctx[2] = { job, caller };
    nu_err_t err;

    while (buf != NULL) {
        char *nl;
        while ((nl = memchr(buf, '\n', len)) != NULL) {
            size_t linelen = (size_t)(nl - buf);
            if (!skipping && linelen > 0) {
                buf[linelen] = '\0';
                char *reply = nu_rpc_handle_line(buf, linelen, max,
                                                 nu__tls_dispatch, ctx);
                int rc = reply ? nu__tls_send(conn, reply) : 0;
                free(reply);
                if (rc != 0)
                    goto out;
            }
            skipping = false;
            memmove(buf, nl + 1, len - linelen - 1);
            len -= linelen + 1;
        }
        if (len > max) {
            nu__tls_send(conn, "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":"
                         "-32600,\"message\":\"invalid request: message larger "
                         "than the maximum\"}}");
            skipping = true;
            len = 0;
        }
        if (cap - len < 65536) {
            char *grown = realloc(buf, cap * 2);
            if (grown == NULL)
                break;
            buf = grown;
            cap *= 2;
        }
        ssize_t n = nu_mtls_read(conn, buf + len, cap - len, &err);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
out:
    free(buf);
}

static void *nu__tls_thread(void *arg)
{
    nu_tls_job_t *job = arg;
    nu_server_t *server = job->server;
    nu_caller_t caller = { 0 };
    nu_mtls_conn_t *conn = NULL;
    nu_err_t err;

    /* The handshake must finish within NU__TLS_HANDSHAKE_MS; afterwards a
     * client may stay idle as long as it likes. */
    struct timeval limit = { NU__TLS_HANDSHAKE_MS / 1000, 0 }, none = { 0, 0 };
    setsockopt(job->fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    if (nu_mtls_handshake(server->mtls, job->fd, &conn, &err) != NU_OK) {
        nu__log_event(NU_LOG_WARN, "mTLS handshake failed: %s", err.msg);
        goto done;
    }
    setsockopt(job->fd, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof none);
    snprintf(caller.name, sizeof caller.name, "%s", nu_mtls_peer_id(conn)->id);
    pthread_mutex_lock(&server->s.lock);
    caller.conn_id = ++server->s.next_conn;
    pthread_mutex_unlock(&server->s.lock);

    if (!nu__server_authorize(&server->s, &caller)) {
        nu__log_event(NU_LOG_WARN, "rejected %s: no entry of the authorization "
                      "map matches it", caller.name);
        nu__tls_send(conn, "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":"
                     "-32003,\"message\":\"unauthorized: this identity may call "
                     "nothing\"}}");
        goto done;
    }
    nu__log_event(NU_LOG_INFO, "connection accepted: %s", caller.name);
    nu__tls_serve(job, conn, &caller);
    nu__log_event(NU_LOG_INFO, "connection closed: %s", caller.name);
    nu__server_drop_connection(&server->s, caller.conn_id);

done:
    json_decref(caller.methods);
    json_decref(caller.namespaces);
    nu_mtls_close(conn);
    nu__tls_track(server, job->fd, false);
    close(job->fd);
    free(job);
    return NULL;
}

static void nu__on_tcp_connection(uv_stream_t *listener, int status)
{
    nu_server_t *server = listener->data;
    uv_tcp_t *client;
    uv_os_fd_t fd;
    nu_tls_job_t *job;
    pthread_t thread;
    pthread_attr_t attr;

    if (status < 0 || server->s.draining)
        return;
    client = malloc(sizeof *client);
    if (client == NULL)
        return;
    uv_tcp_init(&server->loop, client);
    if (uv_accept(listener, (uv_stream_t *)client) != 0 ||
        uv_fileno((uv_handle_t *)client, &fd) != 0) {
        uv_close((uv_handle_t *)client, (uv_close_cb)free);
        return;
    }

    /* Hand a blocking duplicate to a thread and close the loop's handle. */
    job = malloc(sizeof *job);
    int dupfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    uv_close((uv_handle_t *)client, (uv_close_cb)free);
    if (job == NULL || dupfd < 0) {
        free(job);
        if (dupfd >= 0)
            close(dupfd);
        return;
    }
    fcntl(dupfd, F_SETFL, fcntl(dupfd, F_GETFL) & ~O_NONBLOCK);
    job->server = server;
    job->fd = dupfd;

    pthread_mutex_lock(&server->tls_lock);
    bool full = server->tls_threads >= NU__TLS_MAX_CONNECTIONS;
    if (!full)
        server->tls_threads++;
    pthread_mutex_unlock(&server->tls_lock);
    if (full) {
        nu__log_event(NU_LOG_WARN, "refused a TCP connection: %d connections "
                      "are already open", NU__TLS_MAX_CONNECTIONS);
        close(dupfd);
        free(job);
        return;
    }
    nu__tls_track(server, dupfd, true);

    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&thread, &attr, nu__tls_thread, job) != 0) {
        nu__tls_track(server, dupfd, false);
        close(dupfd);
        free(job);
    }
    pthread_attr_destroy(&attr);
}

/* --- signals and shutdown ------------------------------------------------------ */

static void nu__on_hup(uv_signal_t *handle, int signum)
{
    nu_server_t *server = handle->data;
    json_t *map;
    nu_err_t err;

    (void)signum;
    if (server->authz_path[0] == '\0') {
        nu__log_event(NU_LOG_INFO, "SIGHUP: no authorization map to reload");
        return;
    }
    map = nu__server_load_authz(server->authz_path, &err);
    if (map == NULL) {
        nu__log_event(NU_LOG_ERROR, "SIGHUP: keeping the previous authorization "
                      "map: %s", err.msg);
        return;
    }
    pthread_mutex_lock(&server->s.lock);
    json_decref(server->s.authz);
    server->s.authz = map;
    pthread_mutex_unlock(&server->s.lock);
    nu__log_event(NU_LOG_INFO, "SIGHUP: reloaded the authorization map %s "
                  "(%zu entries)", server->authz_path, json_array_size(map));
}

static void nu__on_term(uv_signal_t *handle, int signum)
{
    nu_server_t *server = handle->data;

    if (server->s.draining)
        return;
    nu__log_event(NU_LOG_INFO, "signal %d: draining in-flight calls, then "
                  "closing pods", signum);
    server->s.draining = true;

    if (server->have_unix)
        uv_close((uv_handle_t *)&server->unix_listener, NULL);
    if (server->have_tcp)
        uv_close((uv_handle_t *)&server->tcp_listener, NULL);
    /* The signal handles stay installed, so a second SIGTERM does not kill
     * the process mid-drain, but no longer keep the loop running. */
    uv_unref((uv_handle_t *)&server->sig_term);
    uv_unref((uv_handle_t *)&server->sig_int);
    uv_unref((uv_handle_t *)&server->sig_hup);

    /* Connections finish their current request, then close. */
    for (nu_conn_t *c = server->conns; c != NULL; c = c->next) {
        if (c->reading)
            uv_read_stop((uv_stream_t *)&c->pipe);
        c->reading = false;
        nu__conn_close(c);
    }

    /* TLS threads: end their reads so they return. */
    pthread_mutex_lock(&server->tls_lock);
    for (int i = 0; i < NU__TLS_MAX_CONNECTIONS; i++)
        if (server->tls_fds[i] >= 0)
            shutdown(server->tls_fds[i], SHUT_RD);
    pthread_mutex_unlock(&server->tls_lock);
}

/* --- set-up --------------------------------------------------------------------- */

void nu_server_options_init(nu_server_options_t *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->audit = 1;
}

static int nu__listen_unix(nu_server_t *server, nu_err_t *err)
{
    struct sockaddr_un probe = { .sun_family = AF_UNIX };
    int fd, rc;

    if (strlen(server->socket_path) >= sizeof probe.sun_path)
        return nu_err_set(err, NU_EINVAL, "server: socket path '%s' is too long "
                          "(max %zu bytes)", server->socket_path,
                          sizeof probe.sun_path - 1);

    /* A leftover socket file from a dead daemon is removed; a live one
     * means another daemon serves this home. */
    strcpy(probe.sun_path, server->socket_path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&probe, sizeof probe) == 0) {
        close(fd);
        return nu_err_set(err, NU_EEXIST, "server: another daemon is listening "
                          "on '%s' (stop it or use --socket)", server->socket_path);
    }
    if (fd >= 0)
        close(fd);
    unlink(server->socket_path);

    uv_pipe_init(&server->loop, &server->unix_listener, 0);
    server->unix_listener.data = server;
    mode_t old = umask(0177);
    rc = uv_pipe_bind(&server->unix_listener, server->socket_path);
    umask(old);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&server->unix_listener, 128,
                       nu__on_unix_connection);
    if (rc != 0)
        return nu_err_set(err, NU_EIO, "server: cannot listen on '%s': %s",
                          server->socket_path, uv_strerror(rc));
    /* Peer credentials decide who may talk; with --allow-uid the socket
     * must be connectable by those users too (the directory as well). */
    chmod(server->socket_path, server->opts.nallow_uids > 0 ? 0666 : 0600);
    server->have_unix = true;
    return NU_OK;
}

static int nu__listen_tcp(nu_server_t *server, nu_err_t *err)
{
    const nu_server_options_t *o = &server->opts;
    char host[256];
    const char *colon = strrchr(o->tcp_listen, ':');
    struct sockaddr_storage addr;
    unsigned long port;
    char *end;
    int rc;

    if (o->svid_dir == NULL || o->authz_path == NULL)
        return nu_err_set(err, NU_EINVAL, "server: --listen needs --svid DIR "
                          "and --authz FILE (TCP is mTLS only)");
    if (colon == NULL || (size_t)(colon - o->tcp_listen) >= sizeof host)
        return nu_err_set(err, NU_EINVAL, "server: invalid --listen '%s' "
                          "(expected HOST:PORT)", o->tcp_listen);
    memcpy(host, o->tcp_listen, (size_t)(colon - o->tcp_listen));
    host[colon - o->tcp_listen] = '\0';
    if (host[0] == '[') {
        memmove(host, host + 1, strlen(host));
        host[strlen(host) - 1] = '\0';
    }
    errno = 0;
    port = strtoul(colon + 1, &end, 10);
    if (colon[1] < '0' || colon[1] > '9' || *end != '\0' || errno != 0 ||
        port > 65535)
        return nu_err_set(err, NU_EINVAL, "server: invalid --listen port "
                          "'%s' (expected 0 to 65535)", colon + 1);
    rc = strchr(host, ':') ? uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)&addr)
                           : uv_ip4_addr(host, (int)port, (struct sockaddr_in *)&addr);
    if (rc != 0)
        return nu_err_set(err, NU_EINVAL, "server: invalid --listen address "
                          "'%s': %s", o->tcp_listen, uv_strerror(rc));

    rc = nu_mtls_config_from_dir(NU_MTLS_SERVER, o->svid_dir, o->trust_domain,
                                 0, &server->mtls, err);
    if (rc != NU_OK)
        return rc;

    snprintf(server->authz_path, sizeof server->authz_path, "%s", o->authz_path);
    server->s.authz = nu__server_load_authz(o->authz_path, err);
    if (server->s.authz == NULL)
        return NU_EPARSE;

    uv_tcp_init(&server->loop, &server->tcp_listener);
    server->tcp_listener.data = server;
    rc = uv_tcp_bind(&server->tcp_listener, (struct sockaddr *)&addr, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&server->tcp_listener, 128,
                       nu__on_tcp_connection);
    if (rc != 0)
        return nu_err_set(err, NU_EIO, "server: cannot listen on %s: %s",
                          o->tcp_listen, uv_strerror(rc));
    server->have_tcp = true;
    return NU_OK;
}

static void nu__wait_tls_threads(nu_server_t *server)
{
    pthread_mutex_lock(&server->tls_lock);
    while (server->tls_threads > 0)
        pthread_cond_wait(&server->tls_done, &server->tls_lock);
    pthread_mutex_unlock(&server->tls_lock);
}

int nu_server_run(const nu_server_options_t *opts, nu_err_t *err)
{
    nu_server_t *server = calloc(1, sizeof *server);
    char workers[16];
    int rc;

    if (server == NULL)
        return nu_err_set(err, NU_ENOMEM, "server: out of memory");
    server->opts = *opts;
    if (server->opts.max_message == 0 || server->opts.max_message > NU_RPC_MAX_MESSAGE)
        server->opts.max_message = NU_RPC_MAX_MESSAGE;
    pthread_mutex_init(&server->s.lock, NULL);
    pthread_cond_init(&server->s.idle, NULL);
    pthread_mutex_init(&server->tls_lock, NULL);
    pthread_cond_init(&server->tls_done, NULL);
    for (int i = 0; i < NU__TLS_MAX_CONNECTIONS; i++)
        server->tls_fds[i] = -1;
    server->s.started = time(NULL);
    server->s.authz = json_array();

    /* The thread pool size is read when libuv first uses it. */
    snprintf(workers, sizeof workers, "%u", opts->workers ? opts->workers : 16);
    setenv("UV_THREADPOOL_SIZE", workers, 1);
    signal(SIGPIPE, SIG_IGN);

    rc = nu_home_path(opts->home, NULL, server->s.home, sizeof server->s.home, err);
    if (rc != NU_OK)
        goto out;
    if (opts->workspace_root != NULL &&
        realpath(opts->workspace_root, server->s.workspace_root) == NULL) {
        rc = nu_err_errno(err, errno, "server: invalid --workspace-root '%s'",
                          opts->workspace_root);
        goto out;
    }
    if (opts->profile_dir != NULL &&
        realpath(opts->profile_dir, server->s.profile_dir) == NULL) {
        rc = nu_err_errno(err, errno, "server: invalid --profile-dir '%s'",
                          opts->profile_dir);
        goto out;
    }
    if (opts->socket_path != NULL)
        snprintf(server->socket_path, sizeof server->socket_path, "%s", opts->socket_path);
    else
        snprintf(server->socket_path, sizeof server->socket_path, "%s/nucleus.sock",
                 server->s.home);

    if (opts->audit) {
        nu_audit_options_t aopts = { .home = server->s.home };
        rc = nu_audit_open(&aopts, &server->s.audit, err);
        if (rc != NU_OK)
            goto out;
    }

    uv_loop_init(&server->loop);
    rc = nu__listen_unix(server, err);
    if (rc == NU_OK && opts->tcp_listen != NULL)
        rc = nu__listen_tcp(server, err);
    if (rc != NU_OK) {
        if (server->have_unix)
            uv_close((uv_handle_t *)&server->unix_listener, NULL);
        if (server->have_tcp)
            uv_close((uv_handle_t *)&server->tcp_listener, NULL);
        uv_run(&server->loop, UV_RUN_DEFAULT);
        uv_loop_close(&server->loop);
        goto out;
    }

    uv_signal_init(&server->loop, &server->sig_term);
    uv_signal_init(&server->loop, &server->sig_int);
    uv_signal_init(&server->loop, &server->sig_hup);
    server->sig_term.data = server->sig_int.data = server->sig_hup.data = server;
    uv_signal_start(&server->sig_term, nu__on_term, SIGTERM);
    uv_signal_start(&server->sig_int, nu__on_term, SIGINT);
    uv_signal_start(&server->sig_hup, nu__on_hup, SIGHUP);

    nu__log_event(NU_LOG_INFO, "listening on %s%s%s (pid %ld)", server->socket_path,
                  opts->tcp_listen ? " and mTLS " : "",
                  opts->tcp_listen ? opts->tcp_listen : "", (long)getpid());
    uv_run(&server->loop, UV_RUN_DEFAULT);

    /* Drained: every connection is closed and its work done. */
    uv_close((uv_handle_t *)&server->sig_term, NULL);
    uv_close((uv_handle_t *)&server->sig_int, NULL);
    uv_close((uv_handle_t *)&server->sig_hup, NULL);
    uv_run(&server->loop, UV_RUN_DEFAULT);
    nu__wait_tls_threads(server);
    nu__server_close_all(&server->s);
    uv_loop_close(&server->loop);
    unlink(server->socket_path);
    nu__log_event(NU_LOG_INFO, "stopped after %lld calls", server->s.calls);

out:
    if (server->s.audit != NULL) {
        nu_err_t cerr;
        nu_audit_checkpoint(server->s.audit, NULL, &cerr);
        nu_audit_close(server->s.audit);
    }
    nu_mtls_config_free(server->mtls);
    json_decref(server->s.authz);
    free(server);
    return rc;
}
