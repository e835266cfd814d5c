/*
 * policy.c - the sandboxed lua_State that runs profile and hook code.
 *
 * The threat model and the list of restrictions are in policy.h.  This file
 * builds the state in three steps and runs code in it:
 *
 *   1. allocator: every allocation goes through nu__policy_alloc, which
 *      keeps the byte count and refuses growth past policy->cap.  A refusal
 *      is sticky for the rest of the call, so a pcall that catches "not
 *      enough memory" cannot carry on and return a verdict.
 *   2. library: the standard libraries are opened, then the global table
 *      is emptied and refilled from an allow-list, and every library table
 *      is rebuilt from an allow-list and frozen (nu__policy_freeze).  The
 *      shared string metatable is replaced by one whose __index is the
 *      frozen string table and whose __metatable hides it.
 *   3. limits: nu__policy_call arms a count hook that fires every
 *      NU__HOOK_STEP instructions.  It charges the instruction budget and
 *      checks the deadline; when either is spent it records why and where,
 *      switches itself to fire on every instruction, and raises a light
 *      userdata (the kill token) that no Lua code can forge.  Coroutines
 *      inherit the hook and share the counters (they live in the
 *      nu_policy_t, found through the state's extra space).
 *      Each coroutine counts toward its next hook call on its own, so
 *      coroutine.create and wrap charge NU__HOOK_STEP instructions up
 *      front: short coroutines in a loop cannot run uncharged.
 *
 * C functions do not run hooks, so the library functions whose running
 * time is not bounded by their input size are wrapped: string.find,
 * match, gmatch and gsub refuse subject/pattern pairs whose worst-case
 * backtracking estimate exceeds NU_POLICY_MATCH_STEPS; string.rep and
 * table.move refuse counts over NU_POLICY_MAX_REPEAT.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "nucleus/log.h"
#include "policy_internal.h"

#define NU__HOOK_STEP 1000          /* instructions between hook calls */
#define NU__SEAL_MAX_DEPTH 100      /* nesting the seal walk follows */
#define NU__JSON_MAX_DEPTH 64

struct nu_policy {
    lua_State *L;
    nu_policy_limits_t limits;
    size_t used;                    /* bytes allocated now */
    size_t peak;
    size_t cap;                     /* allocation limit of this phase */
    bool mem_refused;               /* an allocation was refused */
    bool running;                   /* re-entry guard */
    uint64_t executed;              /* instructions charged this call */
    struct timespec deadline;
    bool killed;
    char kill_msg[NU_ERR_MAX];
    int snapshot_ref;               /* registry: fn, index, value triples */
    int snapshot_len;
    size_t gc_base;                 /* bytes held after the last full GC */
    char source[512];               /* file name of the profile */
    const char *where;              /* "FILE:LINE" named when no line is
                                       known; NULL for source */
};

/* The kill token: its address is unique and Lua code cannot create a
 * light userdata, so only the hook can raise it. */
static const char nu__kill_token = 'k';

/* Registry keys. */
static const char nu__protected_key = 'p'; /* weak set of frozen tables */
static const char nu__globals_key = 'g';   /* backing table of _G */

/* --- allocator ------------------------------------------------------- */

static void *nu__policy_alloc(void *ud, void *ptr, size_t osize,
                              size_t nsize)
{
    nu_policy_t *policy = ud;
    size_t old = ptr != NULL ? osize : 0;
    void *block;

    if (nsize == 0) {
        free(ptr);
        policy->used -= old;
        return NULL;
    }

    if (nsize > old && (policy->mem_refused ||
                        policy->used + (nsize - old) > policy->cap)) {
        policy->mem_refused = true;
        return NULL;
    }

    block = realloc(ptr, nsize);
    if (block == NULL)
        return NULL;

    policy->used = policy->used - old + nsize;
    if (policy->used > policy->peak)
        policy->peak = policy->used;
    return block;
}

void nu__policy_charge(lua_State *L, size_t bytes)
{
    nu_policy_t *policy = nu__policy_from_state(L);

    if (policy == NULL || bytes == 0)
        return;
    if (policy->mem_refused || policy->used + bytes > policy->cap) {
        policy->mem_refused = true;
        luaL_error(L, "not enough memory");
    }
    policy->used += bytes;
    if (policy->used > policy->peak)
        policy->peak = policy->used;
}

void nu__policy_uncharge(lua_State *L, size_t bytes)
{
    nu_policy_t *policy = nu__policy_from_state(L);

    if (policy != NULL)
        policy->used -= bytes;
}

/* --- limits ---------------------------------------------------------- */

void nu_policy_limits_default(nu_policy_limits_t *limits)
{
    limits->memory = NU_POLICY_DEFAULT_MEMORY;
    limits->instructions = NU_POLICY_DEFAULT_INSTRUCTIONS;
    limits->timeout_ms = NU_POLICY_DEFAULT_TIMEOUT_MS;
    limits->string_max = NU_POLICY_DEFAULT_STRING_MAX;
}

/* Only sandbox states set the extra space, at creation.  Other states
 * (the nucleus.core module in a plain interpreter) lack the registry key
 * that nu__policy_new sets, which is how they are recognized. */
static const char nu__sandbox_key = 's';

nu_policy_t *nu__policy_from_state(lua_State *L)
{
    nu_policy_t *policy;

    lua_rawgetp(L, LUA_REGISTRYINDEX, &nu__sandbox_key);
    policy = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return policy;
}

static nu_policy_t *nu__policy_fast(lua_State *L)
{
    return *(nu_policy_t **)lua_getextraspace(L);
}

/* The file name of a function's chunk, in full: Lua's short_src cuts
 * long paths to "...tail", which would break "FILE:LINE" messages. */
static const char *nu__source_name(const lua_Debug *ar)
{
    if (ar->source != NULL && (ar->source[0] == '@' || ar->source[0] == '='))
        return ar->source + 1;
    return ar->short_src;
}

