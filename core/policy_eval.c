/*
 * policy_eval.c - one policy decision: nu_decide plus the Lua hooks.
 *
 * Step 8 of the pipeline.  The check hook sees a fresh copy of the call and
 * a read-only ctx userdata, runs inside the profile's sandbox under its
 * limits, and may only tighten the static decision:
 *
 *   returns            static allow          static approval   static deny
 *   nothing / nil      allow                 approval          deny
 *   "allow", ...       allow (attempt set)   approval (set)    deny (set)
 *   "approval", why    approval_required     approval          deny
 *   "deny", why        deny                  deny              deny
 *   anything else,
 *   an error or limit  deny, policy_error    (the same)        (the same)
 *
 * "attempt set" means *hook_allow_attempt is true so the caller can audit
 * that the hook tried to allow.  The hook is not run for calls that fail
 * request validation (invalid_request) or that could not be decided
 * (internal).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "nucleus/json.h"
#include "policy_internal.h"

#define NU__REASON_MAX 400

/* --- ctx ------------------------------------------------------------- */

#define NU__CTX_MT "nucleus.ctx"

typedef struct nu__ctx {
    unsigned exposure;
    bool egress;
    nu_budget_t remaining;
    int64_t now;
} nu__ctx_t;

/* User values of the ctx userdata: the pod id and the SPIFFE ID strings. */
#define NU__CTX_POD_ID 1
#define NU__CTX_SPIFFE_ID 2

static int64_t nu__remaining(int64_t max, int64_t spent)
{
    if (max == NU_UNLIMITED)
        return NU_UNLIMITED;
    return spent >= max ? 0 : max - spent;
}

static void nu__push_count(lua_State *L, int64_t v)
{
    if (v == NU_UNLIMITED)
        lua_pushnumber(L, HUGE_VAL);
    else
        lua_pushinteger(L, (lua_Integer)v);
}

static int nu__ctx_index(lua_State *L)
{
    const nu__ctx_t *c = luaL_checkudata(L, 1, NU__CTX_MT);
    const char *key = luaL_checkstring(L, 2);

    if (strcmp(key, "exposure") == 0) {
        lua_createtable(L, 0, 3);
        lua_pushboolean(L, (c->exposure & NU_LEG_PRIVATE) != 0);
        lua_setfield(L, -2, "private");
        lua_pushboolean(L, (c->exposure & NU_LEG_UNTRUSTED) != 0);
        lua_setfield(L, -2, "untrusted");
        lua_pushboolean(L, (c->exposure & NU_LEG_EXFIL) != 0);
        lua_setfield(L, -2, "exfil");
    } else if (strcmp(key, "budget") == 0) {
        lua_createtable(L, 0, 4);
        lua_pushnumber(L, c->remaining.usd);
        lua_setfield(L, -2, "usd");
        nu__push_count(L, c->remaining.input_tokens);
        lua_setfield(L, -2, "input_tokens");
        nu__push_count(L, c->remaining.output_tokens);
        lua_setfield(L, -2, "output_tokens");
        nu__push_count(L, c->remaining.tool_calls);
        lua_setfield(L, -2, "tool_calls");
    } else if (strcmp(key, "egress") == 0) {
        lua_pushboolean(L, c->egress);
    } else if (strcmp(key, "time") == 0) {
        lua_pushinteger(L, (lua_Integer)c->now);
    } else if (strcmp(key, "pod_id") == 0) {
        lua_getiuservalue(L, 1, NU__CTX_POD_ID);
    } else if (strcmp(key, "spiffe_id") == 0) {
        lua_getiuservalue(L, 1, NU__CTX_SPIFFE_ID);
    } else {
        lua_pushnil(L);
    }
    return 1;
}

static int nu__ctx_newindex(lua_State *L)
{
    return luaL_error(L, "attempt to modify read-only ctx");
}

void nu__lua_push_ctx(lua_State *L, const nu_perm_t *perm,
                      const nu_decide_ctx_t *dctx,
                      const nu_policy_ctx_t *pctx)
{
    nu__ctx_t *c = lua_newuserdatauv(L, sizeof *c, 2);

    memset(c, 0, sizeof *c);
    if (dctx != NULL) {
        c->exposure = dctx->exposure;
        c->egress = dctx->egress;
        c->now = dctx->now;
        c->remaining.usd = isinf(perm->budget.usd)
                               ? HUGE_VAL
                               : fmax(0.0, perm->budget.usd - dctx->spent.usd);
        c->remaining.input_tokens = nu__remaining(perm->budget.input_tokens,
                                                  dctx->spent.input_tokens);
        c->remaining.output_tokens = nu__remaining(
            perm->budget.output_tokens, dctx->spent.output_tokens);
        c->remaining.tool_calls = nu__remaining(perm->budget.tool_calls,
                                                dctx->spent.tool_calls);
    } else {
        c->remaining = perm->budget;
    }
    if (pctx != NULL && pctx->pod_id != NULL) {
        lua_pushstring(L, pctx->pod_id);
        lua_setiuservalue(L, -2, NU__CTX_POD_ID);
    }
    if (pctx != NULL && pctx->spiffe_id != NULL) {
        lua_pushstring(L, pctx->spiffe_id);
        lua_setiuservalue(L, -2, NU__CTX_SPIFFE_ID);
    }

    if (luaL_newmetatable(L, NU__CTX_MT)) {
        lua_pushcfunction(L, nu__ctx_index);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, nu__ctx_newindex);
        lua_setfield(L, -2, "__newindex");
        lua_pushliteral(L, "protected");
        lua_setfield(L, -2, "__metatable");
    }
    lua_setmetatable(L, -2);
}

