/*
 * mcp.c - a pod's tools as a Model Context Protocol server.
 *
 * Methods: initialize (protocol version negotiation), ping, tools/list,
 * tools/call, and the notifications notifications/initialized and
 * notifications/cancelled (accepted and ignored: calls are synchronous).
 * Requests other than initialize and ping before initialize are rejected.
 *
 * Every tools/call goes through nu_pod_call.  A denial is a tool result
 * with isError true and the kind and reason in its text.  A call that
 * needs approval is also an error result naming the approval key; the
 * server exposes no tool that could grant it, so the agent cannot approve
 * its own call: approval comes from the pod's approval callback (an
 * operator's command, see nucleus mcp --approval-command) or from an
 * operator granting the key through another front end.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nucleus/jsonrpc.h"
#include "nucleus/mcp.h"

/* Newest first; a client asking for another version gets the newest. */
static const char *const nu__mcp_versions[] = {
    "2025-06-18", "2025-03-26", "2024-11-05", NULL,
};

struct nu_mcp {
    nu_pod_t *pod;
    int initialized;
    char version[16];
};

typedef struct nu_mcp_tool {
    const char *name;
    nu_op_t op;
    const char *description;
    const char *schema;   /* JSON Schema of the arguments */
} nu_mcp_tool_t;

static const nu_mcp_tool_t nu__mcp_tools[] = {
    { "read", NU_OP_READ_FILES,
      "Read a file of the workspace. Paths are relative to the workspace.",
      "{\"type\":\"object\",\"properties\":{"
      "\"path\":{\"type\":\"string\",\"description\":\"file to read\"},"
      "\"offset\":{\"type\":\"integer\",\"minimum\":0,\"description\":\"first byte\"},"
      "\"limit\":{\"type\":\"integer\",\"minimum\":0,\"description\":\"bytes to read\"}},"
      "\"required\":[\"path\"],\"additionalProperties\":false}" },
    { "write", NU_OP_WRITE_FILES,
      "Create or replace a file of the workspace.",
      "{\"type\":\"object\",\"properties\":{"
      "\"path\":{\"type\":\"string\"},\"content\":{\"type\":\"string\"},"
      "\"mode\":{\"type\":\"integer\",\"description\":\"permission bits, e.g. 420 for 0644\"}},"
      "\"required\":[\"path\",\"content\"],\"additionalProperties\":false}" },
    { "edit", NU_OP_EDIT_FILES,
      "Replace text in a file: 'old' must occur exactly once unless replace_all is true.",
      "{\"type\":\"object\",\"properties\":{"
      "\"path\":{\"type\":\"string\"},\"old\":{\"type\":\"string\"},"
      "\"new\":{\"type\":\"string\"},\"replace_all\":{\"type\":\"boolean\"}},"
      "\"required\":[\"path\",\"old\",\"new\"],\"additionalProperties\":false}" },
    { "glob", NU_OP_GLOB_SEARCH,
      "List workspace files matching a glob pattern ('**' crosses directories).",
      "{\"type\":\"object\",\"properties\":{"
      "\"pattern\":{\"type\":\"string\"},\"path\":{\"type\":\"string\"}},"
      "\"required\":[\"pattern\"],\"additionalProperties\":false}" },
    { "grep", NU_OP_GREP_SEARCH,
      "Search file contents with a PCRE2 regular expression.",
      "{\"type\":\"object\",\"properties\":{"
      "\"pattern\":{\"type\":\"string\"},\"path\":{\"type\":\"string\"},"
      "\"glob\":{\"type\":\"string\"},\"context\":{\"type\":\"integer\",\"minimum\":0},"
      "\"max\":{\"type\":\"integer\",\"minimum\":1}},"
      "\"required\":[\"pattern\"],\"additionalProperties\":false}" },
    { "run", NU_OP_RUN_BASH,
      "Run a command in the pod: 'command' is a shell string, 'argv' a list run without a shell.",
      "{\"type\":\"object\",\"properties\":{"
      "\"command\":{\"type\":\"string\"},"
      "\"argv\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"minItems\":1},"
      "\"cwd\":{\"type\":\"string\"},\"stdin\":{\"type\":\"string\"},"
      "\"env\":{\"type\":\"object\",\"additionalProperties\":{\"type\":\"string\"}},"
      "\"timeout\":{\"type\":\"number\",\"exclusiveMinimum\":0,\"description\":\"seconds\"}},"
      "\"additionalProperties\":false}" },
    { "web_fetch", NU_OP_WEB_FETCH,
      "Fetch an http or https URL through the pod's egress policy.",
      "{\"type\":\"object\",\"properties\":{"
      "\"url\":{\"type\":\"string\"},\"method\":{\"type\":\"string\"},"
      "\"headers\":{\"type\":\"object\",\"additionalProperties\":{\"type\":\"string\"}},"
      "\"body\":{\"type\":\"string\"},\"max_bytes\":{\"type\":\"integer\",\"minimum\":1}},"
      "\"required\":[\"url\"],\"additionalProperties\":false}" },
};