/* Copy msg to out, replacing a leading "...tail:" (a short_src cut by
 * Lua's runtime errors) by the full source when source ends with tail. */
static void nu__expand_source(const char *source, const char *msg,
                              char *out, size_t size)
{
    const char *colon;
    size_t tail_len, source_len = strlen(source);

    if (strncmp(msg, "...", 3) != 0 || (colon = strchr(msg + 3, ':')) == NULL) {
        snprintf(out, size, "%s", msg);
        return;
    }
    tail_len = (size_t)(colon - (msg + 3));
    if (tail_len <= source_len &&
        memcmp(source + source_len - tail_len, msg + 3, tail_len) == 0)
        snprintf(out, size, "%s%s", source, colon);
    else
        snprintf(out, size, "%s", msg);
}

static bool nu__deadline_passed(const struct timespec *deadline)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    if (now.tv_sec != deadline->tv_sec)
        return now.tv_sec > deadline->tv_sec;
    return now.tv_nsec >= deadline->tv_nsec;
}

static void nu__policy_hook(lua_State *L, lua_Debug *ar)
{
    nu_policy_t *policy = nu__policy_fast(L);
    const char *why = NULL;

    if (policy == NULL)
        return;

    policy->executed += NU__HOOK_STEP;
    if (policy->killed)
        why = "";
    else if (policy->executed > policy->limits.instructions)
        why = "instruction limit";
    else if (nu__deadline_passed(&policy->deadline))
        why = "time limit";
    if (why == NULL)
        return;

    if (!policy->killed) {
        policy->killed = true;
        if (lua_getinfo(L, "Sl", ar) != 0 && ar->currentline > 0)
            snprintf(policy->kill_msg, sizeof policy->kill_msg,
                     "%s:%d: %s exceeded", nu__source_name(ar), ar->currentline,
                     why);
        else
            snprintf(policy->kill_msg, sizeof policy->kill_msg,
                     "%s exceeded", why);
    }

    /* Fire on every instruction from now on in this thread, so code that
     * catches the token stops at its next instruction. */
    lua_sethook(L, nu__policy_hook, LUA_MASKCOUNT, 1);
    lua_pushlightuserdata(L, (void *)&nu__kill_token);
    lua_error(L);
}

int nu__policy_error(lua_State *L, const char *fmt, ...)
{
    char message[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    return luaL_error(L, "%s", message);
}

/* --- freezing -------------------------------------------------------- */

int nu__policy_ro_newindex(lua_State *L)
{
    if (lua_type(L, 2) == LUA_TSTRING)
        return luaL_error(L, "attempt to modify read-only table (field '%s')",
                          lua_tostring(L, 2));
    return luaL_error(L, "attempt to modify read-only table");
}

static int nu__ro_len(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)lua_rawlen(L, lua_upvalueindex(1)));
    return 1;
}

static int nu__ro_next(lua_State *L)
{
    lua_settop(L, 2);
    if (lua_next(L, lua_upvalueindex(1)) == 0)
        return 0;
    return 2;
}

static int nu__ro_pairs(lua_State *L)
{
    lua_getmetatable(L, 1);
    lua_getfield(L, -1, "__index");
    lua_pushcclosure(L, nu__ro_next, 1);
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    return 3;
}

static void nu__mark_protected(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &nu__protected_key);
    lua_pushvalue(L, idx);
    lua_pushboolean(L, 1);
    lua_rawset(L, -3);
    lua_pop(L, 1);
}

static bool nu__is_protected(lua_State *L, int idx)
{
    bool protected_table;

    idx = lua_absindex(L, idx);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &nu__protected_key);
    lua_pushvalue(L, idx);
    protected_table = lua_rawget(L, -2) != LUA_TNIL;
    lua_pop(L, 2);
    return protected_table;
}

/* Push the table whose fields idx shows: the hidden backing table of a
 * frozen table, else the table itself. */
static void nu__push_contents(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    if (nu__is_protected(L, idx) && lua_getmetatable(L, idx)) {
        lua_pushliteral(L, "__index");
        if (lua_rawget(L, -2) == LUA_TTABLE) {
            lua_remove(L, -2);
            return;
        }
        lua_pop(L, 2);
    }
    lua_pushvalue(L, idx);
}

/* Push a new table with the fields idx shows (a shallow, raw copy). */
static void nu__push_shallow_copy(lua_State *L, int idx)
{
    nu__push_contents(L, idx);
    lua_newtable(L);
    lua_pushnil(L);
    while (lua_next(L, -3) != 0) {
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, -4);
    }
    lua_remove(L, -2);
}

void nu__policy_freeze(lua_State *L, int idx)
{
    int backing, meta;

    idx = lua_absindex(L, idx);
    luaL_checkstack(L, 8, "freeze");

    /* Move the contents into the hidden backing table. */
    lua_newtable(L);
    backing = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, backing);
    }
    lua_pushnil(L);
    while (lua_next(L, backing) != 0) {
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        lua_pushnil(L);
        lua_rawset(L, idx);
    }

    /* Keep the old metamethods.  Lua reads metatables raw, so both the
     * backing table (for lookups) and the new metatable get copies of the
     * old metatable's fields, taken from its backing table if it is
     * frozen itself. */
    lua_newtable(L);
    meta = lua_gettop(L);
    if (lua_getmetatable(L, idx)) {
        nu__push_shallow_copy(L, -1);
        lua_pushvalue(L, -1);
        lua_setmetatable(L, backing);
        lua_pushnil(L);
        while (lua_next(L, -2) != 0) {
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_rawset(L, meta);
        }
        lua_pop(L, 2);
    }

    lua_pushvalue(L, backing);
    lua_setfield(L, meta, "__index");
    lua_pushcfunction(L, nu__policy_ro_newindex);
    lua_setfield(L, meta, "__newindex");
    lua_pushvalue(L, backing);
    lua_pushcclosure(L, nu__ro_len, 1);
    lua_setfield(L, meta, "__len");
    lua_pushcfunction(L, nu__ro_pairs);
    lua_setfield(L, meta, "__pairs");
    lua_pushliteral(L, "protected");
    lua_setfield(L, meta, "__metatable");
    lua_pushnil(L);
    lua_setfield(L, meta, "__gc");
    lua_pushnil(L);
    lua_setfield(L, meta, "__mode");
    lua_setmetatable(L, idx);

    lua_pop(L, 1);
    nu__mark_protected(L, idx);
}

