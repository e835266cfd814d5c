/*
 * policy_lua.c - lattice values as Lua userdata and nucleus.profile{}.
 *
 * The same code serves the sandbox (policy.c) and the nucleus.core module
 * (lua/), so a profile means the same thing in both.  A lattice value is a
 * full userdata holding a nu_perm_t; operators map to the lattice:
 *
 *   a & b   meet        a | b   join        a <= b  order (leq)
 *   a == b  equality    a < b   a <= b and a ~= b
 *   tostring(a)         canonical JSON (as "nucleus policy show" prints)
 *
 * nucleus.profile{...} validates a profile table and returns a lattice
 * value whose first user value is a table of the profile's other fields
 * (name, description, check, approve, public and untrusted path labels).
 * Lattice operations on profiles return plain values: hooks do not
 * survive a meet or join.
 *
 * Defaults for keys a profile leaves out: capabilities never, no
 * obligations, EMPTY path/command/network allow sets (nothing allowed),
 * no block rules, unlimited budget, no time limit.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "nucleus/glob.h"
#include "nucleus/json.h"
#include "policy_internal.h"

static const char nu__all_key = 'a';   /* registry: the nucleus.ALL token */

/* --- lattice values -------------------------------------------------- */

/* The userdata: the permission, whose strings live outside the Lua heap,
 * and the bytes charged to the sandbox for them (policy.c), so a loop of
 * meets over large sets hits the memory cap instead of the host. */
typedef struct nu__perm_box {
    nu_perm_t perm;                /* first: the box pointer is the perm */
    size_t charged;
} nu__perm_box_t;

nu_perm_t *nu__lua_test_perm(lua_State *L, int idx)
{
    return luaL_testudata(L, idx, NU__PERM_MT);
}

nu_perm_t *nu__lua_check_perm(lua_State *L, int idx)
{
    return luaL_checkudata(L, idx, NU__PERM_MT);
}

/* Push a new lattice value holding an empty (zeroed) permission. */
static nu_perm_t *nu__lua_new_perm(lua_State *L)
{
    nu__perm_box_t *box = lua_newuserdatauv(L, sizeof *box, 1);

    memset(box, 0, sizeof *box);
    luaL_setmetatable(L, NU__PERM_MT);
    return &box->perm;
}

static size_t nu__strset_size(const nu_strset_t *set)
{
    size_t size = set->count * (sizeof(char *) + 16);

    for (size_t i = 0; i < set->count; i++)
        size += strlen(set->items[i]) + 1;
    return size;
}

/* Charge the malloc'd size of the value at idx, once it is filled. */
static void nu__perm_charge(lua_State *L, int idx)
{
    nu__perm_box_t *box = luaL_checkudata(L, idx, NU__PERM_MT);
    const nu_perm_t *p = &box->perm;
    size_t size = nu__strset_size(&p->paths.allow) +
                  nu__strset_size(&p->paths.block) +
                  nu__strset_size(&p->paths.write_block) +
                  nu__strset_size(&p->commands.allow) +
                  nu__strset_size(&p->commands.block) +
                  nu__strset_size(&p->network.allow) +
                  nu__strset_size(&p->network.domains) +
                  nu__strset_size(&p->network.trusted);

    nu__policy_charge(L, size);
    box->charged = size;
}

void nu__lua_push_perm(lua_State *L, nu_perm_t *perm)
{
    nu_perm_t *p = nu__lua_new_perm(L);

    *p = *perm;
    memset(perm, 0, sizeof *perm);
    nu__perm_charge(L, -1);
}

static int nu__perm_gc(lua_State *L)
{
    nu__perm_box_t *box = luaL_checkudata(L, 1, NU__PERM_MT);

    nu_perm_free(&box->perm);
    memset(&box->perm, 0, sizeof box->perm);
    nu__policy_uncharge(L, box->charged);
    box->charged = 0;
    return 0;
}

typedef int (*nu__perm_op)(nu_perm_t *, const nu_perm_t *, const nu_perm_t *);

