/*
 * server_methods.c - the daemon's JSON-RPC methods.
 *
 * Every method runs on a worker thread.  The pod table is guarded by the
 * server lock; a pod in use has busy > 0, and closing it waits for its
 * calls to finish, so a call is never cut off half audited.
 */
#include <fnmatch.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nucleus/identity.h"
#include "nucleus/json.h"
#include "nucleus/jsonrpc.h"
#include "nucleus/log.h"
#include "nucleus/policy.h"
#include "server_internal.h"

/* --- authorization ------------------------------------------------------ */

json_t *nu__server_load_authz(const char *path, nu_err_t *err)
{
    json_error_t jerr;
    json_t *map = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    size_t i;
    json_t *entry;

    if (map == NULL) {
        nu_err_set(err, NU_EPARSE, "server: cannot load authorization map "
                   "'%s': %s (line %d)", path, jerr.text, jerr.line);
        return NULL;
    }
    if (!json_is_array(map))
        goto bad;
    json_array_foreach(map, i, entry) {
        if (!json_is_string(json_object_get(entry, "id")) ||
            !json_is_array(json_object_get(entry, "methods")) ||
            !json_is_array(json_object_get(entry, "namespaces")))
            goto bad;
    }
    return map;

bad:
    json_decref(map);
    nu_err_set(err, NU_EPARSE, "server: invalid authorization map '%s': "
               "expected [{\"id\": GLOB, \"methods\": [GLOB...], "
               "\"namespaces\": [GLOB...]}]", path);
    return NULL;
}

/* spiffe://TD/ns/NS/pod/ID: the identity of a pod, held by its agent. */
static bool nu__is_pod_identity(const char *id)
{
    const char *path = strncmp(id, "spiffe://", 9) == 0 ? strchr(id + 9, '/') : NULL;

    return path != NULL && fnmatch("/ns/*/pod/*", path, FNM_PATHNAME) == 0;
}

bool nu__server_authorize(nu_srv_t *s, nu_caller_t *caller)
{
    size_t i;
    json_t *entry;
    bool found = false;

    pthread_mutex_lock(&s->lock);
    json_array_foreach(s->authz, i, entry) {
        const char *pattern = json_string_value(json_object_get(entry, "id"));
        if (fnmatch(pattern, caller->name, 0) != 0)
            continue;
        if (nu__is_pod_identity(caller->name) &&
            !json_is_true(json_object_get(entry, "pods")))
            continue;
        caller->methods = json_deep_copy(json_object_get(entry, "methods"));
        caller->namespaces = json_deep_copy(json_object_get(entry, "namespaces"));
        found = true;
        break;
    }
    pthread_mutex_unlock(&s->lock);
    return found;
}

static bool nu__matches_any(const json_t *globs, const char *value)
{
    size_t i;
    json_t *g;

    json_array_foreach(globs, i, g)
        if (json_is_string(g) && fnmatch(json_string_value(g), value, 0) == 0)
            return true;
    return false;
}

static bool nu__may_call(const nu_caller_t *c, const char *method)
{
    return c->unix_peer || nu__matches_any(c->methods, method);
}

static bool nu__may_use_namespace(const nu_caller_t *c, const char *ns)
{
    return c->unix_peer || nu__matches_any(c->namespaces, ns);
}

/* --- errors --------------------------------------------------------------- */

