/*
 * jsonrpc.c - validate JSON-RPC 2.0 messages and build responses.
 */
#include <stdlib.h>
#include <string.h>

#include "nucleus/json.h"
#include "nucleus/jsonrpc.h"

json_t *nu_rpc_error(int code, const char *message, json_t *data)
{
    json_t *e = json_pack("{s:i, s:s}", "code", code, "message", message);

    if (e != NULL && data != NULL)
        json_object_set_new(e, "data", data);
    else
        json_decref(data);
    return e;
}

static json_t *nu__response(json_t *id, json_t *result, json_t *error)
{
    json_t *r = json_object();

    json_object_set_new(r, "jsonrpc", json_string("2.0"));
    json_object_set(r, "id", id ? id : json_null());
    if (error != NULL)
        json_object_set_new(r, "error", error);
    else
        json_object_set_new(r, "result", result ? result : json_null());
    return r;
}

static int nu__valid_id(const json_t *id)
{
    return id == NULL || json_is_string(id) || json_is_integer(id) ||
           json_is_real(id) || json_is_null(id);
}

/* Handle one request object; returns the response or NULL for a
 * notification. */
static json_t *nu__handle_one(json_t *msg, nu_rpc_dispatch_fn dispatch,
                              void *ctx)
{
    json_t *id = json_object_get(msg, "id");
    json_t *version = json_object_get(msg, "jsonrpc");
    json_t *method = json_object_get(msg, "method");
    json_t *params = json_object_get(msg, "params");
    json_t *error = NULL, *result;
    int notification;

    if (!json_is_object(msg) || !nu__valid_id(id))
        return nu__response(NULL, NULL, nu_rpc_error(NU_RPC_INVALID_REQUEST,
                            "invalid request: expected a JSON-RPC 2.0 "
                            "request object", NULL));
    notification = id == NULL;

    if (!json_is_string(version) || strcmp(json_string_value(version), "2.0") != 0)
        error = nu_rpc_error(NU_RPC_INVALID_REQUEST,
                             "invalid request: \"jsonrpc\" must be \"2.0\"", NULL);
    else if (!json_is_string(method))
        error = nu_rpc_error(NU_RPC_INVALID_REQUEST,
                             "invalid request: \"method\" must be a string", NULL);
    else if (params != NULL && !json_is_object(params) && !json_is_array(params))
        error = nu_rpc_error(NU_RPC_INVALID_REQUEST,
                             "invalid request: \"params\" must be an object "
                             "or an array", NULL);
    if (error != NULL) {
        if (notification) {
            json_decref(error);
            return NULL;
        }
        return nu__response(id, NULL, error);
    }

    result = dispatch(ctx, json_string_value(method), params, notification,
                      &error);
    if (notification) {
        json_decref(result);
        json_decref(error);
        return NULL;
    }
    if (result == NULL && error == NULL)
        error = nu_rpc_error(NU_RPC_INTERNAL_ERROR, "internal error", NULL);
    return nu__response(id, result, error);
}

static char *nu__dump(json_t *v)
{
    char *text = json_dumps(v, JSON_COMPACT);

    json_decref(v);
    return text;
}

char *nu_rpc_handle_line(const char *line, size_t len, size_t max_len,
                         nu_rpc_dispatch_fn dispatch, void *ctx)
{
    nu_err_t err;
    json_t *msg, *out;

    if (max_len == 0 || max_len > NU_RPC_MAX_MESSAGE)
        max_len = NU_RPC_MAX_MESSAGE;
    if (len > max_len)
        return nu__dump(nu__response(NULL, NULL, nu_rpc_error(
            NU_RPC_INVALID_REQUEST, "invalid request: message larger than "
            "the maximum", json_pack("{s:I}", "max_bytes", (json_int_t)max_len))));

    msg = nu_json_parse(line, len, &err);
    if (msg == NULL)
        return nu__dump(nu__response(NULL, NULL, nu_rpc_error(
            NU_RPC_PARSE_ERROR, "parse error", json_string(err.msg))));

    if (!json_is_array(msg)) {
        out = nu__handle_one(msg, dispatch, ctx);
        json_decref(msg);
        return out ? nu__dump(out) : NULL;
    }

    if (json_array_size(msg) == 0) {
        json_decref(msg);
        return nu__dump(nu__response(NULL, NULL, nu_rpc_error(
            NU_RPC_INVALID_REQUEST, "invalid request: empty batch", NULL)));
    }

    out = json_array();
    for (size_t i = 0; i < json_array_size(msg); i++) {
        json_t *r = nu__handle_one(json_array_get(msg, i), dispatch, ctx);
        if (r != NULL)
            json_array_append_new(out, r);
    }
    json_decref(msg);
    if (json_array_size(out) == 0) {
        json_decref(out);
        return NULL;
    }
    return nu__dump(out);
}
