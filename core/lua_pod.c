/*
 * lua_pod.c - pods in Lua: nucleus.pod{...} and the pod methods.
 *
 * A thin layer over pod.h.  Every method builds one tool call and hands it
 * to nu_pod_call; nothing here decides or executes anything itself.
 *
 *   local pod = nucleus.pod{ profile = "codegen", workspace = dir,
 *                            credentials = { env = { TOKEN = "..." } },
 *                            budget = { usd = 1 }, timeout = 30,
 *                            approve = function(request) return "ask" end }
 *   local r, err = pod:read("src/main.c")
 *
 * Methods return a result table, or nil and an error table {kind, reason,
 * operation, step, decision, approval_key?, result?}.  Byte fields of
 * results (content, stdout, stderr) are Lua strings holding the raw
 * bytes, whatever encoding the pod used on the wire.
 *
 * Orchestrator scripts are trusted code: they run in an ordinary Lua state
 * (nucleus run, the REPL, or any lua5.4 that requires "nucleus"), not in
 * the policy sandbox.  Credential values never come back out of a pod:
 * results are redacted before they reach Lua.
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <mbedtls/base64.h>

#include "nucleus/audit.h"
#include "nucleus/pod.h"
#include "policy_internal.h"

#define NU__POD_MT "nucleus.pod"
#define NU__ERROR_MT "nucleus.error"

typedef struct nu_lpod {
    nu_pod_t *pod;
    nu_profile_t *profile;     /* owned when loaded here */
    lua_State *L;              /* the state of the running call */
    int approve_ref;           /* approve callback, LUA_NOREF when none */
    nu_decision_t last;        /* for :explain */
    bool has_last;
    struct nu_lpod *parent_box;
} nu_lpod_t;

/* __tostring of an error table: "KIND: REASON", so that
 * assert(nucleus.pod{...}) and error(err) print why the call failed. */
static int nu__error_tostring(lua_State *L)
{
    const char *kind, *reason;

    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "kind");
    lua_getfield(L, 1, "reason");
    kind = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "error";
    reason = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1)
                                            : "no reason given";
    lua_pushfstring(L, "%s: %s", kind, reason);
    return 1;
}

/* Give the error table at the top of the stack its metatable. */
static void nu__set_error_mt(lua_State *L)
{
    if (luaL_newmetatable(L, NU__ERROR_MT)) {
        lua_pushcfunction(L, nu__error_tostring);
        lua_setfield(L, -2, "__tostring");
    }
    lua_setmetatable(L, -2);
}

/* A spawned pod dies with its parent: it is alive only while every
 * ancestor is. */
static bool nu__lpod_alive(const nu_lpod_t *p)
{
    for (; p != NULL; p = p->parent_box)
        if (p->pod == NULL)
            return false;
    return true;
}

static nu_lpod_t *nu__check_pod(lua_State *L, int idx)
{
    nu_lpod_t *p = luaL_checkudata(L, idx, NU__POD_MT);

    if (!nu__lpod_alive(p))
        luaL_error(L, "pod is closed");
    return p;
}

/* --- approval callback ------------------------------------------------ */

/* The interactive prompt a REPL installs; used when a pod has no approve
 * callback of its own.  Process-wide, like the terminal it talks to. */
static nu_approve_t (*nu__prompt_fn)(const json_t *request);

void nu__lua_set_prompt(nu_approve_t (*fn)(const json_t *request));
void nu__lua_set_prompt(nu_approve_t (*fn)(const json_t *request))
{
    nu__prompt_fn = fn;
}

/* The decision of the most recent call made through any pod, for the
 * REPL's :explain. */
static nu_decision_t nu__last_decision;
static bool nu__has_last_decision;

bool nu__lua_last_decision(nu_decision_t *out);
bool nu__lua_last_decision(nu_decision_t *out)
{
    if (nu__has_last_decision)
        *out = nu__last_decision;
    return nu__has_last_decision;
}

static int nu__approve_protected(lua_State *L)
{
    const json_t *request = lua_touserdata(L, 2);

    /* The callback is at 1; call it with the request as a table. */
    lua_pushvalue(L, 1);
    nu__policy_push_json(L, request, (size_t)1 << 30);
    lua_call(L, 1, 1);
    return 1;
}

