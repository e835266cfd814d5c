/*
 * sandbox_serve.h - the request loop that PID 1 of every pod runs: the pod
 * init of the ns and oci tiers (podinit.c) and the guest agent of the vm
 * tier (vm/agent/agent.c).
 *
 * The caller opens its transport and hardens itself; this part reads the
 * hello, sets up the executor and serves requests.  The guest agent links
 * sandbox_serve.c statically with a subset of core/ (vm/CMakeLists.txt),
 * so the file may use only the executor, the protocol, sandbox_stream.c
 * and sandbox_files.c.
 */
#ifndef NUCLEUS_SANDBOX_SERVE_H
#define NUCLEUS_SANDBOX_SERVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "nucleus/error.h"
#include "nucleus/executor.h"
#include "nucleus/proto.h"

/* The host-only request that replaces the commands' base environment
 * (nu_sandbox_opts_t.env, credentials included).  The vm tier's host
 * queues it right after the hello, with host entropy as its blob. */
#define NU__SET_ENV "_set_env"

/* Maximum entries of a _set_env request. */
#define NU__SET_ENV_MAX 256

typedef struct nu__serve {
    const char *name;        /* message prefix: "podinit" or "agent" */
    int fd;                  /* the stream to the host */
    int version;             /* negotiated protocol version */
    uint32_t timeout_ms;     /* default run timeout */
    size_t output_max;       /* bytes forwarded per output stream */
    bool accept_set_env;     /* serve _set_env requests */
    bool hangup_ends;        /* POLLHUP without POLLIN ends the loop */
    /* Sends an error frame in place of nu__serve_error's default, for a
     * tier that also prints errors on its console.  May be NULL. */
    void (*report_error)(int fd, const char *message);
    /* Credits the blob of a _set_env request, fresh entropy from the host,
     * to the kernel's pool.  NULL rejects a _set_env request with a blob.
     * Returns 0, or -1 with errno set. */
    int (*credit_entropy)(const uint8_t *data, size_t len);
    char **env;              /* from _set_env, NULL-terminated, or NULL */
    nu_executor_t executor;
} nu__serve_t;

/* Set s up for the stream fd; name prefixes every message. */
void nu__serve_init(nu__serve_t *s, const char *name, int fd);

/* Write an error frame with message to fd, the last frame before the
 * sender exits. */
void nu__serve_error(int fd, const char *message);

/* Read the host's hello frame within timeout_ms (-1 waits forever) and
 * negotiate the protocol version into s->version.  On NU_OK *hello (OUT)
 * is the frame, which the caller frees with nu_frame_free; on failure
 * nothing is left to free.  Returns NU_OK, NU_EPROTO or the error of
 * nu_proto_read. */
int nu__serve_hello(nu__serve_t *s, int timeout_ms, nu_frame_t *hello,
                    nu_err_t *err);

/* Open the executor on /workspace with base_env as the commands'
 * environment and the "timeout_ms" and "output_max" members of the
 * hello's config (defaults when absent or not positive). */
int nu__serve_executor(nu__serve_t *s, const json_t *config,
                       const char *const *base_env, nu_err_t *err);

/* Send the hello reply: "version" and "pid" plus the tier's own members
 * in fields, which this function consumes. */
int nu__serve_ready(nu__serve_t *s, json_t *fields, nu_err_t *err);

/* Serve requests one at a time until the host closes the stream:
 * "ping", _set_env (when accepted), _put_run_file, "run" with
 * "stream": true (sandbox_stream.c), and every other tool through
 * nu_exec_tool.  Reaps orphaned processes between requests, as PID 1
 * must.  Returns 0 when the host closed the stream, 1 after a protocol
 * error (reported to the host as an error frame). */
int nu__serve_loop(nu__serve_t *s);

/* Close the executor and wipe and free the _set_env environment. */
void nu__serve_close(nu__serve_t *s);

#endif
