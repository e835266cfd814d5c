/*
 * policy_internal.h - shared pieces of policy*.c and the nucleus.core Lua
 * module (not a public interface).
 */
#ifndef NUCLEUS_POLICY_INTERNAL_H
#define NUCLEUS_POLICY_INTERNAL_H

#include <lua.h>
#include <lauxlib.h>

#include "nucleus/lattice.h"
#include "nucleus/policy.h"

/* Metatable name of lattice values in every Lua state. */
#define NU__PERM_MT "nucleus.perm"

/* --- the sandbox (policy.c) ------------------------------------------- */

/* Create a sandbox; test_mode adds nucleus.test (policy_test.c). */
int nu__policy_new(nu_policy_t **out, const nu_policy_limits_t *limits,
                   bool test_mode, nu_err_t *err);

lua_State *nu__policy_state(nu_policy_t *policy);
const nu_policy_limits_t *nu__policy_limits(const nu_policy_t *policy);

/* The sandbox owning L (any thread of it), or NULL for a state that is
 * not a sandbox (the nucleus.core module). */
nu_policy_t *nu__policy_from_state(lua_State *L);

/* Call the function below nargs arguments on the stack under the limits.
 * On NU_OK the nresults results replace function and arguments; on
 * NU_EPOLICY (err: "FILE:LINE: message") they are popped. */
int nu__policy_call(nu_policy_t *policy, int nargs, int nresults,
                    nu_err_t *err);

/* Load a text chunk and leave it on the stack (NU_OK) or fill err with
 * "FILE:LINE: message" (NU_EPARSE, NU_EPOLICY for memory). */
int nu__policy_load(nu_policy_t *policy, const char *chunkname,
                    const char *text, size_t len, nu_err_t *err);

/* Seal the value at idx: freeze every table reachable from it in place
 * and record every upvalue of every closure reachable from it, so that
 * nu__policy_call restores them after each call.  Fails (NU_EPOLICY,
 * err set) for reachable coroutines and foreign userdata. */
int nu__policy_seal(nu_policy_t *policy, int idx, nu_err_t *err);

/* Make the table at idx read-only in place: its contents move to a hidden
 * table reached through __index, __newindex raises, __len and __pairs see
 * the hidden table and getmetatable returns "protected". */
void nu__policy_freeze(lua_State *L, int idx);

/* Push a copy of a JSON value as Lua values (objects and arrays become
 * tables, null becomes nil).  Strings longer than string_max raise a Lua
 * error naming the field; so does nesting deeper than 64. */
void nu__policy_push_json(lua_State *L, const json_t *value,
                          size_t string_max);

/* Count bytes held outside the Lua heap for a value of a sandbox (a
 * lattice value's strings) against the memory cap: over the cap, charge
 * raises a memory error and the call fails like an allocator refusal.
 * Both do nothing in a state that is not a sandbox. */
void nu__policy_charge(lua_State *L, size_t bytes);
void nu__policy_uncharge(lua_State *L, size_t bytes);

/* Name the file that messages use when no line is known. */
void nu__policy_set_source(nu_policy_t *policy, const char *source);

/* Name "FILE:LINE" for errors that carry no line (memory), until reset.
 * The string is not copied: it must outlive its use (NULL resets). */
void nu__policy_set_where(nu_policy_t *policy, const char *where);

/* Location "SOURCE:LINE" of the function at idx (its definition). */
void nu__policy_where(lua_State *L, int idx, char *out, size_t size);

/* Raise a Lua error whose message is formatted by vsnprintf, with the
 * position prefix luaL_error adds.  lua_pushfstring supports only %s %d %I %f
 * %p %c %U and %%, and raises "invalid option '%z' to 'lua_pushfstring'"
 * for the rest (%zu, %lld, %.40s) in place of the message (Lua 5.4.4).
 * Does not return. */