#define NU__MCP_NTOOLS (sizeof nu__mcp_tools / sizeof nu__mcp_tools[0])

int nu_mcp_new(nu_pod_t *pod, nu_mcp_t **out)
{
    nu_mcp_t *m = calloc(1, sizeof *m);

    if (m == NULL)
        return NU_ENOMEM;
    m->pod = pod;
    *out = m;
    return NU_OK;
}

void nu_mcp_free(nu_mcp_t *m)
{
    free(m);
}

static bool nu__tool_granted(nu_mcp_t *m, const nu_mcp_tool_t *tool)
{
    nu_perm_t perm;
    bool granted;

    if (nu_pod_effective(m->pod, &perm) != NU_OK)
        return false;
    granted = perm.caps[tool->op] != NU_NEVER;
    nu_perm_free(&perm);
    return granted;
}

static json_t *nu__initialize(nu_mcp_t *m, json_t *params, json_t **error)
{
    const char *asked = json_string_value(json_object_get(params, "protocolVersion"));
    const char *chosen = nu__mcp_versions[0];

    if (asked == NULL) {
        *error = nu_rpc_error(NU_RPC_INVALID_PARAMS, "initialize: missing "
                              "params.protocolVersion", NULL);
        return NULL;
    }
    for (int i = 0; nu__mcp_versions[i] != NULL; i++)
        if (strcmp(asked, nu__mcp_versions[i]) == 0)
            chosen = nu__mcp_versions[i];
    snprintf(m->version, sizeof m->version, "%s", chosen);
    m->initialized = 1;

    return json_pack("{s:s, s:{s:{s:b}}, s:{s:s, s:s}, s:s}",
                     "protocolVersion", chosen,
                     "capabilities", "tools", "listChanged", 0,
                     "serverInfo", "name", "nucleus", "version", NU_VERSION,
                     "instructions",
                     "Tools run inside an isolated pod under a permission "
                     "policy. A denied call returns an error result that "
                     "names the reason; a call that needs approval names "
                     "an approval key that only an operator can grant.");
}

static json_t *nu__tools_list(nu_mcp_t *m)
{
    json_t *tools = json_array();

    for (size_t i = 0; i < NU__MCP_NTOOLS; i++) {
        const nu_mcp_tool_t *t = &nu__mcp_tools[i];
        if (!nu__tool_granted(m, t))
            continue;
        json_t *schema = json_loads(t->schema, 0, NULL);
        json_array_append_new(tools, json_pack("{s:s, s:s, s:o}", "name",
                                               t->name, "description",
                                               t->description, "inputSchema",
                                               schema));
    }
    return json_pack("{s:o}", "tools", tools);
}

static const nu_mcp_tool_t *nu__find_tool(const char *name)
{
    for (size_t i = 0; i < NU__MCP_NTOOLS; i++)
        if (strcmp(nu__mcp_tools[i].name, name) == 0)
            return &nu__mcp_tools[i];
    return NULL;
}