/* --- base library wrappers ------------------------------------------- */

static int nu__lua_rawset(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checkany(L, 2);
    luaL_checkany(L, 3);
    if (nu__is_protected(L, 1))
        return luaL_error(L, "attempt to modify read-only table");
    lua_settop(L, 3);
    lua_rawset(L, 1);
    return 1;
}

static int nu__lua_setmetatable(lua_State *L)
{
    int t = lua_type(L, 2);

    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
    if (nu__is_protected(L, 1) || luaL_getmetafield(L, 1, "__metatable"))
        return luaL_error(L, "cannot change a protected metatable");
    if (t == LUA_TTABLE) {
        /* A frozen table (a class captured by a hook) serves through a
         * fresh copy, because Lua reads metatables raw. */
        if (nu__is_protected(L, 2)) {
            nu__push_shallow_copy(L, 2);
            lua_replace(L, 2);
        }
        lua_pushliteral(L, "__gc");
        if (lua_rawget(L, 2) != LUA_TNIL)
            return luaL_error(L, "__gc metamethods are not allowed in "
                                 "policy code");
        lua_pop(L, 1);
    }
    lua_settop(L, 2);
    lua_setmetatable(L, 1);
    return 1;
}

/* pcall and xpcall as in the base library, except that a stack overflow
 * stays fatal: without this, recursion through pcall could catch its own
 * overflow and return a verdict. */
static bool nu__is_stack_overflow(lua_State *L, int idx)
{
    return lua_type(L, idx) == LUA_TSTRING &&
           strstr(lua_tostring(L, idx), "stack overflow") != NULL;
}

static int nu__finish_pcall(lua_State *L, int status, lua_KContext extra)
{
    nu_policy_t *policy = nu__policy_fast(L);

    if (status == LUA_OK || status == LUA_YIELD)
        return lua_gettop(L) - (int)extra;

    if (nu__is_stack_overflow(L, -1) && policy != NULL && !policy->killed) {
        lua_Debug ar;
        policy->killed = true;
        if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "Sl", &ar) &&
            ar.currentline > 0)
            snprintf(policy->kill_msg, sizeof policy->kill_msg,
                     "%s:%d: stack overflow", nu__source_name(&ar),
                     ar.currentline);
        else
            snprintf(policy->kill_msg, sizeof policy->kill_msg,
                     "%.400s: stack overflow", policy->source);
    }
    if (policy != NULL && policy->killed)
        return lua_error(L);

    lua_pushboolean(L, 0);
    lua_pushvalue(L, -2);
    return 2;
}

static int nu__lua_pcall(lua_State *L)
{
    int status;

    luaL_checkany(L, 1);
    lua_pushboolean(L, 1);
    lua_insert(L, 1);
    status = lua_pcallk(L, lua_gettop(L) - 2, LUA_MULTRET, 0, 0,
                        nu__finish_pcall);
    return nu__finish_pcall(L, status, 0);
}

/* Run the user's message handler for ordinary errors only.  A kill is
 * raised from inside the count hook, where Lua disables hooks, so a
 * handler run for it could loop forever unchecked. */