static json_t *nu__fail(json_t **error, int code, const char *kind,
                        const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static json_t *nu__fail(json_t **error, int code, const char *kind,
                        const char *fmt, ...)
{
    char reason[NU_ERR_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    *error = nu_rpc_error(code, reason, json_pack("{s:s, s:s}", "kind", kind,
                                                  "reason", reason));
    return NULL;
}

static json_t *nu__params_error(json_t **error, const char *what)
{
    return nu__fail(error, NU_RPC_INVALID_PARAMS, "invalid_request",
                    "invalid params: %s", what);
}

static const char *nu__json_type_name(const json_t *value)
{
    switch (json_typeof(value)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER:
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "a value";
}

/*
 * Read params[name] into *out: the string, or NULL when absent.  what
 * describes the expected value ("a string pod id").  Returns false with
 * *error set when the value is present but not a string, or absent and
 * required.
 */
static bool nu__param_string(json_t *params, const char *name,
                             const char *what, bool required,
                             const char **out, json_t **error)
{
    json_t *value = json_object_get(params, name);

    *out = json_string_value(value);
    if (value == NULL && !required)
        return true;
    if (value == NULL) {
        nu__fail(error, NU_RPC_INVALID_PARAMS, "invalid_request",
                 "invalid params: missing \"%s\" (%s)", name, what);
        return false;
    }
    if (*out == NULL) {
        nu__fail(error, NU_RPC_INVALID_PARAMS, "invalid_request",
                 "invalid params: %s must be %s, not %s", name, what,
                 nu__json_type_name(value));
        return false;
    }
    return true;
}

/* --- the pod table -------------------------------------------------------- */

/* Find a pod and mark it busy; NULL (with *error) when it is unknown,
 * closing, or in a namespace the caller may not use. */
static nu_server_pod_t *nu__acquire(nu_srv_t *s, const nu_caller_t *c,
                                    json_t *params, json_t **error)
{
    const char *id;
    nu_server_pod_t *sp;

    if (!nu__param_string(params, "pod", "a string pod id", true, &id, error))
        return NULL;
    pthread_mutex_lock(&s->lock);
    for (sp = s->pods; sp != NULL; sp = sp->next)
        if (!sp->closing && strcmp(nu_pod_id(sp->pod), id) == 0)
            break;
    if (sp != NULL && !nu__may_use_namespace(c, sp->namespace_))
        sp = NULL;
    if (sp != NULL)
        sp->busy++;
    pthread_mutex_unlock(&s->lock);

    if (sp == NULL)
        nu__fail(error, NU_RPC_NOT_FOUND, "not_found", "no pod '%s' (or not "
                 "in a namespace you may use)", id);
    return sp;
}

static void nu__release(nu_srv_t *s, nu_server_pod_t *sp)
{
    pthread_mutex_lock(&s->lock);
    sp->busy--;
    pthread_cond_broadcast(&s->idle);
    pthread_mutex_unlock(&s->lock);
}

static void nu__register(nu_srv_t *s, nu_pod_t *pod, const char *ns,
                         unsigned long owner)
{
    nu_server_pod_t *sp = calloc(1, sizeof *sp);

    if (sp == NULL) {
        nu_pod_close(pod);
        return;
    }
    sp->pod = pod;
    snprintf(sp->namespace_, sizeof sp->namespace_, "%s", ns);
    sp->owner = owner;
    pthread_mutex_lock(&s->lock);
    sp->next = s->pods;
    s->pods = sp;
    pthread_mutex_unlock(&s->lock);
}

/* Unlink sp once its calls are done; the caller closes the pod.  Children
 * of the pod (registered by pod.spawn) are unlinked too, because closing
 * the parent closes them. */
static void nu__unlink_locked(nu_srv_t *s, nu_server_pod_t *sp)
{
    sp->closing = true;
    while (sp->busy > 0)
        pthread_cond_wait(&s->idle, &s->lock);
    for (nu_server_pod_t **link = &s->pods; *link != NULL; link = &(*link)->next)
        if (*link == sp) {
            *link = sp->next;
            break;
        }
}

/* Unlink the table entries of pod's children and their descendants:
 * closing a pod closes all of them. */
static void nu__unlink_descendants(nu_srv_t *s, nu_pod_t *pod)
{
    json_t *info = nu_pod_info(pod);
    json_t *children = json_object_get(info, "children");
    size_t i;
    json_t *child;

    json_array_foreach(children, i, child) {
        nu_server_pod_t *c;

        pthread_mutex_lock(&s->lock);
        for (c = s->pods; c != NULL; c = c->next)
            if (strcmp(nu_pod_id(c->pod), json_string_value(child)) == 0)
                break;
        if (c != NULL && !c->closing)
            nu__unlink_locked(s, c);
        else
            c = NULL;
        pthread_mutex_unlock(&s->lock);
        if (c != NULL) {
            nu__unlink_descendants(s, c->pod);
            free(c);
        }
    }
    json_decref(info);
}

static void nu__close_entry(nu_srv_t *s, nu_server_pod_t *sp)
{
    nu__unlink_descendants(s, sp->pod);
    nu_log(NU_LOG_INFO, "server", "closing pod %s", nu_pod_id(sp->pod));
    nu_pod_close(sp->pod);
    free(sp);
}

void nu__server_drop_connection(nu_srv_t *s, unsigned long conn_id)
{
    for (;;) {
        nu_server_pod_t *sp;

        pthread_mutex_lock(&s->lock);
        for (sp = s->pods; sp != NULL; sp = sp->next)
            if (sp->owner == conn_id && !sp->closing)
                break;
        if (sp != NULL)
            nu__unlink_locked(s, sp);
        pthread_mutex_unlock(&s->lock);
        if (sp == NULL)
            return;
        nu__close_entry(s, sp);
    }
}

void nu__server_close_all(nu_srv_t *s)
{
    for (;;) {
        nu_server_pod_t *sp;

        pthread_mutex_lock(&s->lock);
        sp = s->pods;
        if (sp != NULL)
            nu__unlink_locked(s, sp);
        pthread_mutex_unlock(&s->lock);
        if (sp == NULL)
            return;
        nu__close_entry(s, sp);
    }
}

/* --- methods ---------------------------------------------------------------- */

static json_t *nu__health(nu_srv_t *s)
{
    int pods = 0;

    pthread_mutex_lock(&s->lock);
    for (nu_server_pod_t *sp = s->pods; sp != NULL; sp = sp->next)
        pods++;
    json_t *r = json_pack("{s:s, s:s, s:i, s:I, s:I, s:b}", "status",
                          s->draining ? "draining" : "ok", "version", NU_VERSION,
                          "pods", pods, "uptime_s",
                          (json_int_t)(time(NULL) - s->started), "calls",
                          (json_int_t)s->calls, "audit", s->audit != NULL);
    pthread_mutex_unlock(&s->lock);
    return r;
}

/* Read {env: {NAME: value}} into a credential array (strings borrowed
 * from params). */
static nu_credential_t *nu__credentials(json_t *params, size_t *n)
{
    json_t *env = json_object_get(json_object_get(params, "credentials"), "env");
    nu_credential_t *creds;
    const char *key;
    json_t *value;
    size_t i = 0;

    *n = 0;
    if (!json_is_object(env) || json_object_size(env) == 0)
        return NULL;
    creds = calloc(json_object_size(env), sizeof *creds);
    if (creds == NULL)
        return NULL;
    json_object_foreach(env, key, value) {
        creds[i].name = key;
        creds[i].value = json_string_value(value);
        i++;
    }
    *n = i;
    return creds;
}

/* A restriction from "budget": TOP except the budget maxima given. */
static bool nu__budget_valid(json_t *params)
{
    json_t *b = json_object_get(params, "budget");
    const char *key;
    json_t *v;

    if (b == NULL)
        return true;
    if (!json_is_object(b))
        return false;
    json_object_foreach(b, key, v) {
        if (strcmp(key, "usd") != 0 && strcmp(key, "input_tokens") != 0 &&
            strcmp(key, "output_tokens") != 0 && strcmp(key, "tool_calls") != 0)
            return false;
        if (!json_is_number(v) || json_number_value(v) < 0 ||
            (strcmp(key, "usd") != 0 && !json_is_integer(v)))
            return false;
    }
    return true;
}

static bool nu__budget_restriction(json_t *params, nu_perm_t *out)
{
    json_t *b = json_object_get(params, "budget");

    nu_perm_init_top(out);
    if (!json_is_object(b))
        return false;
    if (json_is_number(json_object_get(b, "usd")))
        out->budget.usd = json_number_value(json_object_get(b, "usd"));
    if (json_is_integer(json_object_get(b, "input_tokens")))
        out->budget.input_tokens = json_integer_value(json_object_get(b, "input_tokens"));
    if (json_is_integer(json_object_get(b, "output_tokens")))
        out->budget.output_tokens = json_integer_value(json_object_get(b, "output_tokens"));
    if (json_is_integer(json_object_get(b, "tool_calls")))
        out->budget.tool_calls = json_integer_value(json_object_get(b, "tool_calls"));
    return true;
}

/* Is path (resolved) dir itself or below it? */
static bool nu__below(const char *dir, const char *path)
{
    char real[4096];
    size_t n = strlen(dir);

    if (dir[0] == '\0' || realpath(path, real) == NULL)
        return false;
    return strncmp(real, dir, n) == 0 && (real[n] == '/' || real[n] == '\0');
}

/* Callers that are not root or the daemon's uid name only workspaces below
 * --workspace-root and profiles that are built-in names or files below
 * --profile-dir: the daemon runs as root and must not open host paths for
 * them. */
static json_t *nu__check_paths(nu_srv_t *s, const nu_caller_t *c,
                               const char *workspace, const char *profile,
                               json_t **error)
{
    if (c->trusted)
        return json_true();
    if (workspace != NULL && !nu__below(s->workspace_root, workspace))
        return nu__fail(error, NU_RPC_UNAUTHORIZED, "capability_denied",
                        "%s may only use workspaces below the daemon's "
                        "--workspace-root%s", c->name,
                        s->workspace_root[0] ? "" : " (none is configured)");
    if (profile != NULL && strchr(profile, '/') == NULL &&
        nu_profile_builtin_source(profile, NULL) != NULL)
        return json_true();
    if (profile != NULL && !nu__below(s->profile_dir, profile))
        return nu__fail(error, NU_RPC_UNAUTHORIZED, "capability_denied",
                        "%s may only use built-in profiles or files below the "
                        "daemon's --profile-dir", c->name);
    return json_true();
}

static json_t *nu__pod_create(nu_srv_t *s, const nu_caller_t *c, json_t *params,
                              json_t **error)
{
    const char *profile, *workspace, *ns, *isolation;
    json_t *timeout = json_object_get(params, "timeout");
    nu_pod_options_t opts;
    nu_perm_t restriction;
    nu_pod_t *pod;
    nu_err_t err;
    int rc;

    if (!nu__param_string(params, "profile", "a string profile name or file",
                          true, &profile, error) ||
        !nu__param_string(params, "workspace", "a string directory path",
                          true, &workspace, error) ||
        !nu__param_string(params, "namespace", "a string namespace name",
                          false, &ns, error) ||
        !nu__param_string(params, "isolation", "a string isolation tier "
                          "such as \"ns\" or \"vm\"", false, &isolation,
                          error))
        return NULL;
    if (ns == NULL)
        ns = "default";
    if (nu__check_paths(s, c, workspace, profile, error) == NULL)
        return NULL;
    if (!nu__may_use_namespace(c, ns))
        return nu__fail(error, NU_RPC_UNAUTHORIZED, "capability_denied",
                        "%s may not create pods in namespace '%s'", c->name, ns);
    if (timeout != NULL && (!json_is_number(timeout) ||
                            json_number_value(timeout) < 0.001 ||
                            json_number_value(timeout) > 86400))
        return nu__params_error(error, "\"timeout\" must be seconds from "
                                "0.001 to 86400");
    if (!nu__budget_valid(params))
        return nu__params_error(error, "\"budget\" takes usd, input_tokens, "
                                "output_tokens and tool_calls, none negative");

    nu_pod_options_init(&opts);
    opts.profile_name = profile;
    opts.workspace = workspace;
    opts.namespace_ = ns;
    opts.isolation = isolation;
    opts.audit = s->audit;
    opts.credentials = nu__credentials(params, &opts.ncredentials);
    if (timeout != NULL)
        opts.timeout_ms = (uint32_t)(json_number_value(timeout) * 1000);
    if (nu__budget_restriction(params, &restriction))
        opts.restrict_to = &restriction;

    rc = nu_pod_create(&opts, &pod, &err);
    free((void *)opts.credentials);
    nu_perm_free(&restriction);
    if (rc != NU_OK)
        return nu__fail(error, NU_RPC_INVALID_PARAMS,
                        rc == NU_EINVAL || rc == NU_ENOENT || rc == NU_EPOLICY
                            ? "invalid_request" : "sandbox_error",
                        "%s", err.msg);

    nu__register(s, pod, ns,
                 json_is_true(json_object_get(params, "detached")) ? 0 : c->conn_id);
    nu_log(NU_LOG_INFO, "server", "pod %s created by %s (profile %s)",
           nu_pod_id(pod), c->name, profile);
    return nu_pod_info(pod);
}

static json_t *nu__pod_list(nu_srv_t *s, const nu_caller_t *c)
{
    json_t *list = json_array();

    pthread_mutex_lock(&s->lock);
    for (nu_server_pod_t *sp = s->pods; sp != NULL; sp = sp->next)
        if (!sp->closing && nu__may_use_namespace(c, sp->namespace_))
            json_array_append_new(list, json_pack("{s:s, s:s, s:s}", "id",
                                  nu_pod_id(sp->pod), "spiffe_id",
                                  nu_pod_spiffe_id(sp->pod), "namespace",
                                  sp->namespace_));
    pthread_mutex_unlock(&s->lock);
    return list;
}

static json_t *nu__pod_close(nu_srv_t *s, const nu_caller_t *c, json_t *params,
                             json_t **error)
{
    nu_server_pod_t *sp = nu__acquire(s, c, params, error);

    if (sp == NULL)
        return NULL;
    pthread_mutex_lock(&s->lock);
    sp->busy--;
    if (sp->closing) {
        /* Another request is closing it: that one frees the entry. */
        pthread_cond_broadcast(&s->idle);
        pthread_mutex_unlock(&s->lock);
        return nu__fail(error, NU_RPC_NOT_FOUND, "not_found",
                        "pod is already closing");
    }
    nu__unlink_locked(s, sp);
    pthread_mutex_unlock(&s->lock);
    nu__close_entry(s, sp);
    return json_pack("{s:b}", "closed", 1);
}

static json_t *nu__call_error(const nu_call_result_t *r, json_t **error)
{
    const nu_decision_t *d = &r->decision;
    json_t *data = json_pack("{s:s, s:s, s:s, s:s, s:i}", "decision",
                             nu_verdict_name(d->verdict), "kind",
                             nu_kind_name(d->kind), "reason", d->reason,
                             "operation", nu_decision_op_name(d), "step",
                             d->step);
    int code = d->verdict == NU_DECISION_APPROVAL ? NU_RPC_APPROVAL_REQUIRED
                                                  : NU_RPC_DENIED;

    if (d->verdict == NU_DECISION_APPROVAL)
        json_object_set_new(data, "approval_key", json_string(d->approval_key));
    if (r->result != NULL)
        json_object_set(data, "result", r->result);
    *error = nu_rpc_error(code, d->reason[0] ? d->reason : nu_kind_name(d->kind),
                          data);
    return NULL;
}

static json_t *nu__tool_call(nu_srv_t *s, const nu_caller_t *c, json_t *params,
                             json_t **error)
{
    json_t *call = json_object_get(params, "call");
    nu_server_pod_t *sp;
    nu_call_result_t r;
    json_t *out;

    if (!json_is_object(call))
        return nu__params_error(error, "tool.call needs \"pod\" and \"call\" "
                                "(an object such as {\"tool\": \"read\", "
                                "\"path\": \"x\"})");
    sp = nu__acquire(s, c, params, error);
    if (sp == NULL)
        return NULL;

    nu_pod_call(sp->pod, call, &r);
    nu__release(s, sp);

    pthread_mutex_lock(&s->lock);
    s->calls++;
    pthread_mutex_unlock(&s->lock);

    if (r.decision.verdict == NU_DECISION_ALLOW && r.result != NULL &&
        json_is_true(json_object_get(r.result, "ok"))) {
        out = json_incref(r.result);
        if (r.approved_by[0] != '\0')
            json_object_set_new(out, "approved_by", json_string(r.approved_by));
    } else {
        out = nu__call_error(&r, error);
    }
    nu_call_result_clear(&r);
    return out;
}

static json_t *nu__charge(nu_srv_t *s, const nu_caller_t *c, json_t *params,
                          json_t **error)
{
    json_t *usd = json_object_get(params, "usd");
    json_t *in = json_object_get(params, "input_tokens");
    json_t *outt = json_object_get(params, "output_tokens");
    nu_server_pod_t *sp;
    nu_err_t err;
    int rc;

    if ((usd && !json_is_number(usd)) || (in && !json_is_integer(in)) ||
        (outt && !json_is_integer(outt)))
        return nu__params_error(error, "pod.charge takes numbers usd, "
                                "input_tokens, output_tokens");
    sp = nu__acquire(s, c, params, error);
    if (sp == NULL)
        return NULL;
    rc = nu_pod_charge(sp->pod, usd ? json_number_value(usd) : 0,
                       in ? json_integer_value(in) : 0,
                       outt ? json_integer_value(outt) : 0, &err);
    nu__release(s, sp);
    if (rc == NU_EINVAL)
        return nu__fail(error, NU_RPC_INVALID_PARAMS, "invalid_request", "%s", err.msg);
    if (rc == NU_ELIMIT)
        return nu__fail(error, NU_RPC_DENIED, "budget_exhausted", "%s", err.msg);
    if (rc != NU_OK)
        return nu__fail(error, NU_RPC_INTERNAL_ERROR, "io_error", "%s", err.msg);
    return json_pack("{s:b}", "charged", 1);
}

static json_t *nu__approval(nu_srv_t *s, const nu_caller_t *c, const char *method,
                            json_t *params, json_t **error)
{
    const char *key;
    json_t *count = json_object_get(params, "count");
    json_t *ttl = json_object_get(params, "ttl");
    char source[2200];
    nu_server_pod_t *sp;
    json_t *out = NULL;
    nu_err_t err;
    int rc = NU_OK;

    if (!nu__param_string(params, "approval_key", "a string approval key",
                          strcmp(method, "approval.list") != 0, &key, error))
        return NULL;
    if ((count && (!json_is_integer(count) || json_integer_value(count) < 1 ||
                   json_integer_value(count) > 1000)) ||
        (ttl && (!json_is_integer(ttl) || json_integer_value(ttl) < 0 ||
                 json_integer_value(ttl) > NU_APPROVAL_TTL_MAX)))
        return nu__params_error(error, "\"count\" must be 1 to 1000 and "
                                "\"ttl\" 0 to 300 seconds");
    sp = nu__acquire(s, c, params, error);
    if (sp == NULL)
        return NULL;

    snprintf(source, sizeof source, "daemon:%s", c->name);
    if (strcmp(method, "approval.list") == 0)
        out = nu_pod_pending(sp->pod);
    else if (strcmp(method, "approval.grant") == 0)
        rc = nu_pod_grant(sp->pod, key, count ? (int)json_integer_value(count) : 1,
                          ttl ? (int)json_integer_value(ttl) : 0, source, &err);
    else
        rc = nu_pod_deny(sp->pod, key, source, &err);
    nu__release(s, sp);

    if (rc != NU_OK)
        return nu__fail(error, rc == NU_EINVAL ? NU_RPC_INVALID_PARAMS
                                               : NU_RPC_INTERNAL_ERROR,
                        rc == NU_EINVAL ? "invalid_request" : "io_error",
                        "%s", err.msg);
    if (out == NULL) {
        nu_log(NU_LOG_INFO, "server", "%s %s for pod %s by %s", method, key,
               json_string_value(json_object_get(params, "pod")), c->name);
        out = json_pack("{s:b}", "ok", 1);
    }
    return out;
}

/* The permission named by params.permission: a canonical JSON object or a
 * profile name or file. */
static int nu__param_perm(json_t *value, nu_perm_t *out, nu_err_t *err)
{
    nu_profile_t *profile;
    int rc;

    if (json_is_object(value))
        return nu_perm_from_json(out, value, err);
    if (!json_is_string(value))
        return nu_err_set(err, NU_EINVAL, "\"permission\" must be a profile "
                          "name or a canonical permission object");
    rc = nu_profile_load(&profile, json_string_value(value), NULL, err);
    if (rc != NU_OK)
        return rc;
    rc = nu_perm_copy(out, nu_profile_perm(profile));
    nu_profile_free(profile);
    return rc;
}

static json_t *nu__attenuate(nu_srv_t *s, const nu_caller_t *c, json_t *params,
                             json_t **error)
{
    nu_server_pod_t *sp;
    nu_perm_t perm;
    nu_err_t err;
    int rc;

    if (nu__check_paths(s, c, NULL,
                        json_string_value(json_object_get(params, "permission")),
                        error) == NULL)
        return NULL;
    if (nu__param_perm(json_object_get(params, "permission"), &perm, &err) != NU_OK)
        return nu__params_error(error, err.msg);
    sp = nu__acquire(s, c, params, error);
    if (sp == NULL) {
        nu_perm_free(&perm);
        return NULL;
    }
    rc = nu_pod_attenuate(sp->pod, &perm, &err);
    nu_perm_free(&perm);
    json_t *info = rc == NU_OK ? nu_pod_info(sp->pod) : NULL;
    nu__release(s, sp);
    if (rc != NU_OK)
        return nu__fail(error, NU_RPC_INTERNAL_ERROR, "io_error", "%s", err.msg);
    return info;
}

static json_t *nu__spawn(nu_srv_t *s, const nu_caller_t *c, json_t *params,
                         json_t **error)
{
    json_t *perm_param = json_object_get(params, "permission");
    const char *workspace;
    nu_pod_options_t opts;
    nu_server_pod_t *sp;
    nu_perm_t requested, budget, met;
    nu_pod_t *child;
    nu_err_t err;
    int rc;

    if (!nu__param_string(params, "workspace", "a string directory path",
                          false, &workspace, error))
        return NULL;
    if (nu__check_paths(s, c, workspace, json_string_value(perm_param),
                        error) == NULL)
        return NULL;
    if (perm_param != NULL) {
        if (nu__param_perm(perm_param, &requested, &err) != NU_OK)
            return nu__params_error(error, err.msg);
    } else {
        nu_perm_init_top(&requested);
    }
    if (!nu__budget_valid(params)) {
        nu_perm_free(&requested);
        return nu__params_error(error, "\"budget\" takes usd, input_tokens, "
                                "output_tokens and tool_calls, none negative");
    }
    if (nu__budget_restriction(params, &budget)) {
        nu_perm_meet(&met, &requested, &budget);
        nu_perm_free(&requested);
        requested = met;
    }
    nu_perm_free(&budget);

    sp = nu__acquire(s, c, params, error);
    if (sp == NULL) {
        nu_perm_free(&requested);
        return NULL;
    }
    nu_pod_options_init(&opts);
    opts.workspace = workspace;
    opts.namespace_ = sp->namespace_;
    rc = nu_pod_spawn(sp->pod, &opts, &requested,
                      json_is_true(json_object_get(params, "strict")), &child, &err);
    nu_perm_free(&requested);
    unsigned long owner = sp->owner;
    char ns[128];
    snprintf(ns, sizeof ns, "%s", sp->namespace_);
    nu__release(s, sp);

    if (rc != NU_OK)
        return nu__fail(error, NU_RPC_DENIED,
                        rc == NU_EDENIED ? "capability_denied"
                        : rc == NU_ELIMIT ? "budget_exhausted" : "sandbox_error",
                        "%s", err.msg);
    nu__register(s, child, ns, owner);
    return nu_pod_info(child);
}

static json_t *nu__audit_verify(nu_srv_t *s, json_t **error)
{
    nu_audit_report_t report;
    nu_err_t err;
    char root[NU_SHA256_HEX_LEN + 1];

    if (s->audit == NULL)
        return nu__fail(error, NU_RPC_NOT_FOUND, "not_found",
                        "this daemon writes no audit log");
    memset(&report, 0, sizeof report);
    int rc = nu_audit_verify(s->audit, NULL, &report, &err);
    nu_hex_encode(report.root, sizeof report.root, root);
    return json_pack("{s:b, s:I, s:I, s:I, s:s, s:I, s:s?}", "ok", rc == NU_OK,
                     "events", (json_int_t)report.events, "checkpoints",
                     (json_int_t)report.checkpoints, "unanchored",
                     (json_int_t)report.unanchored, "root", root, "bad_seq",
                     (json_int_t)report.bad_seq, "reason",
                     rc == NU_OK ? NULL : report.reason);
}

static json_t *nu__identity_bundle(nu_srv_t *s, json_t **error)
{
    char dir[4200];
    nu_ca_t *ca;
    nu_err_t err;

    snprintf(dir, sizeof dir, "%s/ca", s->home);
    if (nu_ca_load(dir, &ca, &err) != NU_OK)
        return nu__fail(error, NU_RPC_NOT_FOUND, "not_found", "%s", err.msg);
    json_t *r = json_pack("{s:s, s:s}", "trust_domain", nu_ca_trust_domain(ca),
                          "bundle_pem", nu_ca_bundle_pem(ca));
    nu_ca_free(ca);
    return r;
}

json_t *nu__server_dispatch(nu_srv_t *s, const nu_caller_t *c,
                            const char *method, json_t *params, json_t **error)
{
    static const char *const known[] = {
        "server.health", "pod.create", "pod.list", "pod.get", "pod.close",
        "tool.call", "pod.charge", "approval.list", "approval.grant",
        "approval.deny", "pod.attenuate", "pod.spawn", "audit.verify",
        "identity.bundle", NULL,
    };
    bool exists = false;

    for (int i = 0; known[i] != NULL; i++)
        exists = exists || strcmp(known[i], method) == 0;
    if (!exists) {
        *error = nu_rpc_error(NU_RPC_METHOD_NOT_FOUND, "method not found",
                              json_pack("{s:s}", "method", method));
        return NULL;
    }
    if (!nu__may_call(c, method))
        return nu__fail(error, NU_RPC_UNAUTHORIZED, "capability_denied",
                        "%s may not call '%s'", c->name, method);
    if (params != NULL && !json_is_object(params) &&
        strcmp(method, "server.health") != 0 && strcmp(method, "pod.list") != 0)
        return nu__params_error(error, "params must be an object");

    if (strcmp(method, "server.health") == 0)
        return nu__health(s);
    if (strcmp(method, "pod.create") == 0)
        return nu__pod_create(s, c, params, error);
    if (strcmp(method, "pod.list") == 0)
        return nu__pod_list(s, c);
    if (strcmp(method, "pod.get") == 0) {
        nu_server_pod_t *sp = nu__acquire(s, c, params, error);
        json_t *info = sp ? nu_pod_info(sp->pod) : NULL;
        if (sp != NULL)
            nu__release(s, sp);
        return info;
    }
    if (strcmp(method, "pod.close") == 0)
        return nu__pod_close(s, c, params, error);
    if (strcmp(method, "tool.call") == 0)
        return nu__tool_call(s, c, params, error);
    if (strcmp(method, "pod.charge") == 0)
        return nu__charge(s, c, params, error);
    if (strncmp(method, "approval.", 9) == 0 &&
        (strcmp(method + 9, "list") == 0 || strcmp(method + 9, "grant") == 0 ||
         strcmp(method + 9, "deny") == 0))
        return nu__approval(s, c, method, params, error);
    if (strcmp(method, "pod.attenuate") == 0)
        return nu__attenuate(s, c, params, error);
    if (strcmp(method, "pod.spawn") == 0)
        return nu__spawn(s, c, params, error);
    if (strcmp(method, "audit.verify") == 0)
        return nu__audit_verify(s, error);
    if (strcmp(method, "identity.bundle") == 0)
        return nu__identity_bundle(s, error);

    *error = nu_rpc_error(NU_RPC_METHOD_NOT_FOUND, "method not found",
                          json_pack("{s:s}", "method", method));
    return NULL;
}