static int nu__perm_binary(lua_State *L, nu__perm_op op, const char *name)
{
    const nu_perm_t *a = nu__lua_check_perm(L, 1);
    const nu_perm_t *b = nu__lua_check_perm(L, 2);
    nu_perm_t *out = nu__lua_new_perm(L);
    nu_perm_t tmp;
    int rc = op(&tmp, a, b);

    if (rc != NU_OK)
        return luaL_error(L, "%s: %s", name, nu_strerror(rc));
    *out = tmp;
    nu__perm_charge(L, -1);
    return 1;
}

static int nu__perm_meet(lua_State *L)
{
    return nu__perm_binary(L, nu_perm_meet, "meet");
}

static int nu__perm_join(lua_State *L)
{
    return nu__perm_binary(L, nu_perm_join, "join");
}

static int nu__perm_le(lua_State *L)
{
    lua_pushboolean(L, nu_perm_leq(nu__lua_check_perm(L, 1),
                                   nu__lua_check_perm(L, 2)));
    return 1;
}

static int nu__perm_lt(lua_State *L)
{
    const nu_perm_t *a = nu__lua_check_perm(L, 1);
    const nu_perm_t *b = nu__lua_check_perm(L, 2);

    lua_pushboolean(L, nu_perm_leq(a, b) && !nu_perm_equal(a, b));
    return 1;
}

static int nu__perm_eq(lua_State *L)
{
    const nu_perm_t *a = nu__lua_test_perm(L, 1);
    const nu_perm_t *b = nu__lua_test_perm(L, 2);

    lua_pushboolean(L, a != NULL && b != NULL && nu_perm_equal(a, b));
    return 1;
}

static int nu__perm_tostring(lua_State *L)
{
    const nu_perm_t *p = nu__lua_check_perm(L, 1);
    json_t *json = nu_perm_to_json(p);
    nu_err_t err;
    char *text;

    if (json == NULL)
        return luaL_error(L, "tostring: out of memory");
    text = nu_json_canonical(json, NULL, &err);
    json_decref(json);
    if (text == NULL)
        return luaL_error(L, "tostring: %s", err.msg);
    lua_pushstring(L, text);
    free(text);
    return 1;
}

static int nu__perm_normalize(lua_State *L)
{
    const nu_perm_t *p = nu__lua_check_perm(L, 1);
    nu_perm_t *out = nu__lua_new_perm(L);
    nu_perm_t tmp;

    if (nu_perm_copy(&tmp, p) != NU_OK)
        return luaL_error(L, "normalize: out of memory");
    nu_perm_normalize(&tmp);
    *out = tmp;
    nu__perm_charge(L, -1);
    return 1;
}

/* p.name, p.description, p:to_json(), p:normalize(), p:meet(q) ... */
static int nu__perm_index(lua_State *L)
{
    const char *key = luaL_checkstring(L, 2);

    nu__lua_check_perm(L, 1);
    if (strcmp(key, "name") == 0 || strcmp(key, "description") == 0) {
        if (lua_getiuservalue(L, 1, 1) != LUA_TTABLE)
            return 0;
        lua_getfield(L, -1, key);
        return 1;
    }
    lua_getmetatable(L, 1);
    lua_getfield(L, -1, "methods");
    lua_getfield(L, -1, key);
    return 1;
}

static const luaL_Reg nu__perm_meta[] = {
    { "__band", nu__perm_meet },
    { "__bor", nu__perm_join },
    { "__le", nu__perm_le },
    { "__lt", nu__perm_lt },
    { "__eq", nu__perm_eq },
    { "__tostring", nu__perm_tostring },
    { "__gc", nu__perm_gc },
    { "__index", nu__perm_index },
    { NULL, NULL }
};

static const luaL_Reg nu__perm_methods[] = {
    { "meet", nu__perm_meet },
    { "join", nu__perm_join },
    { "leq", nu__perm_le },
    { "to_json", nu__perm_tostring },
    { "normalize", nu__perm_normalize },
    { NULL, NULL }
};

/* --- string sets ----------------------------------------------------- */