static int nu__xpcall_handler(lua_State *L)
{
    nu_policy_t *policy = nu__policy_fast(L);

    if (policy != NULL && policy->killed)
        return 1;
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

static int nu__lua_xpcall(lua_State *L)
{
    int n = lua_gettop(L);
    int status;

    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_pushvalue(L, 2);
    lua_pushcclosure(L, nu__xpcall_handler, 1);
    lua_replace(L, 2);
    lua_pushboolean(L, 1);
    lua_pushvalue(L, 1);
    lua_rotate(L, 3, 2);
    status = lua_pcallk(L, n - 2, LUA_MULTRET, 2, 2, nu__finish_pcall);
    return nu__finish_pcall(L, status, 2);
}

/* load(chunk, chunkname, mode, env): text chunks with an explicit
 * environment only. */
static int nu__lua_load(lua_State *L)
{
    nu_policy_t *policy = nu__policy_from_state(L);
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    const char *name = luaL_optstring(L, 2, "=(load)");
    const char *mode = luaL_optstring(L, 3, "t");

    if (strcmp(mode, "t") != 0)
        return luaL_error(L, "load: mode '%s' is not allowed (only text "
                             "chunks, mode 't')", mode);
    luaL_checktype(L, 4, LUA_TTABLE);
    if (policy != NULL && len > policy->limits.string_max)
        return nu__policy_error(L, "load: chunk of %zu bytes is over the "
                                   "limit of %zu", len,
                                policy->limits.string_max);

    if (luaL_loadbufferx(L, text, len, name, "t") != LUA_OK) {
        luaL_pushfail(L);
        lua_insert(L, -2);
        return 2;
    }
    lua_pushvalue(L, 4);
    if (lua_setupvalue(L, -2, 1) == NULL)
        lua_pop(L, 1);
    return 1;
}

/* --- string and table wrappers --------------------------------------- */

/* Count the items of a Lua pattern that can backtrack: quantified single
 * items (* + - ?), balanced matches %b and back-references %1-%9. */
static int nu__pattern_backtracks(const char *p, size_t m)
{
    int count = 0;
    size_t i = 0;

    while (i < m) {
        char c = p[i];

        if (c == '%' && i + 1 < m) {
            char d = p[i + 1];
            if (d == 'b') {
                count++;
                i += 4;
                continue;
            }
            if (d >= '0' && d <= '9') {
                count++;
                i += 2;
                continue;
            }
            i += 2;
            if (d == 'f')
                continue;
        } else if (c == '[') {
            i++;
            if (i < m && p[i] == '^')
                i++;
            do {
                if (i < m && p[i] == '%')
                    i++;
                i++;
            } while (i < m && p[i] != ']');
            i++;
        } else {
            i++;
        }

        if (i < m && strchr("*+-?", p[i]) != NULL) {
            count++;
            i++;
        }
    }
    return count;
}

static void nu__check_match_cost(lua_State *L, const char *fname,
                                 bool plain)
{
    size_t n, m;
    double cost;
    int q;

    luaL_checklstring(L, 1, &n);
    const char *p = luaL_checklstring(L, 2, &m);

    q = plain ? 0 : nu__pattern_backtracks(p, m);
    cost = (double)(m + 1) * pow((double)(n + 1), (double)(q + 1));
    if (cost > NU_POLICY_MATCH_STEPS)
        nu__policy_error(L, "%s: pattern too complex for a subject of %zu "
                            "bytes (%d backtracking items; shorten the "
                            "subject or simplify the pattern)", fname, n, q);
}

static int nu__call_original(lua_State *L)
{
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

static int nu__str_find(lua_State *L)
{
    nu__check_match_cost(L, "find", lua_toboolean(L, 4));
    return nu__call_original(L);
}

static int nu__str_match(lua_State *L)
{
    nu__check_match_cost(L, "match", false);
    return nu__call_original(L);
}

static int nu__str_gmatch(lua_State *L)
{
    nu__check_match_cost(L, "gmatch", false);
    return nu__call_original(L);
}

static int nu__str_gsub(lua_State *L)
{
    nu__check_match_cost(L, "gsub", false);
    return nu__call_original(L);
}

static int nu__str_rep(lua_State *L)
{
    size_t len, seplen = 0;
    lua_Integer n;

    luaL_checklstring(L, 1, &len);
    n = luaL_checkinteger(L, 2);
    luaL_optlstring(L, 3, "", &seplen);
    if (n > (lua_Integer)NU_POLICY_MAX_REPEAT)
        return nu__policy_error(L, "rep: count %lld is over the limit of %u",
                                (long long)n, NU_POLICY_MAX_REPEAT);
    return nu__call_original(L);
}

static int nu__tab_move(lua_State *L)
{
    lua_Integer f = luaL_checkinteger(L, 2);
    lua_Integer e = luaL_checkinteger(L, 3);

    if (e >= f && (lua_Unsigned)e - (lua_Unsigned)f >= NU_POLICY_MAX_REPEAT)
        return nu__policy_error(L, "move: range of %llu elements is over "
                                   "the limit of %u",
                                (unsigned long long)((lua_Unsigned)e -
                                                     (lua_Unsigned)f + 1),
                                NU_POLICY_MAX_REPEAT);
    return nu__call_original(L);
}

/* coroutine.create and wrap: charge a hook step, then create. */
static int nu__co_create(lua_State *L)
{
    nu_policy_t *policy = nu__policy_fast(L);

    if (policy != NULL && policy->running) {
        policy->executed += NU__HOOK_STEP;
        if (policy->executed > policy->limits.instructions) {
            lua_Debug ar;
            policy->killed = true;
            if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "Sl", &ar) &&
                ar.currentline > 0)
                snprintf(policy->kill_msg, sizeof policy->kill_msg,
                         "%s:%d: instruction limit exceeded",
                         nu__source_name(&ar), ar.currentline);
            else
                snprintf(policy->kill_msg, sizeof policy->kill_msg,
                         "instruction limit exceeded");
            lua_pushlightuserdata(L, (void *)&nu__kill_token);
            return lua_error(L);
        }
    }
    return nu__call_original(L);
}

/* --- building the library -------------------------------------------- */

typedef struct nu__wrap {
    const char *name;
    lua_CFunction fn;              /* NULL: copy the original */
} nu__wrap_t;

/* Build a frozen table with the named fields of the loaded library lib
 * (at the top of the stack), wrapping where fn is set.  Replaces lib. */
static void nu__build_library(lua_State *L, const nu__wrap_t *fields)
{
    int lib = lua_gettop(L);

    lua_newtable(L);
    for (const nu__wrap_t *w = fields; w->name != NULL; w++) {
        lua_getfield(L, lib, w->name);
        if (w->fn != NULL)
            lua_pushcclosure(L, w->fn, 1);
        lua_setfield(L, -2, w->name);
    }
    nu__policy_freeze(L, -1);
    lua_remove(L, lib);
}

static const nu__wrap_t nu__string_fields[] = {
    { "byte", NULL }, { "char", NULL }, { "find", nu__str_find },
    { "format", NULL }, { "gmatch", nu__str_gmatch },
    { "gsub", nu__str_gsub }, { "len", NULL }, { "lower", NULL },
    { "match", nu__str_match }, { "rep", nu__str_rep },
    { "reverse", NULL }, { "sub", NULL }, { "upper", NULL },
    { NULL, NULL }
};

static const nu__wrap_t nu__table_fields[] = {
    { "concat", NULL }, { "insert", NULL }, { "move", nu__tab_move },
    { "pack", NULL }, { "remove", NULL }, { "sort", NULL },
    { "unpack", NULL }, { NULL, NULL }
};

static const nu__wrap_t nu__math_fields[] = {
    { "abs", NULL }, { "ceil", NULL }, { "cos", NULL }, { "exp", NULL },
    { "floor", NULL }, { "fmod", NULL }, { "huge", NULL }, { "log", NULL },
    { "max", NULL }, { "maxinteger", NULL }, { "min", NULL },
    { "mininteger", NULL }, { "modf", NULL }, { "pi", NULL },
    { "sin", NULL }, { "sqrt", NULL }, { "tan", NULL }, { "tointeger", NULL },
    { "type", NULL }, { "ult", NULL }, { "acos", NULL }, { "asin", NULL },
    { "atan", NULL }, { NULL, NULL }
};