static nu_approve_t nu__approve_trampoline(nu_pod_t *pod, const json_t *request,
                                           void *userdata)
{
    nu_lpod_t *p = userdata;
    lua_State *L = p->L;
    nu_approve_t answer = NU_APPROVE_DENY;
    const char *s;

    (void)pod;
    if (p->approve_ref == LUA_NOREF && nu__prompt_fn != NULL)
        return nu__prompt_fn(request);
    if (L == NULL || p->approve_ref == LUA_NOREF)
        return NU_APPROVE_ASK;

    lua_pushcfunction(L, nu__approve_protected);
    lua_rawgeti(L, LUA_REGISTRYINDEX, p->approve_ref);
    lua_pushlightuserdata(L, (void *)request);
    if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
        /* A failing callback denies: fail closed. */
        lua_pop(L, 1);
        return NU_APPROVE_DENY;
    }

    s = lua_type(L, -1) == LUA_TBOOLEAN
      ? (lua_toboolean(L, -1) ? "approve" : "deny")
      : lua_tostring(L, -1);
    if (s != NULL && strcmp(s, "approve") == 0)
        answer = NU_APPROVE_APPROVE;
    else if (s != NULL && strcmp(s, "ask") == 0)
        answer = NU_APPROVE_ASK;
    lua_pop(L, 1);
    return answer;
}

/* --- the audit log ------------------------------------------------------ */

/* Pods made from Lua share one audit log per process, in the state
 * directory ($NUCLEUS_HOME), opened with the first pod that wants one. */
static nu_audit_t *nu__audit;
static pthread_mutex_t nu__audit_lock = PTHREAD_MUTEX_INITIALIZER;

static void nu__audit_close_at_exit(void)
{
    nu_audit_close(nu__audit);
    nu__audit = NULL;
}

static nu_audit_t *nu__shared_audit(nu_err_t *err)
{
    pthread_mutex_lock(&nu__audit_lock);
    if (nu__audit == NULL && nu_audit_open(NULL, &nu__audit, err) == NU_OK)
        atexit(nu__audit_close_at_exit);
    nu_audit_t *a = nu__audit;
    pthread_mutex_unlock(&nu__audit_lock);
    return a;
}

/* --- options ---------------------------------------------------------- */

static const char *nu__opt_string(lua_State *L, int idx, const char *key)
{
    const char *s;

    lua_getfield(L, idx, key);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return NULL;
    }
    if (lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "nucleus.pod: option '%s' must be a string", key);
    s = lua_tostring(L, -1);
    lua_pop(L, 1);  /* the string stays referenced by the options table */
    return s;
}

/* Read credentials = { env = { NAME = value } } into a malloc'd array. */
static nu_credential_t *nu__opt_credentials(lua_State *L, int idx, size_t *n)
{
    nu_credential_t *creds = NULL;
    size_t count = 0;

    *n = 0;
    lua_getfield(L, idx, "credentials");
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return NULL;
    }
    luaL_checktype(L, -1, LUA_TTABLE);
    lua_getfield(L, -1, "env");
    if (!lua_istable(L, -1))
        luaL_error(L, "nucleus.pod: credentials must be { env = { NAME = "
                      "value, ... } }");

    lua_pushnil(L);
    while (lua_next(L, -2) != 0) {
        if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING) {
            free(creds);
            luaL_error(L, "nucleus.pod: credentials.env keys and values must "
                          "be strings");
        }
        nu_credential_t *grown = realloc(creds, (count + 1) * sizeof *grown);
        if (grown == NULL) {
            free(creds);
            luaL_error(L, "nucleus.pod: out of memory");
        }
        creds = grown;
        creds[count].name = lua_tostring(L, -2);
        creds[count].value = lua_tostring(L, -1);
        count++;
        lua_pop(L, 1);
    }
    lua_pop(L, 2);
    *n = count;
    return creds;
}

/* A restriction from the budget and network options: TOP except for the
 * components given.  Returns true when anything was set. */
