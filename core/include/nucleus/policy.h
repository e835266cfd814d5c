/*
 * policy.h - profiles and the sandboxed Lua policy engine.
 *
 * A profile is a permission (a lattice element, see lattice.h) plus
 * optional Lua hooks.  It is loaded from a Lua file that returns
 * nucleus.profile{...}, from the canonical JSON that "nucleus policy show"
 * prints, or from a built-in name (policies/<name>.lua, compiled into the
 * library).
 *
 * Threat model: profile and hook code is written by an operator but may be
 * copied from elsewhere, so it is treated as untrusted code running with
 * no authority.  Each profile gets its own lua_State (a nu_policy_t),
 * created from trusted C, in which:
 *   1. only an allow-list of the standard library exists: no io, debug,
 *      package, require, dofile, loadfile, print, collectgarbage,
 *      string.dump, string.pack, math.random; os has only time and clock;
 *      load accepts only text chunks with an explicit environment table;
 *   2. the globals and every standard table are read-only proxies;
 *      reading an undefined global is an error and so is assigning one;
 *      rawset refuses protected tables and setmetatable refuses __gc;
 *   3. the string metatable is replaced and protected, so
 *      getmetatable("") returns a placeholder;
 *   4. every call into Lua runs under a count hook (instruction limit), a
 *      wall-clock deadline checked by that hook, and a memory cap enforced
 *      by the allocator.  After a limit trips, the hook raises again every
 *      instruction, so pcall, xpcall handlers and coroutines cannot keep
 *      running, and the result is an error whatever the code returns;
 *   5. C functions that could run long without reaching a hook
 *      (string.find, match, gmatch, gsub, rep, table.move) are wrapped to
 *      refuse inputs whose worst case exceeds a fixed step budget;
 *   6. after loading, every table reachable from the hooks is frozen in
 *      place and every upvalue is recorded; after each call the upvalues
 *      are restored, so one evaluation cannot influence the next.  Hooks
 *      that capture a coroutine or a foreign userdata are rejected at load.
 * Any error, tripped limit or unexpected return value fails closed: the
 * decision becomes deny with kind policy_error and a message naming the
 * profile file and line.
 */
#ifndef NUCLEUS_POLICY_H
#define NUCLEUS_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "nucleus/decide.h"
#include "nucleus/error.h"
#include "nucleus/lattice.h"

/* --- limits ----------------------------------------------------------- */

/* Limits of one call into policy code (loading a profile, one hook call,
 * one test case). */
typedef struct nu_policy_limits {
    size_t memory;          /* bytes the state may grow during the call */
    uint64_t instructions;  /* Lua VM instructions */
    uint32_t timeout_ms;    /* wall clock */
    size_t string_max;      /* longest string copied into a hook argument */
} nu_policy_limits_t;

#define NU_POLICY_DEFAULT_MEMORY (4u * 1024 * 1024)
#define NU_POLICY_DEFAULT_INSTRUCTIONS 1000000u
#define NU_POLICY_DEFAULT_TIMEOUT_MS 250u
#define NU_POLICY_DEFAULT_STRING_MAX (1024u * 1024)

/* Worst-case steps a wrapped string function may take: for a subject of
 * n bytes, a pattern of m bytes with q backtracking items (* + - ? %b and
 * back-references), the estimate is (m + 1) * (n + 1)^(q + 1). */
#define NU_POLICY_MATCH_STEPS 5e7

/* Largest count string.rep and table.move accept. */
#define NU_POLICY_MAX_REPEAT (1u << 20)

void nu_policy_limits_default(nu_policy_limits_t *limits);

/* --- the sandboxed state ---------------------------------------------- */

typedef struct nu_policy nu_policy_t;

/* Create a sandboxed state with the allow-listed library and the nucleus
 * table (profile, ALL, SENSITIVE, AUTORUN, meet, join, leq, from_json).
 * limits may be NULL for the defaults; they are copied.  Returns NU_OK,
 * NU_ENOMEM, or NU_EINTERNAL with err set. */
int nu_policy_new(nu_policy_t **out, const nu_policy_limits_t *limits,
                  nu_err_t *err);

void nu_policy_free(nu_policy_t *policy);

/* Bytes the state uses now, and the maximum it has used. */
size_t nu_policy_memory(const nu_policy_t *policy);
size_t nu_policy_memory_peak(const nu_policy_t *policy);

/* Run a text chunk in the sandbox under the limits and discard its
 * results.  chunkname names the source in messages ("@file.lua" or
 * "=name").  Returns NU_OK, or NU_EPOLICY with err set to
 * "FILE:LINE: message" (the error, "instruction limit exceeded", "time
 * limit exceeded" or "memory limit exceeded").  Meant for tests and the
 * escape corpus. */
int nu_policy_exec(nu_policy_t *policy, const char *chunkname,
                   const char *text, size_t len, nu_err_t *err);

/* --- profiles --------------------------------------------------------- */

typedef struct nu_profile nu_profile_t;