static const nu__wrap_t nu__utf8_fields[] = {
    { "char", NULL }, { "charpattern", NULL }, { "codepoint", NULL },
    { "codes", NULL }, { "len", NULL }, { "offset", NULL }, { NULL, NULL }
};

static const nu__wrap_t nu__coroutine_fields[] = {
    { "close", NULL }, { "create", nu__co_create }, { "isyieldable", NULL },
    { "resume", NULL }, { "running", NULL }, { "status", NULL },
    { "wrap", nu__co_create }, { "yield", NULL }, { NULL, NULL }
};

static const nu__wrap_t nu__os_fields[] = {
    { "clock", NULL }, { "time", NULL }, { NULL, NULL }
};

static const char *const nu__base_names[] = {
    "assert", "error", "getmetatable", "ipairs", "next", "pairs",
    "rawequal", "rawget", "rawlen", "select", "tonumber", "tostring", "type",
    "_VERSION", NULL
};

static int nu__global_index(lua_State *L)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, &nu__globals_key);
    lua_pushvalue(L, 2);
    if (lua_rawget(L, -2) != LUA_TNIL)
        return 1;
    if (lua_type(L, 2) == LUA_TSTRING)
        return luaL_error(L, "undefined global '%s'", lua_tostring(L, 2));
    return luaL_error(L, "undefined global");
}

static int nu__global_newindex(lua_State *L)
{
    if (lua_type(L, 2) == LUA_TSTRING)
        return luaL_error(L, "assignment to undeclared global '%s' (use "
                             "'local')", lua_tostring(L, 2));
    return luaL_error(L, "assignment to undeclared global");
}

static int nu__global_pairs(lua_State *L)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, &nu__globals_key);
    lua_pushcclosure(L, nu__ro_next, 1);
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    return 3;
}

/* Open one standard library and leave it on the stack. */
static void nu__open(lua_State *L, const char *name, lua_CFunction open)
{
    luaL_requiref(L, name, open, 0);
}

/* Replace the string metatable by one that reaches only the frozen string
 * table (at stack top) and hides itself from getmetatable. */
static void nu__protect_string_metatable(lua_State *L)
{
    int strtab = lua_gettop(L);

    lua_pushliteral(L, "");
    lua_newtable(L);
    if (lua_getmetatable(L, -2)) {
        lua_pushnil(L);
        while (lua_next(L, -2) != 0) {
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_rawset(L, -5);
        }
        lua_pop(L, 1);
    }
    lua_pushvalue(L, strtab);
    lua_setfield(L, -2, "__index");
    lua_pushliteral(L, "protected");
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
    lua_pop(L, 1);
}

/* Build the globals (protected mode, from nu__policy_new). */
static int nu__build_globals(lua_State *L)
{
    bool test_mode = lua_toboolean(L, 1);
    int backing, globals;

    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, "nucleus.protected.mt");
    lua_newtable(L);
    lua_newtable(L);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &nu__protected_key);

    nu__open(L, LUA_GNAME, luaopen_base);
    globals = lua_gettop(L);
    lua_newtable(L);
    backing = lua_gettop(L);

    for (const char *const *n = nu__base_names; *n != NULL; n++) {
        lua_getfield(L, globals, *n);
        lua_setfield(L, backing, *n);
    }
    lua_pushcfunction(L, nu__lua_rawset);
    lua_setfield(L, backing, "rawset");
    lua_pushcfunction(L, nu__lua_setmetatable);
    lua_setfield(L, backing, "setmetatable");
    lua_pushcfunction(L, nu__lua_load);
    lua_setfield(L, backing, "load");
    lua_pushcfunction(L, nu__lua_pcall);
    lua_setfield(L, backing, "pcall");
    lua_pushcfunction(L, nu__lua_xpcall);
    lua_setfield(L, backing, "xpcall");

    nu__open(L, LUA_STRLIBNAME, luaopen_string);
    nu__build_library(L, nu__string_fields);
    nu__protect_string_metatable(L);
    lua_setfield(L, backing, "string");
    nu__open(L, LUA_TABLIBNAME, luaopen_table);
    nu__build_library(L, nu__table_fields);
    lua_setfield(L, backing, "table");
    nu__open(L, LUA_MATHLIBNAME, luaopen_math);
    nu__build_library(L, nu__math_fields);
    lua_setfield(L, backing, "math");
    nu__open(L, LUA_UTF8LIBNAME, luaopen_utf8);
    nu__build_library(L, nu__utf8_fields);
    lua_setfield(L, backing, "utf8");
    nu__open(L, LUA_COLIBNAME, luaopen_coroutine);
    nu__build_library(L, nu__coroutine_fields);
    lua_setfield(L, backing, "coroutine");
    nu__open(L, LUA_OSLIBNAME, luaopen_os);
    nu__build_library(L, nu__os_fields);
    lua_setfield(L, backing, "os");

    if (test_mode) {
        lua_pushboolean(L, 1);
        lua_setfield(L, LUA_REGISTRYINDEX, "nucleus.test_mode");
    }
    nu__lua_push_nucleus(L, true);
    lua_setfield(L, backing, "nucleus");

    /* Empty the real global table (chunks get it as _ENV) and turn it
     * into the locked view of the backing table. */
    lua_pushnil(L);
    while (lua_next(L, globals) != 0) {
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        lua_pushnil(L);
        lua_rawset(L, globals);
    }
    lua_pushvalue(L, globals);
    lua_setfield(L, backing, "_G");
    lua_pushvalue(L, backing);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &nu__globals_key);

    lua_newtable(L);
    lua_pushcfunction(L, nu__global_index);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, nu__global_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushcfunction(L, nu__global_pairs);
    lua_setfield(L, -2, "__pairs");
    lua_pushliteral(L, "protected");
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, globals);
    nu__mark_protected(L, globals);
    nu__mark_protected(L, backing);

    /* Drop the loaded-library table: nothing may reach the originals. */
    lua_pushnil(L);
    lua_setfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);

    lua_newtable(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &nu__kill_token);
    return 0;
}