int nu__policy_error(lua_State *L, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* --- lattice values (policy_lua.c) ------------------------------------ */

/* Register the perm metatable and build the nucleus table (profile, ALL,
 * SENSITIVE, AUTORUN, meet, join, leq, from_json, top, bottom) on the
 * stack.  sandboxed freezes the constants. */
void nu__lua_push_nucleus(lua_State *L, bool sandboxed);

/* Push a new lattice value owning *perm (which is moved: *perm is left
 * empty and must not be freed by the caller). */
void nu__lua_push_perm(lua_State *L, nu_perm_t *perm);

/* The lattice value at idx, or a Lua error ("perm expected"). */
nu_perm_t *nu__lua_check_perm(lua_State *L, int idx);
nu_perm_t *nu__lua_test_perm(lua_State *L, int idx);

/* Push the profile fields of the value at idx (a table with name,
 * description, check, approve, public, untrusted), or nil when it is a
 * plain lattice value. */
void nu__lua_push_profile_info(lua_State *L, int idx);

/* Push a string set as a Lua list (nucleus.ALL for TOP). */
void nu__lua_push_strset(lua_State *L, const nu_strset_t *set);

/* Read a list of strings (or nucleus.ALL) at idx into set; luaL_error on
 * bad input naming what. */
void nu__lua_check_strset(lua_State *L, int idx, const char *what,
                          nu_strset_t *set);

/* --- profiles (policy_profile.c) -------------------------------------- */

struct nu_profile {
    char *name;
    char *source;
    nu_perm_t perm;
    nu_strset_t public_paths;
    nu_strset_t untrusted_paths;
    bool has_labels;
    double costs[8];           /* USD per call of each tool (policy.h) */
    nu_policy_t *policy;       /* NULL for a profile without hooks */
    int check_ref;             /* registry refs in policy, or LUA_NOREF */
    int approve_ref;
    char check_where[160];     /* "FILE:LINE" of each hook's definition */
    char approve_where[160];
};

/* The built-in sources, generated at build time from policies/NAME.lua. */
typedef struct nu__builtin {
    const char *name;
    const char *source;
    size_t len;
} nu__builtin_t;
extern const nu__builtin_t nu__builtin_profiles[];

/* Decide for a lattice value held in a Lua state (policy tests and the
 * nucleus.core module): nu_decide plus the check hook of its profile
 * fields, called in L itself (unprotected: errors propagate). */
void nu__lua_eval_perm(lua_State *L, int perm_idx, const json_t *call,
                       const nu_decide_ctx_t *dctx, nu_decision_t *out);

/* Push ctx (a read-only userdata) for a hook call. */
void nu__lua_push_ctx(lua_State *L, const nu_perm_t *perm,
                      const nu_decide_ctx_t *dctx,
                      const nu_policy_ctx_t *pctx);

/* __newindex that raises "attempt to modify read-only table". */
int nu__policy_ro_newindex(lua_State *L);

/* Add nucleus.test to the nucleus table at the top of the stack when the
 * state is a test sandbox (policy_test.c). */
void nu__lua_open_test(lua_State *L);

/* Apply check's results (at top-1 .. top, nresults values) to *out. */
int nu__policy_apply_check(lua_State *L, int nresults, const char *where,
                           const json_t *call, nu_decision_t *out,
                           bool *allow_attempt, nu_err_t *err);

/* Read test/eval options ({exposure, egress, now, spent}) at idx. */
void nu__lua_parse_opts(lua_State *L, int idx, nu_decide_ctx_t *ctx);

/* Push a decision as a table {decision, operation, kind, reason,
 * approval_key}. */
void nu__lua_push_decision(lua_State *L, const nu_decision_t *d);

/* Convert the Lua value at idx to JSON (tables with only 1..n keys become
 * arrays).  Returns NULL with a Lua error raised on unsupported values. */
json_t *nu__lua_to_json(lua_State *L, int idx, int depth);

#endif