/* --- applying the check hook's result -------------------------------- */

static const char *nu__hook_reason(lua_State *L, int idx, const char *where,
                                   nu_err_t *err)
{
    int t = lua_type(L, idx);

    if (t == LUA_TNONE || t == LUA_TNIL)
        return NULL;
    if (t != LUA_TSTRING) {
        nu_err_set(err, NU_EPOLICY, "%s: check returned a %s as reason "
                                    "(expected a string)", where,
                   lua_typename(L, t));
        return "";
    }
    return lua_tostring(L, idx);
}

int nu__policy_apply_check(lua_State *L, int nresults, const char *where,
                           const json_t *call, nu_decision_t *out,
                           bool *allow_attempt, nu_err_t *err)
{
    int first = lua_gettop(L) - nresults + 1;
    const char *answer, *reason;

    nu_err_clear(err);
    if (nresults == 0 || lua_isnil(L, first))
        return nresults <= 1 ? NU_OK
                             : nu_err_set(err, NU_EPOLICY, "%s: check "
                                          "returned a reason without a "
                                          "verdict", where);
    if (nresults > 2)
        return nu_err_set(err, NU_EPOLICY, "%s: check returned %d values "
                                           "(expected a verdict and a "
                                           "reason)", where, nresults);
    if (lua_type(L, first) != LUA_TSTRING)
        return nu_err_set(err, NU_EPOLICY, "%s: check returned a %s "
                                           "(expected nothing, \"deny\" or "
                                           "\"approval\")", where,
                          luaL_typename(L, first));

    answer = lua_tostring(L, first);
    reason = nu__hook_reason(L, first + 1, where, err);
    if (err != NULL && err->code != NU_OK)
        return err->code;

    if (strcmp(answer, "allow") == 0) {
        if (allow_attempt != NULL)
            *allow_attempt = true;
        return NU_OK;
    }
    if (strcmp(answer, "deny") == 0) {
        if (out->verdict == NU_DECISION_DENY)
            return NU_OK;
        out->verdict = NU_DECISION_DENY;
        out->kind = NU_KIND_CAPABILITY_DENIED;
        out->step = 8;
        out->approval_key[0] = '\0';
        snprintf(out->reason, sizeof out->reason, "check hook: %.*s",
                 NU__REASON_MAX, reason != NULL ? reason : "denied");
        return NU_OK;
    }
    if (strcmp(answer, "approval") == 0) {
        if (out->verdict != NU_DECISION_ALLOW)
            return NU_OK;
        if (nu_approval_key(out->operation, call, out->approval_key) != NU_OK)
            return nu_err_set(err, NU_EPOLICY, "%s: cannot compute the "
                                               "approval key", where);
        out->verdict = NU_DECISION_APPROVAL;
        out->kind = NU_KIND_APPROVAL_REQUIRED;
        out->step = 8;
        snprintf(out->reason, sizeof out->reason, "check hook: %.*s",
                 NU__REASON_MAX,
                 reason != NULL ? reason : "approval required");
        return NU_OK;
    }
    return nu_err_set(err, NU_EPOLICY, "%s: check returned \"%.40s\" "
                                       "(expected nothing, \"deny\" or "
                                       "\"approval\")", where, answer);
}

static void nu__fail_closed(nu_decision_t *out, const char *msg)
{
    out->verdict = NU_DECISION_DENY;
    out->kind = NU_KIND_POLICY_ERROR;
    out->step = 8;
    out->approval_key[0] = '\0';
    snprintf(out->reason, sizeof out->reason, "%s", msg);
}

static bool nu__hook_applies(const nu_decision_t *d)
{
    return !(d->verdict == NU_DECISION_DENY &&
             (d->kind == NU_KIND_INVALID_REQUEST ||
              d->kind == NU_KIND_INTERNAL));
}

/* --- evaluation in a profile's sandbox ------------------------------- */