/* --- lifecycle ------------------------------------------------------- */

static int nu__policy_panic(lua_State *L)
{
    const char *msg = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1)
                                                      : "non-string error";

    nu_log(NU_LOG_ERROR, "policy", "unprotected Lua error: %s", msg);
    abort();
}

int nu__policy_new(nu_policy_t **out, const nu_policy_limits_t *limits,
                   bool test_mode, nu_err_t *err)
{
    nu_policy_t *policy;
    lua_State *L;

    *out = NULL;
    policy = calloc(1, sizeof *policy);
    if (policy == NULL)
        return nu_err_set(err, NU_ENOMEM, "policy: cannot create state: "
                                          "out of memory");
    if (limits != NULL)
        policy->limits = *limits;
    else
        nu_policy_limits_default(&policy->limits);
    policy->cap = policy->limits.memory;
    policy->snapshot_ref = LUA_NOREF;

    L = lua_newstate(nu__policy_alloc, policy);
    if (L == NULL) {
        free(policy);
        return nu_err_set(err, NU_ENOMEM, "policy: cannot create state: "
                                          "out of memory");
    }
    policy->L = L;
    *(nu_policy_t **)lua_getextraspace(L) = policy;
    lua_atpanic(L, nu__policy_panic);
    lua_pushlightuserdata(L, policy);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &nu__sandbox_key);

    lua_pushcfunction(L, nu__build_globals);
    lua_pushboolean(L, test_mode);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
        nu_err_set(err, NU_EINTERNAL, "policy: cannot create state: %s",
                   lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1)
                                                  : "memory limit exceeded");
        nu_policy_free(policy);
        return err != NULL ? err->code : NU_EINTERNAL;
    }

    lua_newtable(L);
    policy->snapshot_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_gc(L, LUA_GCCOLLECT);
    policy->gc_base = policy->used;
    policy->mem_refused = false;
    *out = policy;
    return NU_OK;
}

int nu_policy_new(nu_policy_t **out, const nu_policy_limits_t *limits,
                  nu_err_t *err)
{
    return nu__policy_new(out, limits, false, err);
}

void nu_policy_free(nu_policy_t *policy)
{
    if (policy == NULL)
        return;
    policy->cap = SIZE_MAX;
    policy->mem_refused = false;
    if (policy->L != NULL)
        lua_close(policy->L);
    free(policy);
}

lua_State *nu__policy_state(nu_policy_t *policy)
{
    return policy->L;
}

const nu_policy_limits_t *nu__policy_limits(const nu_policy_t *policy)
{
    return &policy->limits;
}

size_t nu_policy_memory(const nu_policy_t *policy)
{
    return policy->used;
}

size_t nu_policy_memory_peak(const nu_policy_t *policy)
{
    return policy->peak;
}

/* --- running code ---------------------------------------------------- */

static const char *nu__fallback_where(const nu_policy_t *policy)
{
    return policy->where != NULL && policy->where[0] != '\0'
               ? policy->where : policy->source;
}

/* Does msg start with a "SOURCE:LINE:" prefix, as Lua adds to errors? */
static bool nu__has_location(const char *msg)
{
    const char *colon = strchr(msg, ':');
    const char *space = strchr(msg, ' ');
    const char *p;

    while (colon != NULL && (space == NULL || colon < space)) {
        p = colon + 1;
        while (*p >= '0' && *p <= '9')
            p++;
        if (p > colon + 1 && *p == ':')
            return true;
        colon = strchr(colon + 1, ':');
    }
    return false;
}

/* Message handler: turn the error object into "SOURCE:LINE: message"
 * without calling any metamethod of it (an error object's __tostring or
 * __index may raise or loop). */
static int nu__policy_msgh(lua_State *L)
{
    nu_policy_t *policy = nu__policy_fast(L);
    lua_Debug ar;
    const char *msg;
    char where[128] = "";

    if (lua_touserdata(L, 1) == (void *)&nu__kill_token ||
        (policy != NULL && policy->killed)) {
        lua_pushstring(L, policy != NULL ? policy->kill_msg
                                         : "limit exceeded");
        return 1;
    }

    for (int level = 1; lua_getstack(L, level, &ar); level++) {
        if (lua_getinfo(L, "Sl", &ar) && ar.currentline > 0) {
            snprintf(where, sizeof where, "%s:%d: ", nu__source_name(&ar),
                     ar.currentline);
            break;
        }
    }

    if (lua_type(L, 1) == LUA_TSTRING) {
        msg = lua_tostring(L, 1);
        if (nu__has_location(msg))
            where[0] = '\0';
        lua_pushfstring(L, "%s%s", where, msg);
    } else {
        lua_pushfstring(L, "%serror object is a %s value", where,
                        luaL_typename(L, 1));
    }
    return 1;
}

static void nu__arm(nu_policy_t *policy)
{
    lua_State *L = policy->L;
    uint32_t ms = policy->limits.timeout_ms;

    if (policy->used > policy->gc_base + policy->limits.memory / 4) {
        policy->cap = SIZE_MAX;
        lua_gc(L, LUA_GCCOLLECT);
        policy->gc_base = policy->used;
    }

    policy->executed = 0;
    policy->killed = false;
    policy->kill_msg[0] = '\0';
    policy->mem_refused = false;
    policy->cap = policy->used + policy->limits.memory;

    clock_gettime(CLOCK_MONOTONIC, &policy->deadline);
    policy->deadline.tv_sec += ms / 1000;
    policy->deadline.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (policy->deadline.tv_nsec >= 1000000000L) {
        policy->deadline.tv_sec++;
        policy->deadline.tv_nsec -= 1000000000L;
    }
    lua_sethook(L, nu__policy_hook, LUA_MASKCOUNT, NU__HOOK_STEP);
}