static bool nu__opt_restriction(lua_State *L, int idx, nu_perm_t *out)
{
    bool any = false;

    nu_perm_init_top(out);

    lua_getfield(L, idx, "budget");
    if (lua_istable(L, -1)) {
        any = true;
        lua_getfield(L, -1, "usd");
        if (!lua_isnil(L, -1))
            out->budget.usd = luaL_checknumber(L, -1);
        lua_getfield(L, -2, "input_tokens");
        if (!lua_isnil(L, -1))
            out->budget.input_tokens = luaL_checkinteger(L, -1);
        lua_getfield(L, -3, "output_tokens");
        if (!lua_isnil(L, -1))
            out->budget.output_tokens = luaL_checkinteger(L, -1);
        lua_getfield(L, -4, "tool_calls");
        if (!lua_isnil(L, -1))
            out->budget.tool_calls = luaL_checkinteger(L, -1);
        lua_pop(L, 4);
    }
    lua_pop(L, 1);

    lua_getfield(L, idx, "network");
    if (lua_istable(L, -1)) {
        any = true;
        lua_getfield(L, -1, "allow");
        if (!lua_isnil(L, -1)) {
            nu_strset_free(&out->network.allow);
            nu__lua_check_strset(L, -1, "network.allow", &out->network.allow);
        }
        lua_pop(L, 1);
        lua_getfield(L, -1, "domains");
        if (!lua_isnil(L, -1)) {
            nu_strset_free(&out->network.domains);
            nu__lua_check_strset(L, -1, "network.domains", &out->network.domains);
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return any;
}

/* Check the restriction's entries as a profile's are checked (an IP
 * address in network.domains, a malformed CIDR in network.allow), by
 * parsing its canonical JSON. */
static int nu__restriction_check(const nu_perm_t *restriction, nu_err_t *err)
{
    json_t *json = nu_perm_to_json(restriction);
    nu_perm_t parsed;
    int rc;

    if (json == NULL)
        return nu_err_set(err, NU_ENOMEM, "out of memory");
    rc = nu_perm_from_json(&parsed, json, err);
    json_decref(json);
    if (rc == NU_OK)
        nu_perm_free(&parsed);
    return rc;
}

static void nu__push_pod(lua_State *L, nu_pod_t *pod, nu_profile_t *profile,
                         int approve_ref)
{
    nu_lpod_t *p = lua_newuserdatauv(L, sizeof *p, 1);

    memset(p, 0, sizeof *p);
    p->pod = pod;
    p->profile = profile;
    p->approve_ref = approve_ref;
    luaL_setmetatable(L, NU__POD_MT);
}

/* nucleus.pod{...} */
static int nu__pod_new(lua_State *L)
{
    nu_pod_options_t opts;
    nu_credential_t *creds;
    nu_profile_t *profile = NULL;
    nu_perm_t restriction;
    nu_pod_t *pod = NULL;
    nu_err_t err;
    double timeout;
    int approve_ref = LUA_NOREF, rc;

    luaL_checktype(L, 1, LUA_TTABLE);
    nu_pod_options_init(&opts);

    const char *profile_name = nu__opt_string(L, 1, "profile");
    opts.workspace = nu__opt_string(L, 1, "workspace");
    opts.isolation = nu__opt_string(L, 1, "isolation");
    opts.namespace_ = nu__opt_string(L, 1, "namespace");
    opts.trust_domain = nu__opt_string(L, 1, "trust_domain");
    lua_getfield(L, 1, "timeout");
    timeout = luaL_optnumber(L, -1, 0);
    lua_pop(L, 1);
    lua_getfield(L, 1, "svid_ttl");
    opts.svid_ttl = (int64_t)luaL_optinteger(L, -1, 0);
    lua_pop(L, 1);
    if (opts.svid_ttl < 0)
        return luaL_error(L, "nucleus.pod: svid_ttl must be a number of seconds");
    if (!(timeout >= 0 && timeout <= 86400))
        return luaL_error(L, "nucleus.pod: timeout must be 0 to 86400 seconds");
    opts.timeout_ms = (uint32_t)(timeout * 1000);

    lua_getfield(L, 1, "approve");
    if (lua_isfunction(L, -1))
        approve_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    else if (!lua_isnil(L, -1))
        return luaL_error(L, "nucleus.pod: approve must be a function");
    else
        lua_pop(L, 1);

    /* audit = false turns the log off (tests, experiments); the default
     * records every decision. */
    lua_getfield(L, 1, "audit");
    bool audit = lua_isnil(L, -1) || lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (audit && (opts.audit = nu__shared_audit(&err)) == NULL) {
        luaL_unref(L, LUA_REGISTRYINDEX, approve_ref);
        return luaL_error(L, "nucleus.pod: %s", err.msg);
    }

    if (profile_name == NULL)
        profile_name = "default";
    if (nu_profile_load(&profile, profile_name, NULL, &err) != NU_OK) {
        luaL_unref(L, LUA_REGISTRYINDEX, approve_ref);
        return luaL_error(L, "nucleus.pod: %s", err.msg);
    }

    bool restricted = nu__opt_restriction(L, 1, &restriction);
    if (restricted && nu__restriction_check(&restriction, &err) != NU_OK) {
        nu_perm_free(&restriction);
        luaL_unref(L, LUA_REGISTRYINDEX, approve_ref);
        nu_profile_free(profile);
        return luaL_error(L, "nucleus.pod: %s", err.msg);
    }
    creds = nu__opt_credentials(L, 1, &opts.ncredentials);
    opts.credentials = creds;
    opts.profile = profile;
    opts.restrict_to = restricted ? &restriction : NULL;

    /* Push the userdata first so the callback has a home before create. */
    nu__push_pod(L, NULL, profile, approve_ref);
    nu_lpod_t *p = lua_touserdata(L, -1);
    opts.approve = nu__approve_trampoline;
    opts.approve_userdata = p;

    rc = nu_pod_create(&opts, &pod, &err);
    free(creds);
    nu_perm_free(&restriction);
    if (rc != NU_OK) {
        /* __gc frees the profile and the callback reference. */
        lua_pushnil(L);
        lua_newtable(L);
        lua_pushstring(L, rc == NU_EINVAL || rc == NU_ENOENT ? "invalid_request"
                          : rc == NU_EIO ? "io_error" : "sandbox_error");
        lua_setfield(L, -2, "kind");
        lua_pushstring(L, err.msg);
        lua_setfield(L, -2, "reason");
        nu__set_error_mt(L);
        return 2;
    }
    p->pod = pod;
    return 1;
}

/* --- results ---------------------------------------------------------- */

/* Replace base64 byte fields (X with X_encoding "base64") of the table at
 * the top by their decoded bytes. */
static void nu__decode_bytes(lua_State *L, const json_t *result)
{
    static const char *const fields[] = { "content", "stdout", "stderr", "body" };

    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        char enc_key[32];
        snprintf(enc_key, sizeof enc_key, "%s_encoding", fields[i]);
        const char *enc = json_string_value(json_object_get(result, enc_key));
        const json_t *field = json_object_get(result, fields[i]);
        if (enc == NULL || strcmp(enc, "base64") != 0 || !json_is_string(field))
            continue;

        size_t len = json_string_length(field), out_len = 0;
        unsigned char *raw = malloc(len + 1);
        if (raw == NULL)
            continue;
        if (mbedtls_base64_decode(raw, len + 1, &out_len,
                                  (const unsigned char *)json_string_value(field),
                                  len) == 0) {
            lua_pushlstring(L, (const char *)raw, out_len);
            lua_setfield(L, -2, fields[i]);
        }
        free(raw);
    }
}

static void nu__push_result(lua_State *L, const json_t *result)
{
    nu__policy_push_json(L, result, (size_t)1 << 30);
    nu__decode_bytes(L, result);
}

static void nu__push_error(lua_State *L, const nu_call_result_t *r)
{
    const nu_decision_t *d = &r->decision;

    lua_createtable(L, 0, 8);
    lua_pushstring(L, nu_verdict_name(d->verdict));
    lua_setfield(L, -2, "decision");
    lua_pushstring(L, nu_kind_name(d->kind));
    lua_setfield(L, -2, "kind");
    lua_pushstring(L, d->reason);
    lua_setfield(L, -2, "reason");
    lua_pushstring(L, nu_decision_op_name(d));
    lua_setfield(L, -2, "operation");
    lua_pushinteger(L, d->step);
    lua_setfield(L, -2, "step");
    if (d->verdict == NU_DECISION_APPROVAL) {
        lua_pushstring(L, d->approval_key);
        lua_setfield(L, -2, "approval_key");
    }
    if (r->result != NULL) {
        nu__push_result(L, r->result);
        lua_setfield(L, -2, "result");
    }
    nu__set_error_mt(L);
}

/* Run call (consumed) through the pipeline; push result or nil, err. */
static int nu__do_call(lua_State *L, nu_lpod_t *p, json_t *call)
{
    nu_call_result_t r;

    p->L = L;
    nu_pod_call(p->pod, call, &r);
    p->L = NULL;
    json_decref(call);

    p->last = r.decision;
    p->has_last = true;
    nu__last_decision = r.decision;
    nu__has_last_decision = true;

    if (r.decision.verdict == NU_DECISION_ALLOW && r.result != NULL &&
        json_is_true(json_object_get(r.result, "ok"))) {
        nu__push_result(L, r.result);
        if (r.approved_by[0] != '\0') {
            lua_pushstring(L, r.approved_by);
            lua_setfield(L, -2, "approved_by");
        }
        nu_call_result_clear(&r);
        return 1;
    }

    lua_pushnil(L);
    nu__push_error(L, &r);
    nu_call_result_clear(&r);
    return 2;
}

/* Build {tool = name, ...opts} from an options table at opts_idx (may be
 * none) and return it as JSON. */
static json_t *nu__call_from(lua_State *L, const char *tool, int opts_idx)
{
    json_t *call;

    if (opts_idx > 0 && !lua_isnoneornil(L, opts_idx)) {
        luaL_checktype(L, opts_idx, LUA_TTABLE);
        call = nu__lua_to_json(L, opts_idx, 0);
        if (!json_is_object(call)) {
            json_decref(call);
            call = json_object();
        }
    } else {
        call = json_object();
    }
    json_object_set_new(call, "tool", json_string(tool));
    return call;
}

/* Set key to the Lua string at idx: as text when it is UTF-8, else as
 * base64 with key_encoding "base64". */
static void nu__set_bytes(lua_State *L, json_t *call, const char *key, int idx)
{
    size_t len;
    const char *s = luaL_checklstring(L, idx, &len);
    json_t *text = memchr(s, '\0', len) ? NULL : json_stringn(s, len);
    char enc_key[64];

    if (text != NULL) {
        json_object_set_new(call, key, text);
        return;
    }

    size_t cap = 4 * ((len + 2) / 3) + 1, out_len;
    unsigned char *b64 = malloc(cap);
    if (b64 == NULL ||
        mbedtls_base64_encode(b64, cap, &out_len, (const unsigned char *)s,
                              len) != 0) {
        free(b64);
        json_decref(call);
        luaL_error(L, "out of memory");
    }
    json_object_set_new(call, key, json_stringn((const char *)b64, out_len));
    snprintf(enc_key, sizeof enc_key, "%s_encoding", key);
    json_object_set_new(call, enc_key, json_string("base64"));
    free(b64);
}

/* Methods taking a table form: pod:read{path = ...}. */
static bool nu__table_form(lua_State *L)
{
    return lua_istable(L, 2) && lua_isnoneornil(L, 3);
}

static int nu__m_read(lua_State *L)
{
    nu_lpod_t *p = nu__check_pod(L, 1);
    json_t *call;

    if (nu__table_form(L))
        return nu__do_call(L, p, nu__call_from(L, "read", 2));
    call = nu__call_from(L, "read", 3);
    json_object_set_new(call, "path", json_string(luaL_checkstring(L, 2)));
    return nu__do_call(L, p, call);
}

static int nu__m_write(lua_State *L)
{
    nu_lpod_t *p = nu__check_pod(L, 1);
    json_t *call;

    if (nu__table_form(L))
        return nu__do_call(L, p, nu__call_from(L, "write", 2));
    call = nu__call_from(L, "write", 4);
    json_object_set_new(call, "path", json_string(luaL_checkstring(L, 2)));
    nu__set_bytes(L, call, "content", 3);
    return nu__do_call(L, p, call);
}

static int nu__m_edit(lua_State *L)
{
    nu_lpod_t *p = nu__check_pod(L, 1);
    json_t *call;

    if (nu__table_form(L))
        return nu__do_call(L, p, nu__call_from(L, "edit", 2));
    call = nu__call_from(L, "edit", 5);
    json_object_set_new(call, "path", json_string(luaL_checkstring(L, 2)));
    json_object_set_new(call, "old", json_string(luaL_checkstring(L, 3)));
    json_object_set_new(call, "new", json_string(luaL_checkstring(L, 4)));
    return nu__do_call(L, p, call);
}

static int nu__m_glob(lua_State *L)
{
    nu_lpod_t *p = nu__check_pod(L, 1);
    json_t *call;

    if (nu__table_form(L))
        return nu__do_call(L, p, nu__call_from(L, "glob", 2));
    call = nu__call_from(L, "glob", 3);
    json_object_set_new(call, "pattern", json_string(luaL_checkstring(L, 2)));
    return nu__do_call(L, p, call);
}

static int nu__m_grep(lua_State *L)
{
    nu_lpod_t *p = nu__check_pod(L, 1);
    json_t *call;

    if (nu__table_form(L) && lua_getfield(L, 2, "pattern") != LUA_TNIL) {
        lua_pop(L, 1);
        return nu__do_call(L, p, nu__call_from(L, "grep", 2));
    }
    call = nu__call_from(L, "grep", 3);
    json_object_set_new(call, "pattern", json_string(luaL_checkstring(L, 2)));
    return nu__do_call(L, p, call);
}

/* pod:run("shell string" [, opts]) or pod:run({"argv", ...} [, opts]) or
 * pod:run{command = ..., cwd = ...}. */
static int nu__m_run(lua_State *L)
{
    nu_lpod_t *p = nu__check_pod(L, 1);
    json_t *call;

    if (lua_istable(L, 2) && lua_rawlen(L, 2) > 0) {
        call = nu__call_from(L, "run", 3);
        json_object_set_new(call, "argv", nu__lua_to_json(L, 2, 0));
    } else if (lua_istable(L, 2)) {
        call = nu__call_from(L, "run", 2);
    } else {
        call = nu__call_from(L, "run", 3);
        json_object_set_new(call, "command", json_string(luaL_checkstring(L, 2)));
    }
    return nu__do_call(L, p, call);
}

static int nu__m_fetch(lua_State *L)
{
    nu_lpod_t *p = nu__check_pod(L, 1);
    json_t *call;

    if (nu__table_form(L))
        return nu__do_call(L, p, nu__call_from(L, "web_fetch", 2));
    call = nu__call_from(L, "web_fetch", 3);
    json_object_set_new(call, "url", json_string(luaL_checkstring(L, 2)));
    return nu__do_call(L, p, call);
}

/* pod:call{tool = ..., ...}: any tool call as a table. */
static int nu__m_call(lua_State *L)
{
    nu_lpod_t *p = nu__check_pod(L, 1);
    json_t *call;

    luaL_checktype(L, 2, LUA_TTABLE);
    call = nu__lua_to_json(L, 2, 0);
    return nu__do_call(L, p, call);
}

static int nu__push_failure(lua_State *L, const char *kind, const char *reason)
{
    lua_pushnil(L);
    lua_createtable(L, 0, 2);
    lua_pushstring(L, kind);
    lua_setfield(L, -2, "kind");
    lua_pushstring(L, reason);
    lua_setfield(L, -2, "reason");
    nu__set_error_mt(L);
    return 2;
}

static int nu__m_charge(lua_State *L)
{
    nu_lpod_t *p = nu__check_pod(L, 1);
    nu_err_t err;
    double usd;
    lua_Integer in, out;

    luaL_checktype(L, 2, LUA_TTABLE);
    lua_getfield(L, 2, "usd");
    usd = luaL_optnumber(L, -1, 0);
    lua_getfield(L, 2, "input_tokens");
    in = luaL_optinteger(L, -1, 0);
    lua_getfield(L, 2, "output_tokens");
    out = luaL_optinteger(L, -1, 0);
    lua_pop(L, 3);

    int rc = nu_pod_charge(p->pod, usd, in, out, &err);
    if (rc == NU_EINVAL)
        return nu__push_failure(L, "invalid_request", err.msg);
    if (rc == NU_ELIMIT)
        return nu__push_failure(L, "budget_exhausted", err.msg);
    if (rc != NU_OK)
        return nu__push_failure(L, "io_error", err.msg);
    lua_pushboolean(L, 1);
    return 1;
}

/* pod:approve(key [, {count =, ttl =}]) */
static int nu__m_approve(lua_State *L)
{
    nu_lpod_t *p = nu__check_pod(L, 1);
    const char *key = luaL_checkstring(L, 2);
    lua_Integer count = 1, ttl = 0;
    nu_err_t err;

    if (lua_istable(L, 3)) {
        lua_getfield(L, 3, "count");
        count = luaL_optinteger(L, -1, 1);
        lua_getfield(L, 3, "ttl");
        ttl = luaL_optinteger(L, -1, 0);
        lua_pop(L, 2);
    }
    if (count < 1 || count > 1000 || ttl < 0 || ttl > NU_APPROVAL_TTL_MAX)
        return nu__push_failure(L, "invalid_request",
                                "approve: count must be 1 to 1000 and ttl 0 to 300");
    if (nu_pod_grant(p->pod, key, (int)count, (int)ttl, "orchestrator",
                     &err) != NU_OK)
        return nu__push_failure(L, err.code == NU_EINVAL ? "invalid_request"
                                                         : "io_error", err.msg);
    lua_pushboolean(L, 1);
    return 1;
}

static int nu__m_deny(lua_State *L)
{
    nu_lpod_t *p = nu__check_pod(L, 1);
    nu_err_t err;

    if (nu_pod_deny(p->pod, luaL_checkstring(L, 2), "orchestrator", &err) != NU_OK)
        return nu__push_failure(L, "invalid_request", err.msg);
    lua_pushboolean(L, 1);
    return 1;
}

static int nu__m_pending(lua_State *L)
{
    nu_lpod_t *p = nu__check_pod(L, 1);
    json_t *list = nu_pod_pending(p->pod);

    nu__policy_push_json(L, list, (size_t)1 << 30);
    json_decref(list);
    return 1;
}

static int nu__m_info(lua_State *L)
{
    nu_lpod_t *p = nu__check_pod(L, 1);
    json_t *info = nu_pod_info(p->pod);

    nu__policy_push_json(L, info, (size_t)1 << 30);
    json_decref(info);
    return 1;
}

static int nu__m_explain(lua_State *L)
{
    nu_lpod_t *p = nu__check_pod(L, 1);
    const nu_decision_t *d = &p->last;

    if (!p->has_last) {
        lua_pushnil(L);
        return 1;
    }
    lua_createtable(L, 0, 8);
    lua_pushstring(L, nu_verdict_name(d->verdict));
    lua_setfield(L, -2, "decision");
    lua_pushinteger(L, d->step);
    lua_setfield(L, -2, "step");
    lua_pushstring(L, nu_decision_op_name(d));
    lua_setfield(L, -2, "operation");
    lua_pushstring(L, nu_kind_name(d->kind));
    lua_setfield(L, -2, "kind");
    lua_pushstring(L, d->reason);
    lua_setfield(L, -2, "reason");
    lua_pushstring(L, d->cmd_summary);
    lua_setfield(L, -2, "commands");
    if (d->approval_key[0] != '\0') {
        lua_pushstring(L, d->approval_key);
        lua_setfield(L, -2, "approval_key");
    }
    return 1;
}

/* pod:attenuate(perm) where perm is a lattice value or a profile name. */
static int nu__m_attenuate(lua_State *L)
{
    nu_lpod_t *p = nu__check_pod(L, 1);
    nu_perm_t *perm = nu__lua_test_perm(L, 2);
    nu_profile_t *profile = NULL;
    nu_err_t err;
    int rc;

    if (perm == NULL) {
        if (nu_profile_load(&profile, luaL_checkstring(L, 2), NULL, &err) != NU_OK)
            return nu__push_failure(L, "invalid_request", err.msg);
        perm = (nu_perm_t *)nu_profile_perm(profile);
    }
    rc = nu_pod_attenuate(p->pod, perm, &err);
    nu_profile_free(profile);
    if (rc != NU_OK)
        return nu__push_failure(L, "io_error", err.msg);
    lua_pushboolean(L, 1);
    return 1;
}

/* pod:spawn{profile = name|perm, workspace =, isolation =, budget =,
 * strict =}. */
static int nu__m_spawn(lua_State *L)
{
    nu_lpod_t *p = nu__check_pod(L, 1);
    nu_pod_options_t opts;
    nu_profile_t *profile = NULL;
    nu_perm_t requested, *req = NULL;
    nu_pod_t *child = NULL;
    nu_err_t err;
    bool strict;
    int rc;

    luaL_checktype(L, 2, LUA_TTABLE);
    nu_pod_options_init(&opts);
    opts.workspace = nu__opt_string(L, 2, "workspace");
    opts.namespace_ = nu__opt_string(L, 2, "namespace");
    opts.isolation = nu__opt_string(L, 2, "isolation");
    lua_getfield(L, 2, "strict");
    strict = lua_toboolean(L, -1);
    lua_pop(L, 1);

    lua_getfield(L, 2, "profile");
    if ((req = nu__lua_test_perm(L, -1)) == NULL && lua_isstring(L, -1)) {
        if (nu_profile_load(&profile, lua_tostring(L, -1), NULL, &err) != NU_OK)
            return nu__push_failure(L, "invalid_request", err.msg);
        req = (nu_perm_t *)nu_profile_perm(profile);
    }
    lua_pop(L, 1);

    nu_perm_t budget_only;
    bool restricted = nu__opt_restriction(L, 2, &budget_only);
    if (req == NULL) {
        nu_perm_init_top(&requested);
    } else if (nu_perm_copy(&requested, req) != NU_OK) {
        nu_profile_free(profile);
        nu_perm_free(&budget_only);
        return luaL_error(L, "spawn: out of memory");
    }
    if (restricted) {
        nu_perm_t met;
        nu_perm_meet(&met, &requested, &budget_only);
        nu_perm_free(&requested);
        requested = met;
    }
    nu_perm_free(&budget_only);
    nu_profile_free(profile);

    rc = nu_pod_spawn(p->pod, &opts, &requested, strict, &child, &err);
    nu_perm_free(&requested);
    if (rc != NU_OK)
        return nu__push_failure(L, rc == NU_EDENIED ? "capability_denied"
                                   : rc == NU_ELIMIT ? "budget_exhausted"
                                   : "sandbox_error", err.msg);

    /* The child is owned by the parent pod: closing the parent closes it,
     * so the Lua object only borrows it. */
    nu__push_pod(L, child, NULL, LUA_NOREF);
    nu_lpod_t *c = lua_touserdata(L, -1);
    c->parent_box = p;
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1);   /* keep the parent alive */
    return 1;
}