/* Load a profile.  nu_profile_load takes a file path (Lua, or canonical
 * JSON when the name ends in ".json" or the text starts with '{') or,
 * when no such file exists and the argument has no '/', a built-in name.
 * Errors are NU_ENOENT (no file or built-in of that name), NU_EIO,
 * NU_EPARSE (syntax), NU_EPOLICY (the profile is invalid, or its code
 * raised an error or tripped a limit) or NU_ENOMEM; err then holds
 * "FILE:LINE: message" (LINE is 0 when unknown).  The profile's permission
 * is normalized.  limits may be NULL. */
int nu_profile_load(nu_profile_t **out, const char *name_or_path,
                    const nu_policy_limits_t *limits, nu_err_t *err);
int nu_profile_load_file(nu_profile_t **out, const char *path,
                         const nu_policy_limits_t *limits, nu_err_t *err);
int nu_profile_load_builtin(nu_profile_t **out, const char *name,
                            const nu_policy_limits_t *limits, nu_err_t *err);
/* Load from text; chunkname is the file name used in messages. */
int nu_profile_load_string(nu_profile_t **out, const char *chunkname,
                           const char *text, size_t len,
                           const nu_policy_limits_t *limits, nu_err_t *err);

void nu_profile_free(nu_profile_t *profile);

/* The name (from the profile, else the file's base name), the source
 * (file path or "builtin:NAME") and the normalized permission. */
const char *nu_profile_name(const nu_profile_t *profile);
const char *nu_profile_source(const nu_profile_t *profile);
const nu_perm_t *nu_profile_perm(const nu_profile_t *profile);
bool nu_profile_has_check(const nu_profile_t *profile);
bool nu_profile_has_approve(const nu_profile_t *profile);

/* USD the profile charges per call of tool ("run", "read", ...; its
 * "costs" table), 0 when it names no cost.  Every call also counts as one
 * tool call. */
double nu_profile_cost(const nu_profile_t *profile, const char *tool);

/* The sandbox of a profile with hooks, or NULL. */
nu_policy_t *nu_profile_policy(const nu_profile_t *profile);

/* Built-in profile sources compiled from policies/NAME.lua: the source of
 * name (NULL when there is none) and the names, NULL-terminated. */
const char *nu_profile_builtin_source(const char *name, size_t *len);
const char *const *nu_profile_builtin_names(void);

/* --- evaluation ------------------------------------------------------- */

/* Session facts handed to hooks as ctx (read-only) besides the decide
 * context.  Never credentials. */
typedef struct nu_policy_ctx {
    const char *pod_id;        /* may be NULL */
    const char *spiffe_id;     /* may be NULL */
    /* The permission to decide with, when it is not the profile's own (a
     * pod's effective permission after attenuation); NULL = the profile's.
     * Must be normalized. */
    const nu_perm_t *perm;
} nu_policy_ctx_t;

/* Decide a tool call: nu_decide (steps 1-7) and, unless that denied, the
 * profile's check hook (step 8), which may only tighten: "deny" turns the
 * decision into deny (kind policy_error is not used; the hook's deny is
 * kind capability_denied with the hook's reason), "approval" turns an
 * allow into approval_required with the call's approval key, "allow" or
 * nothing leaves it.  A hook error or limit makes it deny/policy_error.
 * *hook_allow_attempt (may be NULL) is set when the hook returned "allow"
 * for a call it could not widen, so the caller can audit it.
 * Returns NU_OK whenever *out holds a decision; other codes leave a
 * deny/internal decision in *out.  A profile's sandbox is one lua_State:
 * evaluate (and approve with) one profile from one thread at a time. */
int nu_profile_eval(nu_profile_t *profile, const json_t *call,
                    const nu_decide_ctx_t *dctx, const nu_policy_ctx_t *pctx,
                    nu_decision_t *out, bool *hook_allow_attempt);

/* Results of the approve hook. */
typedef enum {
    NU_APPROVE_ASK = 0,
    NU_APPROVE_APPROVE = 1,
    NU_APPROVE_DENY = 2
} nu_approve_t;

/* Run the profile's approve hook on a pending request ({"operation",
 * "approval_key", "call", "reason"}).  Without a hook the answer is ask.
 * A hook error or limit answers deny and returns NU_EPOLICY with err set. */
int nu_profile_approve(nu_profile_t *profile, const json_t *request,
                       const nu_decide_ctx_t *dctx,
                       const nu_policy_ctx_t *pctx, nu_approve_t *answer,
                       nu_err_t *err);

/* The decision as the one-line JSON object "nucleus policy eval" prints:
 * {"decision","operation","kind"?,"reason"?,"approval_key"?}.  New
 * reference. */
json_t *nu_decision_to_json(const nu_decision_t *decision);

/* --- policy tests ----------------------------------------------------- */

/* Run one *_test.lua file: it returns a table of functions; every key
 * starting with "test" is a case.  Results are added to *passed and
 * *failed; failures are reported through report (may be NULL) as
 * "NAME: FILE:LINE: message", or "FILE:LINE: message" when the file
 * itself fails. */
typedef void (*nu_policy_report_fn)(const char *line, void *userdata);
int nu_policy_test_file(const char *path, const nu_policy_limits_t *limits,
                        int *passed, int *failed,
                        nu_policy_report_fn report, void *userdata);

#endif
