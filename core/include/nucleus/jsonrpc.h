/*
 * jsonrpc.h - JSON-RPC 2.0 message handling shared by the daemon and the
 * MCP server.
 *
 * Framing is one JSON text per line (newline-delimited), as MCP's stdio
 * transport frames it.  nu_rpc_handle_line validates one line and calls a
 * dispatch function for each request; it builds the response line.
 *
 * Rules (JSON-RPC 2.0 specification, sections 4-6):
 *   - text that is not JSON: error -32700 with id null;
 *   - not an object, "jsonrpc" not "2.0", "method" not a string, "params"
 *     neither object nor array, "id" neither string, number nor null:
 *     error -32600;
 *   - a request without "id" is a notification: it is dispatched and
 *     nothing is returned, even on error;
 *   - a batch (array) is handled element by element and answered with an
 *     array of the non-notification responses; an empty batch is -32600;
 *   - a line longer than the limit is -32600 before any parsing.
 */
#ifndef NUCLEUS_JSONRPC_H
#define NUCLEUS_JSONRPC_H

#include <stddef.h>

#include <jansson.h>

#define NU_RPC_PARSE_ERROR (-32700)
#define NU_RPC_INVALID_REQUEST (-32600)
#define NU_RPC_METHOD_NOT_FOUND (-32601)
#define NU_RPC_INVALID_PARAMS (-32602)
#define NU_RPC_INTERNAL_ERROR (-32603)
/* Server-defined: the pipeline decided against the call; data carries
 * kind, reason and approval_key. */
#define NU_RPC_DENIED (-32001)
#define NU_RPC_APPROVAL_REQUIRED (-32002)
#define NU_RPC_UNAUTHORIZED (-32003)
#define NU_RPC_NOT_FOUND (-32004)

/* Default and hard maximum size of one message line, bytes. */
#define NU_RPC_MAX_MESSAGE (16u * 1024 * 1024)

/* Handle one request.  Return a new reference to the result, or NULL after
 * setting *error to a new error object (nu_rpc_error).  params may be
 * NULL.  is_notification tells whether a response will be sent. */
typedef json_t *(*nu_rpc_dispatch_fn)(void *ctx, const char *method,
                                      json_t *params, int is_notification,
                                      json_t **error);

/* An error object {code, message, data?}; data is stolen (may be NULL). */
json_t *nu_rpc_error(int code, const char *message, json_t *data);

/* Handle one line of len bytes (no newline).  Returns the response as a
 * malloc'd line without newline, or NULL when there is nothing to send
 * (notifications only) or on ENOMEM. */
char *nu_rpc_handle_line(const char *line, size_t len, size_t max_len,
                         nu_rpc_dispatch_fn dispatch, void *ctx);

#endif