typedef struct nu__eval {
    nu_profile_t *profile;
    const json_t *call;
    const nu_decide_ctx_t *dctx;
    const nu_policy_ctx_t *pctx;
    nu_decision_t *out;
    bool *allow_attempt;
    nu_approve_t *answer;
    nu_err_t err;
} nu__eval_t;

/* The permission a decision uses: the pod's effective one when given. */
static const nu_perm_t *nu__effective_perm(const nu_profile_t *profile,
                                           const nu_policy_ctx_t *pctx)
{
    return pctx != NULL && pctx->perm != NULL ? pctx->perm : &profile->perm;
}

static int nu__eval_protected(lua_State *L)
{
    nu__eval_t *e = lua_touserdata(L, 1);
    const nu_policy_limits_t *limits =
        nu__policy_limits(e->profile->policy);
    const char *where = e->profile->check_where;
    int base, rc;

    lua_settop(L, 0);
    lua_rawgeti(L, LUA_REGISTRYINDEX, e->profile->check_ref);
    nu__policy_push_json(L, e->call, limits->string_max);
    nu__lua_push_ctx(L, nu__effective_perm(e->profile, e->pctx), e->dctx,
                     e->pctx);
    base = 0;
    lua_call(L, 2, LUA_MULTRET);

    rc = nu__policy_apply_check(L, lua_gettop(L) - base, where, e->call,
                                e->out, e->allow_attempt, &e->err);
    if (rc != NU_OK)
        return luaL_error(L, "%s", e->err.msg);
    return 0;
}

static void nu__labels(const nu_profile_t *profile, nu_decide_ctx_t *dctx)
{
    if (!profile->has_labels)
        return;
    if (dctx->public_paths == NULL)
        dctx->public_paths = &profile->public_paths;
    if (dctx->untrusted_paths == NULL)
        dctx->untrusted_paths = &profile->untrusted_paths;
}

int nu_profile_eval(nu_profile_t *profile, const json_t *call,
                    const nu_decide_ctx_t *dctx, const nu_policy_ctx_t *pctx,
                    nu_decision_t *out, bool *hook_allow_attempt)
{
    nu_decide_ctx_t ctx = { 0 };
    nu__eval_t e;
    lua_State *L;
    int rc;

    if (hook_allow_attempt != NULL)
        *hook_allow_attempt = false;
    if (dctx != NULL)
        ctx = *dctx;
    nu__labels(profile, &ctx);

    rc = nu_decide(nu__effective_perm(profile, pctx), call, &ctx, out);
    if (rc != NU_OK || profile->check_ref == LUA_NOREF ||
        !nu__hook_applies(out))
        return rc;

    e.profile = profile;
    e.call = call;
    e.dctx = &ctx;
    e.pctx = pctx;
    e.out = out;
    e.allow_attempt = hook_allow_attempt;
    e.answer = NULL;
    nu_err_clear(&e.err);

    L = nu__policy_state(profile->policy);
    nu__policy_set_where(profile->policy, profile->check_where);
    lua_pushcfunction(L, nu__eval_protected);
    lua_pushlightuserdata(L, &e);
    if (nu__policy_call(profile->policy, 1, 0, &e.err) != NU_OK)
        nu__fail_closed(out, e.err.msg);
    return NU_OK;
}

/* --- the approve hook ------------------------------------------------ */

static int nu__approve_protected(lua_State *L)
{
    nu__eval_t *e = lua_touserdata(L, 1);
    const nu_policy_limits_t *limits =
        nu__policy_limits(e->profile->policy);
    const json_t *request = e->call;
    char where[160];
    const char *answer;

    lua_settop(L, 0);
    lua_rawgeti(L, LUA_REGISTRYINDEX, e->profile->approve_ref);
    nu__policy_where(L, 1, where, sizeof where);
    nu__policy_push_json(L, request, limits->string_max);
    nu__lua_push_ctx(L, nu__effective_perm(e->profile, e->pctx), e->dctx,
                     e->pctx);
    lua_call(L, 2, LUA_MULTRET);

    if (lua_gettop(L) < 1 || lua_type(L, 1) != LUA_TSTRING)
        return luaL_error(L, "%s: approve returned %s (expected \"approve\", "
                             "\"deny\" or \"ask\")", where,
                          lua_gettop(L) < 1 ? "nothing"
                                            : luaL_typename(L, 1));
    answer = lua_tostring(L, 1);
    if (strcmp(answer, "approve") == 0)
        *e->answer = NU_APPROVE_APPROVE;
    else if (strcmp(answer, "deny") == 0)
        *e->answer = NU_APPROVE_DENY;
    else if (strcmp(answer, "ask") == 0)
        *e->answer = NU_APPROVE_ASK;
    else
        return nu__policy_error(L, "%s: approve returned \"%.40s\" (expected "
                                   "\"approve\", \"deny\" or \"ask\")",
                                where, answer);
    return 0;
}