static bool nu__is_all(lua_State *L, int idx)
{
    bool all;

    idx = lua_absindex(L, idx);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &nu__all_key);
    all = lua_rawequal(L, idx, -1);
    lua_pop(L, 1);
    return all;
}

static void nu__strset_add_checked(lua_State *L, nu_strset_t *set,
                                   const char *item, const char *what)
{
    if (nu_strset_add(set, item) != NU_OK)
        luaL_error(L, "%s: out of memory", what);
}

/* A list may hold strings and lists of strings (nucleus.SENSITIVE). */
static void nu__strset_add_list(lua_State *L, int idx, const char *what,
                                nu_strset_t *set, int depth)
{
    lua_Integer n;

    idx = lua_absindex(L, idx);
    luaL_checkstack(L, 4, what);
    n = luaL_len(L, idx);
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        lua_pop(L, 1);
        if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1 ||
            lua_tointeger(L, -1) > n)
            luaL_error(L, "'%s' must be a list of strings or nucleus.ALL",
                       what);
    }

    for (lua_Integer i = 1; i <= n; i++) {
        int t = lua_geti(L, idx, i);

        if (t == LUA_TSTRING) {
            nu__strset_add_checked(L, set, lua_tostring(L, -1), what);
        } else if (t == LUA_TTABLE && depth == 0 && !nu__is_all(L, -1)) {
            nu__strset_add_list(L, -1, what, set, 1);
        } else {
            luaL_error(L, "'%s[%d]' must be a string (got %s)", what, (int)i,
                       luaL_typename(L, -1));
        }
        lua_pop(L, 1);
    }
}

void nu__lua_check_strset(lua_State *L, int idx, const char *what,
                          nu_strset_t *set)
{
    nu_strset_free(set);
    if (nu__is_all(L, idx)) {
        nu_strset_init_top(set);
        return;
    }
    nu_strset_init_empty(set);
    if (lua_type(L, idx) == LUA_TSTRING) {
        nu__strset_add_checked(L, set, lua_tostring(L, idx), what);
        return;
    }
    if (lua_type(L, idx) != LUA_TTABLE)
        luaL_error(L, "'%s' must be a list of strings or nucleus.ALL (got "
                      "%s)", what, luaL_typename(L, idx));
    nu__strset_add_list(L, idx, what, set, 0);
}