static int nu__m_close(lua_State *L)
{
    nu_lpod_t *p = luaL_checkudata(L, 1, NU__POD_MT);

    if (nu__lpod_alive(p))
        nu_pod_close(p->pod);
    p->pod = NULL;
    return 0;
}

static int nu__pod_gc(lua_State *L)
{
    nu_lpod_t *p = luaL_checkudata(L, 1, NU__POD_MT);

    /* A child whose parent was closed first is already gone. */
    if (nu__lpod_alive(p))
        nu_pod_close(p->pod);
    p->pod = NULL;
    nu_profile_free(p->profile);
    p->profile = NULL;
    if (p->approve_ref != LUA_NOREF)
        luaL_unref(L, LUA_REGISTRYINDEX, p->approve_ref);
    p->approve_ref = LUA_NOREF;
    return 0;
}

static int nu__pod_index(lua_State *L)
{
    nu_lpod_t *p = luaL_checkudata(L, 1, NU__POD_MT);
    const char *key = luaL_checkstring(L, 2);

    if (strcmp(key, "id") == 0 || strcmp(key, "spiffe_id") == 0) {
        if (!nu__lpod_alive(p))
            return 0;
        lua_pushstring(L, key[0] == 'i' ? nu_pod_id(p->pod)
                                        : nu_pod_spiffe_id(p->pod));
        return 1;
    }
    if (strcmp(key, "closed") == 0) {
        lua_pushboolean(L, !nu__lpod_alive(p));
        return 1;
    }
    luaL_getmetatable(L, NU__POD_MT);
    lua_getfield(L, -1, "methods");
    lua_getfield(L, -1, key);
    return 1;
}