int nu_profile_approve(nu_profile_t *profile, const json_t *request,
                       const nu_decide_ctx_t *dctx,
                       const nu_policy_ctx_t *pctx, nu_approve_t *answer,
                       nu_err_t *err)
{
    nu__eval_t e = { 0 };
    lua_State *L;
    int rc;

    *answer = NU_APPROVE_ASK;
    if (profile->approve_ref == LUA_NOREF)
        return NU_OK;

    e.profile = profile;
    e.call = request;
    e.dctx = dctx;
    e.pctx = pctx;
    e.answer = answer;

    L = nu__policy_state(profile->policy);
    nu__policy_set_where(profile->policy, profile->approve_where);
    lua_pushcfunction(L, nu__approve_protected);
    lua_pushlightuserdata(L, &e);
    rc = nu__policy_call(profile->policy, 1, 0, &e.err);
    if (rc != NU_OK) {
        *answer = NU_APPROVE_DENY;
        return nu_err_set(err, NU_EPOLICY, "%s", e.err.msg);
    }
    return NU_OK;
}

/* --- evaluation of a lattice value inside a Lua state ---------------- */

static int nu__msgh_plain(lua_State *L)
{
    if (lua_type(L, 1) == LUA_TSTRING)
        return 1;
    lua_pushfstring(L, "error object is a %s value", luaL_typename(L, 1));
    return 1;
}

void nu__lua_eval_perm(lua_State *L, int perm_idx, const json_t *call,
                       const nu_decide_ctx_t *dctx, nu_decision_t *out)
{
    const nu_perm_t *perm = nu__lua_check_perm(L, perm_idx);
    nu_policy_t *policy = nu__policy_from_state(L);
    size_t string_max = policy != NULL
                            ? nu__policy_limits(policy)->string_max
                            : NU_POLICY_DEFAULT_STRING_MAX;
    nu_decide_ctx_t ctx = *dctx;
    nu_strset_t labels[2];
    char where[160];
    nu_err_t err;
    int top, base, status;

    perm_idx = lua_absindex(L, perm_idx);
    nu_strset_init_empty(&labels[0]);
    nu_strset_init_empty(&labels[1]);
    nu__lua_push_profile_info(L, perm_idx);
    top = lua_gettop(L);
    if (lua_istable(L, top)) {
        static const char *const keys[] = { "public", "untrusted" };
        for (int i = 0; i < 2; i++) {
            if (lua_getfield(L, top, keys[i]) != LUA_TNIL)
                nu__lua_check_strset(L, -1, keys[i], &labels[i]);
            lua_pop(L, 1);
        }
        ctx.public_paths = &labels[0];
        ctx.untrusted_paths = &labels[1];
    }

    nu_decide(perm, call, &ctx, out);
    nu_strset_free(&labels[0]);
    nu_strset_free(&labels[1]);

    if (!lua_istable(L, top) || !nu__hook_applies(out) ||
        lua_getfield(L, top, "check") != LUA_TFUNCTION) {
        lua_settop(L, top - 1);
        return;
    }

    nu__policy_where(L, -1, where, sizeof where);
    lua_pushcfunction(L, nu__msgh_plain);
    lua_insert(L, -2);
    base = lua_gettop(L) - 1;
    nu__policy_push_json(L, call, string_max);
    nu__lua_push_ctx(L, perm, &ctx, NULL);
    status = lua_pcall(L, 2, LUA_MULTRET, base);
    if (status != LUA_OK) {
        nu__fail_closed(out, lua_type(L, -1) == LUA_TSTRING
                                 ? lua_tostring(L, -1) : "hook failed");
    } else if (nu__policy_apply_check(L, lua_gettop(L) - base, where, call,
                                      out, NULL, &err) != NU_OK) {
        nu__fail_closed(out, err.msg);
    }
    lua_settop(L, top - 1);
}

/* --- output ---------------------------------------------------------- */

json_t *nu_decision_to_json(const nu_decision_t *d)
{
    json_t *obj = json_object();

    if (obj == NULL)
        return NULL;
    json_object_set_new(obj, "decision",
                        json_string(nu_verdict_name(d->verdict)));
    json_object_set_new(obj, "operation",
                        json_string(nu_decision_op_name(d)));
    if (d->kind != NU_KIND_NONE)
        json_object_set_new(obj, "kind", json_string(nu_kind_name(d->kind)));
    if (d->reason[0] != '\0') {
        json_t *reason = json_string(d->reason);
        /* A hook's reason may not be UTF-8: keep the field, say so. */
        if (reason == NULL)
            reason = json_string("(reason is not valid UTF-8)");
        json_object_set_new(obj, "reason", reason);
    }
    if (d->verdict == NU_DECISION_APPROVAL && d->approval_key[0] != '\0')
        json_object_set_new(obj, "approval_key",
                            json_string(d->approval_key));
    return obj;
}