void nu__lua_push_strset(lua_State *L, const nu_strset_t *set)
{
    if (set->top) {
        lua_rawgetp(L, LUA_REGISTRYINDEX, &nu__all_key);
        return;
    }
    lua_createtable(L, (int)set->count, 0);
    for (size_t i = 0; i < set->count; i++) {
        lua_pushstring(L, set->items[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
}

/* --- nucleus.profile{} ----------------------------------------------- */

/* Check that every key of the table at idx is one of names. */
static void nu__check_keys(lua_State *L, int idx, const char *what,
                           const char *const *names)
{
    idx = lua_absindex(L, idx);
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        const char *key;
        bool known = false;

        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "%s: keys must be strings (got %s)", what,
                       luaL_typename(L, -1));
        key = lua_tostring(L, -1);
        for (const char *const *n = names; *n != NULL; n++)
            known = known || strcmp(key, *n) == 0;
        if (!known)
            luaL_error(L, "unknown key '%s%s%s' in profile", what,
                       what[0] != '\0' ? "." : "", key);
    }
}

/* Push field key of the table at idx, checking it is nil or a table. */
static bool nu__get_section(lua_State *L, int idx, const char *key)
{
    int t = lua_getfield(L, idx, key);

    if (t == LUA_TNIL) {
        lua_pop(L, 1);
        return false;
    }
    if (t != LUA_TTABLE)
        luaL_error(L, "'%s' must be a table (got %s)", key,
                   luaL_typename(L, -1));
    return true;
}

static void nu__parse_capabilities(lua_State *L, int idx, nu_perm_t *p)
{
    if (!nu__get_section(L, idx, "capabilities"))
        return;
    lua_pushnil(L);
    while (lua_next(L, -2) != 0) {
        const char *name, *level;
        int op, lv;

        if (lua_type(L, -2) != LUA_TSTRING)
            luaL_error(L, "capabilities: keys must be operation names");
        name = lua_tostring(L, -2);
        op = nu_op_parse(name);
        if (op < 0)
            luaL_error(L, "unknown key 'capabilities.%s' in profile (not an "
                          "operation)", name);
        level = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
        lv = level != NULL ? nu_level_parse(level) : -1;
        if (lv < 0)
            luaL_error(L, "'capabilities.%s' must be \"never\", \"low_risk\" "
                          "or \"always\"", name);
        p->caps[op] = (uint8_t)lv;
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

static void nu__parse_set(lua_State *L, int section, const char *section_name,
                          const char *key, nu_strset_t *set)
{
    char what[64];

    snprintf(what, sizeof what, "%s.%s", section_name, key);
    if (lua_getfield(L, section, key) != LUA_TNIL)
        nu__lua_check_strset(L, -1, what, set);
    lua_pop(L, 1);
}

static const char *const nu__path_keys[] = {
    "allow", "block", "write_block", "public", "untrusted", NULL
};
static const char *const nu__command_keys[] = { "allow", "block", NULL };
static const char *const nu__network_keys[] = {
    "allow", "domains", "trusted", NULL
};
static const char *const nu__budget_keys[] = {
    "usd", "input_tokens", "output_tokens", "tool_calls", NULL
};
static const char *const nu__time_keys[] = {
    "ttl", "not_before", "not_after", NULL
};
static const char *const nu__profile_keys[] = {
    "name", "description", "capabilities", "paths", "commands", "network",
    "budget", "time", "approvals", "costs", "check", "approve", NULL
};

static void nu__parse_paths(lua_State *L, int idx, nu_perm_t *p, int info)
{
    int section;

    if (!nu__get_section(L, idx, "paths"))
        return;
    section = lua_gettop(L);
    nu__check_keys(L, section, "paths", nu__path_keys);
    nu__parse_set(L, section, "paths", "allow", &p->paths.allow);
    nu__parse_set(L, section, "paths", "block", &p->paths.block);
    nu__parse_set(L, section, "paths", "write_block", &p->paths.write_block);

    /* Labels are not lattice components: keep them as lists. */
    for (int i = 0; i < 2; i++) {
        const char *key = i == 0 ? "public" : "untrusted";
        nu_strset_t set;

        nu_strset_init_empty(&set);
        if (lua_getfield(L, section, key) != LUA_TNIL) {
            nu__lua_check_strset(L, -1, key, &set);
            for (size_t j = 0; j < set.count; j++) {
                if (!nu_glob_valid(set.items[j])) {
                    lua_pushfstring(L, "invalid profile: 'paths.%s' entry "
                                       "'%s' must be a valid glob", key,
                                    set.items[j]);
                    nu_strset_free(&set);
                    lua_error(L);
                }
            }
            nu__lua_push_strset(L, &set);
            lua_setfield(L, info, key);
        }
        nu_strset_free(&set);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

static void nu__parse_commands_network(lua_State *L, int idx, nu_perm_t *p)
{
    int section;

    if (nu__get_section(L, idx, "commands")) {
        section = lua_gettop(L);
        nu__check_keys(L, section, "commands", nu__command_keys);
        nu__parse_set(L, section, "commands", "allow", &p->commands.allow);
        nu__parse_set(L, section, "commands", "block", &p->commands.block);
        lua_pop(L, 1);
    }
    if (nu__get_section(L, idx, "network")) {
        section = lua_gettop(L);
        nu__check_keys(L, section, "network", nu__network_keys);
        nu__parse_set(L, section, "network", "allow", &p->network.allow);
        nu__parse_set(L, section, "network", "domains", &p->network.domains);
        nu__parse_set(L, section, "network", "trusted", &p->network.trusted);
        lua_pop(L, 1);
    }
}

/* A budget or time number: a non-negative integer (or any non-negative
 * number for usd); math.huge means unlimited. */
static int64_t nu__get_int(lua_State *L, int section, const char *what,
                           const char *key, int64_t dflt, bool allow_negative)
{
    lua_Number n;
    int64_t v = dflt;

    if (lua_getfield(L, section, key) == LUA_TNIL) {
        lua_pop(L, 1);
        return dflt;
    }
    if (lua_type(L, -1) != LUA_TNUMBER)
        luaL_error(L, "'%s.%s' must be a number (got %s)", what, key,
                   luaL_typename(L, -1));
    n = lua_tonumber(L, -1);
    if (n == HUGE_VAL) {
        v = NU_UNLIMITED;
    } else if (!lua_isinteger(L, -1) && n != floor(n)) {
        luaL_error(L, "'%s.%s' must be a whole number (got %s)", what, key,
                   lua_tostring(L, -1));
    } else if ((!allow_negative && n < 0) || n >= 9.2e18 || n <= -9.2e18) {
        luaL_error(L, "'%s.%s' is out of range (got %s)", what, key,
                   lua_tostring(L, -1));
    } else {
        v = lua_isinteger(L, -1) ? (int64_t)lua_tointeger(L, -1) : (int64_t)n;
    }
    lua_pop(L, 1);
    return v;
}

static void nu__parse_budget_time(lua_State *L, int idx, nu_perm_t *p)
{
    int section;

    if (nu__get_section(L, idx, "budget")) {
        section = lua_gettop(L);
        nu__check_keys(L, section, "budget", nu__budget_keys);
        if (lua_getfield(L, section, "usd") != LUA_TNIL) {
            lua_Number usd = lua_tonumber(L, -1);
            if (lua_type(L, -1) != LUA_TNUMBER || !(usd >= 0))
                luaL_error(L, "'budget.usd' must be a number >= 0");
            p->budget.usd = usd;
        }
        lua_pop(L, 1);
        p->budget.input_tokens = nu__get_int(L, section, "budget",
                                             "input_tokens", NU_UNLIMITED,
                                             false);
        p->budget.output_tokens = nu__get_int(L, section, "budget",
                                              "output_tokens", NU_UNLIMITED,
                                              false);
        p->budget.tool_calls = nu__get_int(L, section, "budget",
                                           "tool_calls", NU_UNLIMITED, false);
        lua_pop(L, 1);
    }

    if (nu__get_section(L, idx, "time")) {
        section = lua_gettop(L);
        nu__check_keys(L, section, "time", nu__time_keys);
        p->time.ttl = nu__get_int(L, section, "time", "ttl", NU_UNLIMITED,
                                  false);
        p->time.not_before = nu__get_int(L, section, "time", "not_before",
                                         INT64_MIN, true);
        p->time.not_after = nu__get_int(L, section, "time", "not_after",
                                        INT64_MAX, true);
        if (p->time.ttl == 0)
            luaL_error(L, "'time.ttl' must be > 0 seconds");
        lua_pop(L, 1);
    }
}

static void nu__parse_approvals(lua_State *L, int idx, nu_perm_t *p)
{
    lua_Integer n;

    if (!nu__get_section(L, idx, "approvals"))
        return;
    n = luaL_len(L, -1);
    for (lua_Integer i = 1; i <= n; i++) {
        int op = -1;

        if (lua_geti(L, -1, i) == LUA_TSTRING)
            op = nu_op_parse(lua_tostring(L, -1));
        if (op < 0)
            luaL_error(L, "'approvals[%d]' must be an operation name (got "
                          "%s)", (int)i,
                       lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1)
                                                      : luaL_typename(L, -1));
        p->obligations |= NU_OPSET(op);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

/* costs = { run = 0.002, web_fetch = 0.01, ... }: USD charged per call of
 * each tool, besides the one tool call every call counts.  Copied into the
 * profile info as a table of numbers. */
static void nu__parse_costs(lua_State *L, int idx, int info)
{
    static const char *const tools[] = {
        "read", "write", "edit", "glob", "grep", "run", "web_fetch", NULL
    };

    if (lua_getfield(L, idx, "costs") == LUA_TNIL) {
        lua_pop(L, 1);
        return;
    }
    if (!lua_istable(L, -1))
        luaL_error(L, "'costs' must be a table of tool = USD per call (got %s)",
                   luaL_typename(L, -1));
    nu__check_keys(L, lua_gettop(L), "costs.", tools);
    lua_newtable(L);
    for (int i = 0; tools[i] != NULL; i++) {
        int t = lua_getfield(L, -2, tools[i]);
        if (t == LUA_TNIL) {
            lua_pop(L, 1);
            continue;
        }
        lua_Number usd = lua_tonumber(L, -1);
        if (t != LUA_TNUMBER || !(usd >= 0) || usd > 1e9)
            luaL_error(L, "'costs.%s' must be a number of USD from 0 to 1e9",
                       tools[i]);
        lua_setfield(L, -2, tools[i]);
    }
    lua_setfield(L, info, "costs");
    lua_pop(L, 1);
}

static void nu__parse_info(lua_State *L, int idx, int info)
{
    static const char *const strings[] = { "name", "description" };
    static const char *const hooks[] = { "check", "approve" };

    for (int i = 0; i < 2; i++) {
        int t = lua_getfield(L, idx, strings[i]);
        if (t != LUA_TNIL && t != LUA_TSTRING)
            luaL_error(L, "'%s' must be a string (got %s)", strings[i],
                       luaL_typename(L, -1));
        lua_setfield(L, info, strings[i]);
    }
    for (int i = 0; i < 2; i++) {
        int t = lua_getfield(L, idx, hooks[i]);
        if (t != LUA_TNIL && t != LUA_TFUNCTION)
            luaL_error(L, "'%s' must be a function (got %s)", hooks[i],
                       luaL_typename(L, -1));
        lua_setfield(L, info, hooks[i]);
    }
}

/* Check the syntax of every glob, command rule and network entry by
 * parsing the canonical form back, which validates each member. */
static void nu__check_members(lua_State *L, const nu_perm_t *p)
{
    json_t *json = nu_perm_to_json(p);
    const char *detail;
    nu_perm_t parsed;
    nu_err_t err;
    int rc;

    if (json == NULL)
        luaL_error(L, "profile: out of memory");
    rc = nu_perm_from_json(&parsed, json, &err);
    json_decref(json);
    if (rc == NU_OK) {
        nu_perm_free(&parsed);
        return;
    }
    detail = strstr(err.msg, "permission: ");
    luaL_error(L, "invalid profile: %s",
               detail != NULL ? detail + strlen("permission: ") : err.msg);
}

/* The permission a profile starts from before its keys apply. */
static void nu__profile_defaults(nu_perm_t *p)
{
    nu_perm_init_top(p);
    memset(p->caps, NU_NEVER, sizeof p->caps);
    p->obligations = 0;
    nu_strset_free(&p->paths.allow);
    nu_strset_init_empty(&p->paths.allow);
    nu_strset_free(&p->commands.allow);
    nu_strset_init_empty(&p->commands.allow);
    nu_strset_free(&p->network.allow);
    nu_strset_init_empty(&p->network.allow);
    nu_strset_free(&p->network.domains);
    nu_strset_init_empty(&p->network.domains);
    nu_strset_free(&p->network.trusted);
    nu_strset_init_empty(&p->network.trusted);
}

static int nu__lua_profile(lua_State *L)
{
    nu_perm_t *p;
    int info;

    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    nu__check_keys(L, 1, "", nu__profile_keys);

    p = nu__lua_new_perm(L);            /* 2: collected on error */
    nu__profile_defaults(p);
    lua_newtable(L);                    /* 3: profile info */
    info = 3;

    nu__parse_info(L, 1, info);
    nu__parse_capabilities(L, 1, p);
    nu__parse_paths(L, 1, p, info);
    nu__parse_commands_network(L, 1, p);
    nu__parse_budget_time(L, 1, p);
    nu__parse_approvals(L, 1, p);
    nu__parse_costs(L, 1, info);
    nu_perm_normalize(p);
    nu__check_members(L, p);
    nu__perm_charge(L, 2);

    lua_setiuservalue(L, 2, 1);
    return 1;
}

void nu__lua_push_profile_info(lua_State *L, int idx)
{
    if (nu__lua_test_perm(L, idx) == NULL ||
        lua_getiuservalue(L, idx, 1) != LUA_TTABLE) {
        if (nu__lua_test_perm(L, idx) != NULL)
            lua_pop(L, 1);
        lua_pushnil(L);
    }
}

/* --- nucleus.* functions --------------------------------------------- */

static int nu__lua_from_json(lua_State *L)
{
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    nu_perm_t *p = nu__lua_new_perm(L);
    nu_perm_t tmp;
    nu_err_t err;
    json_t *json = nu_json_parse(text, len, &err);
    int rc;

    if (json == NULL)
        return luaL_error(L, "from_json: %s", err.msg);
    rc = nu_perm_from_json(&tmp, json, &err);
    json_decref(json);
    if (rc != NU_OK)
        return luaL_error(L, "from_json: %s", err.msg);
    *p = tmp;
    nu__perm_charge(L, -1);
    return 1;
}

static int nu__lua_top(lua_State *L)
{
    nu_perm_init_top(nu__lua_new_perm(L));
    return 1;
}

static int nu__lua_bottom(lua_State *L)
{
    nu_perm_init_bottom(nu__lua_new_perm(L));
    return 1;
}

static int nu__all_tostring(lua_State *L)
{
    lua_pushliteral(L, "nucleus.ALL");
    return 1;
}

static void nu__push_patterns(lua_State *L, const char *const *patterns)
{
    lua_newtable(L);
    for (int i = 0; patterns[i] != NULL; i++) {
        lua_pushstring(L, patterns[i]);
        lua_rawseti(L, -2, i + 1);
    }
}

static void nu__register_perm(lua_State *L)
{
    if (luaL_newmetatable(L, NU__PERM_MT)) {
        luaL_setfuncs(L, nu__perm_meta, 0);
        luaL_newlib(L, nu__perm_methods);
        lua_setfield(L, -2, "methods");
        lua_pushliteral(L, NU__PERM_MT);
        lua_setfield(L, -2, "__metatable");
    }
    lua_pop(L, 1);

    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &nu__all_key) == LUA_TNIL) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_newtable(L);
        lua_pushcfunction(L, nu__all_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_pushliteral(L, "protected");
        lua_setfield(L, -2, "__metatable");
        lua_pushcfunction(L, nu__policy_ro_newindex);
        lua_setfield(L, -2, "__newindex");
        lua_setmetatable(L, -2);
        lua_pushvalue(L, -1);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &nu__all_key);
    }
    lua_pop(L, 1);
}

static const luaL_Reg nu__nucleus_funcs[] = {
    { "profile", nu__lua_profile },
    { "meet", nu__perm_meet },
    { "join", nu__perm_join },
    { "leq", nu__perm_le },
    { "from_json", nu__lua_from_json },
    { "top", nu__lua_top },
    { "bottom", nu__lua_bottom },
    { NULL, NULL }
};

void nu__lua_push_nucleus(lua_State *L, bool sandboxed)
{
    nu__register_perm(L);
    luaL_newlib(L, nu__nucleus_funcs);

    lua_rawgetp(L, LUA_REGISTRYINDEX, &nu__all_key);
    if (sandboxed)
        nu__policy_freeze(L, -1);   /* rawset must not reach the token */
    lua_setfield(L, -2, "ALL");
    nu__push_patterns(L, nu_sensitive_patterns);
    if (sandboxed)
        nu__policy_freeze(L, -1);
    lua_setfield(L, -2, "SENSITIVE");
    nu__push_patterns(L, nu_autorun_patterns);
    if (sandboxed)
        nu__policy_freeze(L, -1);
    lua_setfield(L, -2, "AUTORUN");

    if (sandboxed) {
        nu__lua_open_test(L);
        nu__policy_freeze(L, -1);
    }
}