static int nu__pod_tostring(lua_State *L)
{
    nu_lpod_t *p = luaL_checkudata(L, 1, NU__POD_MT);

    if (!nu__lpod_alive(p))
        lua_pushliteral(L, "nucleus.pod (closed)");
    else
        lua_pushfstring(L, "nucleus.pod %s", nu_pod_id(p->pod));
    return 1;
}

static const luaL_Reg nu__pod_methods[] = {
    { "read", nu__m_read },       { "write", nu__m_write },
    { "edit", nu__m_edit },       { "glob", nu__m_glob },
    { "grep", nu__m_grep },       { "run", nu__m_run },
    { "fetch", nu__m_fetch },     { "call", nu__m_call },
    { "charge", nu__m_charge },   { "approve", nu__m_approve },
    { "deny", nu__m_deny },       { "pending", nu__m_pending },
    { "attenuate", nu__m_attenuate }, { "spawn", nu__m_spawn },
    { "close", nu__m_close },     { "info", nu__m_info },
    { "explain", nu__m_explain }, { NULL, NULL },
};

void nu__lua_register_pod(lua_State *L);

/* Add pod to the module table at the top of the stack. */
void nu__lua_register_pod(lua_State *L)
{
    if (luaL_newmetatable(L, NU__POD_MT)) {
        lua_pushcfunction(L, nu__pod_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, nu__pod_gc);
        lua_setfield(L, -2, "__close");
        lua_pushcfunction(L, nu__pod_index);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, nu__pod_tostring);
        lua_setfield(L, -2, "__tostring");
        luaL_newlib(L, nu__pod_methods);
        lua_setfield(L, -2, "methods");
    }
    lua_pop(L, 1);

    lua_pushcfunction(L, nu__pod_new);
    lua_setfield(L, -2, "pod");
}
