/*
 * mcp.h - serve a pod's tools over the Model Context Protocol.
 *
 * nu_mcp_dispatch is a nu_rpc_dispatch_fn (jsonrpc.h): feed it lines with
 * nu_rpc_handle_line.  Tools are listed only when the pod's effective
 * permission grants their operation; every call goes through nu_pod_call.
 * See core/mcp.c for the methods and the approval rules.
 */
#ifndef NUCLEUS_MCP_H
#define NUCLEUS_MCP_H

#include <jansson.h>

#include "nucleus/pod.h"

typedef struct nu_mcp nu_mcp_t;

/* Create a server for pod (borrowed; it must outlive the server).
 * Returns NU_OK or NU_ENOMEM. */
int nu_mcp_new(nu_pod_t *pod, nu_mcp_t **out);
void nu_mcp_free(nu_mcp_t *m);

json_t *nu_mcp_dispatch(void *ctx, const char *method, json_t *params,
                        int is_notification, json_t **error);

#endif