/* Put back every recorded upvalue (see nu__policy_seal). */
static void nu__restore_upvalues(nu_policy_t *policy)
{
    lua_State *L = policy->L;

    if (policy->snapshot_len == 0)
        return;
    lua_rawgeti(L, LUA_REGISTRYINDEX, policy->snapshot_ref);
    for (int i = 0; i < policy->snapshot_len; i += 3) {
        int n;

        lua_rawgeti(L, -1, i + 1);
        lua_rawgeti(L, -2, i + 2);
        n = (int)lua_tointeger(L, -1);
        lua_pop(L, 1);
        lua_rawgeti(L, -2, i + 3);
        if (lua_setupvalue(L, -2, n) == NULL)
            lua_pop(L, 1);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

int nu__policy_call(nu_policy_t *policy, int nargs, int nresults,
                    nu_err_t *err)
{
    lua_State *L = policy->L;
    int base = lua_gettop(L) - nargs;
    char where[600];
    int status, rc = NU_OK;

    where[0] = '\0';
    if (policy->running) {
        lua_pop(L, nargs + 1);
        return nu_err_set(err, NU_EPOLICY, "policy: cannot run policy "
                                           "code re-entrantly");
    }
    /* Only a Lua function has a line of its own.  For C entry points (the
     * hot path) the fallback is looked up when an error needs it. */
    if (!lua_iscfunction(L, base))
        nu__policy_where(L, base, where, sizeof where);

    lua_pushcfunction(L, nu__policy_msgh);
    lua_insert(L, base);
    policy->running = true;
    nu__arm(policy);

    status = lua_pcall(L, nargs, nresults, base);

    lua_sethook(L, NULL, 0, 0);
    policy->running = false;

    if (policy->killed) {
        rc = nu_err_set(err, NU_EPOLICY, "%s", policy->kill_msg);
    } else if (status == LUA_ERRMEM || policy->mem_refused) {
        rc = nu_err_set(err, NU_EPOLICY, "%s: memory limit of %zu bytes "
                                         "exceeded",
                        where[0] != '\0' ? where : nu__fallback_where(policy),
                        policy->limits.memory);
    } else if (status != LUA_OK) {
        char msg[NU_ERR_MAX];
        nu__expand_source(policy->source,
                          lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1)
                                                         : "unknown error",
                          msg, sizeof msg);
        rc = nu_err_set(err, NU_EPOLICY, "%s", msg);
    }

    if (rc != NU_OK)
        lua_settop(L, base - 1);
    else
        lua_remove(L, base);

    /* Restoring allocates nothing, so no cap is needed for it. */
    policy->cap = SIZE_MAX;
    policy->mem_refused = false;
    nu__restore_upvalues(policy);
    policy->killed = false;
    return rc;
}

int nu__policy_load(nu_policy_t *policy, const char *chunkname,
                    const char *text, size_t len, nu_err_t *err)
{
    lua_State *L = policy->L;
    int status;

    policy->mem_refused = false;
    policy->cap = policy->used + policy->limits.memory;
    status = luaL_loadbufferx(L, text, len, chunkname, "t");
    policy->cap = SIZE_MAX;

    if (status == LUA_OK)
        return NU_OK;
    if (status == LUA_ERRMEM || policy->mem_refused) {
        lua_pop(L, 1);
        policy->mem_refused = false;
        return nu_err_set(err, NU_EPOLICY, "%s: memory limit of %zu bytes "
                                           "exceeded while parsing",
                          chunkname[0] == '@' || chunkname[0] == '='
                              ? chunkname + 1 : chunkname,
                          policy->limits.memory);
    }
    {
        char msg[NU_ERR_MAX];
        nu__expand_source(policy->source, lua_tostring(L, -1), msg,
                          sizeof msg);
        nu_err_set(err, NU_EPARSE, "%s", msg);
    }
    lua_pop(L, 1);
    return NU_EPARSE;
}

int nu_policy_exec(nu_policy_t *policy, const char *chunkname,
                   const char *text, size_t len, nu_err_t *err)
{
    int rc = nu__policy_load(policy, chunkname, text, len, err);

    if (rc != NU_OK)
        return rc;
    return nu__policy_call(policy, 0, 0, err);
}

void nu__policy_where(lua_State *L, int idx, char *out, size_t size)
{
    nu_policy_t *policy = nu__policy_from_state(L);
    const char *fallback = policy == NULL ? "?" : nu__fallback_where(policy);
    lua_Debug ar;

    if (lua_type(L, idx) != LUA_TFUNCTION || lua_iscfunction(L, idx)) {
        snprintf(out, size, "%s", fallback);
        return;
    }
    lua_pushvalue(L, idx);
    if (lua_getinfo(L, ">S", &ar) && ar.linedefined > 0)
        snprintf(out, size, "%s:%d", nu__source_name(&ar), ar.linedefined);
    else
        snprintf(out, size, "%s", nu__source_name(&ar));
}

void nu__policy_set_source(nu_policy_t *policy, const char *source)
{
    snprintf(policy->source, sizeof policy->source, "%s", source);
}

void nu__policy_set_where(nu_policy_t *policy, const char *where)
{
    policy->where = where;
}

/* --- sealing --------------------------------------------------------- */

typedef struct nu__seal {
    nu_policy_t *policy;
    int visited;                   /* stack index of the visited set */
    int snapshot;                  /* stack index of the snapshot table */
    const char *problem;
} nu__seal_t;

static void nu__seal_value(lua_State *L, nu__seal_t *s, int idx, int depth);

static bool nu__seal_visit(lua_State *L, nu__seal_t *s, int idx)
{
    lua_pushvalue(L, idx);
    if (lua_rawget(L, s->visited) != LUA_TNIL) {
        lua_pop(L, 1);
        return false;
    }
    lua_pop(L, 1);
    lua_pushvalue(L, idx);
    lua_pushboolean(L, 1);
    lua_rawset(L, s->visited);
    return true;
}

static void nu__seal_function(lua_State *L, nu__seal_t *s, int idx,
                              int depth)
{
    bool is_lua = !lua_iscfunction(L, idx);

    for (int n = 1; lua_getupvalue(L, idx, n) != NULL; n++) {
        int value = lua_gettop(L);

        if (is_lua) {
            int len = s->policy->snapshot_len;
            lua_pushvalue(L, idx);
            lua_rawseti(L, s->snapshot, len + 1);
            lua_pushinteger(L, n);
            lua_rawseti(L, s->snapshot, len + 2);
            lua_pushvalue(L, value);
            lua_rawseti(L, s->snapshot, len + 3);
            s->policy->snapshot_len = len + 3;
        }
        nu__seal_value(L, s, value, depth + 1);
        lua_pop(L, 1);
        if (s->problem != NULL)
            return;
    }
}

static void nu__seal_table(lua_State *L, nu__seal_t *s, int idx, int depth)
{
    if (nu__is_protected(L, idx))
        return;

    lua_pushnil(L);
    while (s->problem == NULL && lua_next(L, idx) != 0) {
        nu__seal_value(L, s, lua_gettop(L) - 1, depth + 1);
        nu__seal_value(L, s, lua_gettop(L), depth + 1);
        lua_pop(L, 1);
    }
    if (s->problem != NULL) {
        lua_pop(L, 1);
        return;
    }
    if (lua_getmetatable(L, idx)) {
        nu__seal_value(L, s, lua_gettop(L), depth + 1);
        lua_pop(L, 1);
    }
    nu__policy_freeze(L, idx);
}

static void nu__seal_value(lua_State *L, nu__seal_t *s, int idx, int depth)
{
    int type = lua_type(L, idx);

    idx = lua_absindex(L, idx);
    if (s->problem != NULL)
        return;
    if (depth > NU__SEAL_MAX_DEPTH) {
        s->problem = "hook data nested too deeply";
        return;
    }
    luaL_checkstack(L, 8, "seal");

    switch (type) {
    case LUA_TTABLE:
        if (nu__seal_visit(L, s, idx))
            nu__seal_table(L, s, idx, depth);
        break;
    case LUA_TFUNCTION:
        if (nu__seal_visit(L, s, idx))
            nu__seal_function(L, s, idx, depth);
        break;
    case LUA_TTHREAD:
        s->problem = "hooks must not capture a coroutine (it would keep "
                     "state between evaluations)";
        break;
    case LUA_TUSERDATA:
        if (nu__lua_test_perm(L, idx) == NULL) {
            s->problem = "hooks must not capture this userdata (it could "
                         "keep state between evaluations)";
        } else if (nu__seal_visit(L, s, idx)) {
            if (lua_getiuservalue(L, idx, 1) != LUA_TNONE)
                nu__seal_value(L, s, lua_gettop(L), depth + 1);
            lua_pop(L, 1);
        }
        break;
    case LUA_TLIGHTUSERDATA:
        s->problem = "hooks must not capture a light userdata";
        break;
    default:
        break;
    }
}

static int nu__seal_protected(lua_State *L)
{
    nu__seal_t *s = lua_touserdata(L, 2);

    lua_newtable(L);
    s->visited = lua_gettop(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->policy->snapshot_ref);
    s->snapshot = lua_gettop(L);
    nu__seal_value(L, s, 1, 0);
    return 0;
}

int nu__policy_seal(nu_policy_t *policy, int idx, nu_err_t *err)
{
    lua_State *L = policy->L;
    nu__seal_t s = { .policy = policy };
    char where[160];
    int status;

    idx = lua_absindex(L, idx);
    nu__policy_where(L, idx, where, sizeof where);
    lua_pushcfunction(L, nu__seal_protected);
    lua_pushvalue(L, idx);
    lua_pushlightuserdata(L, &s);
    policy->mem_refused = false;
    policy->cap = policy->used + policy->limits.memory;
    status = lua_pcall(L, 2, 0, 0);
    policy->cap = SIZE_MAX;

    if (status != LUA_OK) {
        lua_pop(L, 1);
        return nu_err_set(err, NU_EPOLICY, "%s: cannot seal hook: %s",
                          where, status == LUA_ERRMEM ? "memory limit exceeded"
                                                      : "internal error");
    }
    if (s.problem != NULL)
        return nu_err_set(err, NU_EPOLICY, "%s: %s", where, s.problem);
    return NU_OK;
}

/* --- JSON to Lua ----------------------------------------------------- */

static void nu__push_json_at(lua_State *L, const json_t *v, size_t max,
                             int depth)
{
    if (depth > NU__JSON_MAX_DEPTH)
        luaL_error(L, "call nested deeper than %d levels", NU__JSON_MAX_DEPTH);
    luaL_checkstack(L, 4, "json");

    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *key;
        json_t *item;
        lua_createtable(L, 0, (int)json_object_size(v));
        json_object_foreach((json_t *)v, key, item) {
            if (json_is_null(item))
                continue;
            nu__push_json_at(L, item, max, depth + 1);
            lua_setfield(L, -2, key);
        }
        break;
    }
    case JSON_ARRAY: {
        size_t i;
        json_t *item;
        lua_createtable(L, (int)json_array_size(v), 0);
        json_array_foreach(v, i, item) {
            nu__push_json_at(L, item, max, depth + 1);
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        break;
    }
    case JSON_STRING:
        if (json_string_length(v) > max)
            nu__policy_error(L, "call string of %zu bytes is over the "
                                "policy limit of %zu", json_string_length(v),
                             max);
        lua_pushlstring(L, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        lua_pushinteger(L, (lua_Integer)json_integer_value(v));
        break;
    case JSON_REAL:
        lua_pushnumber(L, json_real_value(v));
        break;
    case JSON_TRUE:
        lua_pushboolean(L, 1);
        break;
    case JSON_FALSE:
        lua_pushboolean(L, 0);
        break;
    default:
        lua_pushnil(L);
        break;
    }
}

void nu__policy_push_json(lua_State *L, const json_t *value,
                          size_t string_max)
{
    nu__push_json_at(L, value, string_max, 0);
}