/* Text a model reads for a successful call. */
static char *nu__result_text(const char *tool, const json_t *result)
{
    const char *content = json_string_value(json_object_get(result, "content"));
    char *text = NULL;

    if (strcmp(tool, "read") == 0 && content != NULL)
        return strdup(content);

    if (strcmp(tool, "run") == 0) {
        const char *out = json_string_value(json_object_get(result, "stdout"));
        const char *err = json_string_value(json_object_get(result, "stderr"));
        json_t *code = json_object_get(result, "exit_code");
        json_t *sig = json_object_get(result, "signal");
        if (!json_is_integer(sig))
            sig = NULL;
        if (!json_is_integer(code))
            code = NULL;
        size_t len = (out ? strlen(out) : 0) + (err ? strlen(err) : 0) + 128;

        text = malloc(len);
        if (text != NULL)
            snprintf(text, len, "%s%s%s[exit %s%lld]", out ? out : "",
                     err && err[0] ? err : "",
                     (out && out[0]) || (err && err[0]) ? "\n" : "",
                     sig ? "signal " : "",
                     (long long)json_integer_value(code ? code : sig));
        return text;
    }
    return json_dumps(result, JSON_COMPACT);
}

static json_t *nu__tool_error(const nu_call_result_t *r)
{
    const nu_decision_t *d = &r->decision;
    char text[2 * NU_ERR_MAX];

    if (d->verdict == NU_DECISION_APPROVAL)
        snprintf(text, sizeof text,
                 "approval_required: %s\napproval key: %s\nAn operator must "
                 "approve this exact call out of band (the agent cannot). "
                 "Retry the same call after approval.",
                 d->reason, d->approval_key);
    else
        snprintf(text, sizeof text, "%s: %s", nu_kind_name(d->kind), d->reason);

    json_t *structured = nu_decision_to_json(d);
    if (r->result != NULL)
        json_object_set(structured, "result", r->result);
    return json_pack("{s:[{s:s, s:s}], s:b, s:o}", "content", "type", "text",
                     "text", text, "isError", 1, "structuredContent",
                     structured);
}

static json_t *nu__tools_call(nu_mcp_t *m, json_t *params, json_t **error)
{
    const char *name = json_string_value(json_object_get(params, "name"));
    json_t *args = json_object_get(params, "arguments");
    const nu_mcp_tool_t *tool;
    nu_call_result_t r;
    json_t *call, *out;

    if (name == NULL || (args != NULL && !json_is_object(args))) {
        *error = nu_rpc_error(NU_RPC_INVALID_PARAMS, "tools/call: expected "
                              "params {name: string, arguments: object}", NULL);
        return NULL;
    }
    tool = nu__find_tool(name);
    if (tool == NULL || !nu__tool_granted(m, tool)) {
        *error = nu_rpc_error(NU_RPC_INVALID_PARAMS, "tools/call: unknown "
                              "tool", json_pack("{s:s}", "name", name));
        return NULL;
    }

    call = args ? json_deep_copy(args) : json_object();
    json_object_set_new(call, "tool", json_string(name));
    nu_pod_call(m->pod, call, &r);
    json_decref(call);

    bool ok = r.decision.verdict == NU_DECISION_ALLOW && r.result != NULL &&
              json_is_true(json_object_get(r.result, "ok"));
    if (!ok) {
        out = nu__tool_error(&r);
    } else {
        char *text = nu__result_text(name, r.result);
        out = json_pack("{s:[{s:s, s:s}], s:b, s:O}", "content", "type",
                        "text", "text", text ? text : "", "isError", 0,
                        "structuredContent", r.result);
        free(text);
    }
    nu_call_result_clear(&r);
    return out;
}

json_t *nu_mcp_dispatch(void *ctx, const char *method, json_t *params,
                        int is_notification, json_t **error)
{
    nu_mcp_t *m = ctx;

    if (strncmp(method, "notifications/", 14) == 0)
        return json_object();
    if (strcmp(method, "initialize") == 0)
        return nu__initialize(m, params, error);
    if (strcmp(method, "ping") == 0)
        return json_object();

    if (!m->initialized) {
        *error = nu_rpc_error(NU_RPC_INVALID_REQUEST, "the server is not "
                              "initialized: send initialize first", NULL);
        return NULL;
    }
    if (strcmp(method, "tools/list") == 0)
        return nu__tools_list(m);
    if (strcmp(method, "tools/call") == 0) {
        if (!json_is_object(params)) {
            *error = nu_rpc_error(NU_RPC_INVALID_PARAMS, "tools/call: params "
                                  "must be an object", NULL);
            return NULL;
        }
        return nu__tools_call(m, params, error);
    }

    (void)is_notification;
    *error = nu_rpc_error(NU_RPC_METHOD_NOT_FOUND, "method not found",
                          json_pack("{s:s}", "method", method));
    return NULL;
}
