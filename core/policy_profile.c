/*
 * policy_profile.c - loading profiles from Lua, canonical JSON or a
 * built-in name.
 *
 * A Lua profile runs once, in a fresh sandbox, under the limits; it must
 * return a lattice value (normally nucleus.profile{...}).  When the
 * profile has hooks, they are sealed (policy.c: reachable tables frozen,
 * upvalues recorded) and the sandbox stays alive for evaluations.  Without
 * hooks the sandbox is closed and only the permission is kept.
 *
 * A JSON profile is the canonical form printed by "nucleus policy show";
 * it carries no hooks and no path labels.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nucleus/json.h"
#include "policy_internal.h"

/* Largest profile file read. */
#define NU__PROFILE_MAX_BYTES (1024 * 1024)

static nu_profile_t *nu__profile_new(const char *source)
{
    nu_profile_t *profile = calloc(1, sizeof *profile);

    if (profile == NULL)
        return NULL;
    profile->source = strdup(source);
    profile->check_ref = LUA_NOREF;
    profile->approve_ref = LUA_NOREF;
    nu_strset_init_empty(&profile->public_paths);
    nu_strset_init_empty(&profile->untrusted_paths);
    nu_perm_init_bottom(&profile->perm);
    if (profile->source == NULL) {
        nu_profile_free(profile);
        return NULL;
    }
    return profile;
}

void nu_profile_free(nu_profile_t *profile)
{
    if (profile == NULL)
        return;
    nu_policy_free(profile->policy);
    nu_perm_free(&profile->perm);
    nu_strset_free(&profile->public_paths);
    nu_strset_free(&profile->untrusted_paths);
    free(profile->name);
    free(profile->source);
    free(profile);
}

/* The base name of path without its extension. */
static char *nu__stem(const char *path)
{
    const char *base = strrchr(path, '/');
    char *stem, *dot;

    stem = strdup(base != NULL ? base + 1 : path);
    if (stem != NULL && (dot = strrchr(stem, '.')) != NULL && dot != stem)
        *dot = '\0';
    return stem;
}

static bool nu__looks_like_json(const char *path, const char *text,
                                size_t len)
{
    size_t n = strlen(path);

    if (n >= 5 && strcmp(path + n - 5, ".json") == 0)
        return true;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' ||
            text[i] == '\r')
            continue;
        return text[i] == '{';
    }
    return false;
}

/* --- JSON ------------------------------------------------------------ */

/* Take "line N" out of a json error message, or 1. */
static int nu__json_error_line(const char *msg)
{
    const char *p = strstr(msg, "line ");
    int line = p != NULL ? atoi(p + 5) : 0;

    return line > 0 ? line : 1;
}

static int nu__load_json(nu_profile_t *profile, const char *path,
                         const char *text, size_t len, nu_err_t *err)
{
    nu_err_t jerr;
    json_t *json = nu_json_parse(text, len, &jerr);
    int rc;

    if (json == NULL)
        return nu_err_set(err, NU_EPARSE, "%s:%d: %s", path,
                          nu__json_error_line(jerr.msg), jerr.msg);
    nu_perm_free(&profile->perm);
    rc = nu_perm_from_json(&profile->perm, json, &jerr);
    json_decref(json);
    if (rc != NU_OK) {
        nu_perm_init_bottom(&profile->perm);
        return nu_err_set(err, NU_EPOLICY, "%s:1: %s", path, jerr.msg);
    }
    profile->name = nu__stem(path);
    return profile->name != NULL
               ? NU_OK
               : nu_err_set(err, NU_ENOMEM, "%s:0: out of memory", path);
}

/* --- Lua ------------------------------------------------------------- */

static const char *const nu__cost_tools[] = {
    "read", "write", "edit", "glob", "grep", "run", "web_fetch", NULL
};

static void nu__take_costs(lua_State *L, int info, nu_profile_t *profile)
{
    if (lua_getfield(L, info, "costs") == LUA_TTABLE)
        for (int i = 0; nu__cost_tools[i] != NULL; i++) {
            if (lua_getfield(L, -1, nu__cost_tools[i]) == LUA_TNUMBER)
                profile->costs[i] = lua_tonumber(L, -1);
            lua_pop(L, 1);
        }
    lua_pop(L, 1);
}

double nu_profile_cost(const nu_profile_t *profile, const char *tool)
{
    for (int i = 0; tool != NULL && nu__cost_tools[i] != NULL; i++)
        if (strcmp(nu__cost_tools[i], tool) == 0)
            return profile->costs[i];
    return 0.0;
}

static int nu__take_labels(lua_State *L, int info, nu_profile_t *profile)
{
    static const char *const keys[] = { "public", "untrusted" };
    nu_strset_t *sets[] = { &profile->public_paths,
                            &profile->untrusted_paths };

    for (int i = 0; i < 2; i++) {
        lua_Integer n;

        if (lua_getfield(L, info, keys[i]) != LUA_TTABLE) {
            lua_pop(L, 1);
            continue;
        }
        profile->has_labels = true;
        n = (lua_Integer)lua_rawlen(L, -1);
        for (lua_Integer j = 1; j <= n; j++) {
            lua_rawgeti(L, -1, j);
            if (lua_type(L, -1) == LUA_TSTRING &&
                nu_strset_add(sets[i], lua_tostring(L, -1)) != NU_OK) {
                lua_pop(L, 2);
                return NU_ENOMEM;
            }
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    return NU_OK;
}

/* Seal the hook named key of the info table and keep a reference. */
static int nu__take_hook(nu_profile_t *profile, int info, const char *key,
                         int *ref, char *where, size_t where_size,
                         nu_err_t *err)
{
    lua_State *L = nu__policy_state(profile->policy);
    int rc;

    if (lua_getfield(L, info, key) != LUA_TFUNCTION) {
        lua_pop(L, 1);
        return NU_OK;
    }
    nu__policy_where(L, -1, where, where_size);
    rc = nu__policy_seal(profile->policy, -1, err);
    if (rc != NU_OK) {
        lua_pop(L, 1);
        return rc;
    }
    *ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return NU_OK;
}

static int nu__take_result(nu_profile_t *profile, const char *path,
                           nu_err_t *err)
{
    lua_State *L = nu__policy_state(profile->policy);
    nu_perm_t *perm = nu__lua_test_perm(L, -1);
    int info, rc;

    if (perm == NULL)
        return nu_err_set(err, NU_EPOLICY, "%s:1: the profile must return "
                                           "nucleus.profile{...} (it "
                                           "returned a %s)", path,
                          luaL_typename(L, -1));

    nu_perm_free(&profile->perm);
    if (nu_perm_copy(&profile->perm, perm) != NU_OK) {
        nu_perm_init_bottom(&profile->perm);
        return nu_err_set(err, NU_ENOMEM, "%s:0: out of memory", path);
    }
    nu_perm_normalize(&profile->perm);

    nu__lua_push_profile_info(L, -1);
    info = lua_gettop(L);
    if (!lua_istable(L, info))
        return NU_OK;

    if (lua_getfield(L, info, "name") == LUA_TSTRING)
        profile->name = strdup(lua_tostring(L, -1));
    lua_pop(L, 1);
    if (nu__take_labels(L, info, profile) != NU_OK)
        return nu_err_set(err, NU_ENOMEM, "%s:0: out of memory", path);
    nu__take_costs(L, info, profile);

    rc = nu__take_hook(profile, info, "check", &profile->check_ref,
                       profile->check_where, sizeof profile->check_where,
                       err);
    if (rc == NU_OK)
        rc = nu__take_hook(profile, info, "approve", &profile->approve_ref,
                           profile->approve_where,
                           sizeof profile->approve_where, err);
    return rc;
}

static int nu__load_lua(nu_profile_t *profile, const char *path,
                        const char *text, size_t len,
                        const nu_policy_limits_t *limits, nu_err_t *err)
{
    char chunkname[512];
    lua_State *L;
    int rc;

    rc = nu_policy_new(&profile->policy, limits, err);
    if (rc != NU_OK)
        return rc;
    nu__policy_set_source(profile->policy, path);
    L = nu__policy_state(profile->policy);

    snprintf(chunkname, sizeof chunkname, "@%s", path);
    rc = nu__policy_load(profile->policy, chunkname, text, len, err);
    if (rc == NU_OK)
        rc = nu__policy_call(profile->policy, 0, 1, err);
    if (rc != NU_OK)
        return rc;

    rc = nu__take_result(profile, path, err);
    lua_settop(L, 0);
    if (rc != NU_OK)
        return rc;

    if (profile->name == NULL && (profile->name = nu__stem(path)) == NULL)
        return nu_err_set(err, NU_ENOMEM, "%s:0: out of memory", path);

    if (profile->check_ref == LUA_NOREF && profile->approve_ref == LUA_NOREF) {
        nu_policy_free(profile->policy);
        profile->policy = NULL;
        return NU_OK;
    }
    lua_gc(L, LUA_GCCOLLECT);
    return NU_OK;
}

/* --- entry points ---------------------------------------------------- */

int nu_profile_load_string(nu_profile_t **out, const char *chunkname,
                           const char *text, size_t len,
                           const nu_policy_limits_t *limits, nu_err_t *err)
{
    nu_profile_t *profile;
    int rc;

    *out = NULL;
    profile = nu__profile_new(chunkname);
    if (profile == NULL)
        return nu_err_set(err, NU_ENOMEM, "%s:0: out of memory", chunkname);

    if (nu__looks_like_json(chunkname, text, len))
        rc = nu__load_json(profile, chunkname, text, len, err);
    else
        rc = nu__load_lua(profile, chunkname, text, len, limits, err);

    if (rc != NU_OK) {
        nu_profile_free(profile);
        return rc;
    }
    *out = profile;
    return NU_OK;
}

/* Read a whole regular file of at most NU__PROFILE_MAX_BYTES. */
static int nu__read_file(const char *path, char **text, size_t *len,
                         nu_err_t *err)
{
    struct stat st;
    char *buf = NULL;
    size_t got = 0;
    int fd, rc = NU_OK;

    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return nu_err_errno(err, errno, "%s:0: cannot open profile", path);
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = nu_err_set(err, NU_EIO, "%s:0: cannot read profile: not a "
                                     "regular file", path);
        goto out;
    }
    if (st.st_size > NU__PROFILE_MAX_BYTES) {
        rc = nu_err_set(err, NU_ELIMIT, "%s:0: cannot read profile: %lld "
                                        "bytes is over the limit of %d",
                        path, (long long)st.st_size, NU__PROFILE_MAX_BYTES);
        goto out;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL) {
        rc = nu_err_set(err, NU_ENOMEM, "%s:0: out of memory", path);
        goto out;
    }
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = n < 0 ? nu_err_errno(err, errno, "%s:0: cannot read profile",
                                      path)
                       : nu_err_set(err, NU_EIO, "%s:0: cannot read profile: "
                                                 "file shrank", path);
            goto out;
        }
        got += (size_t)n;
    }
    buf[got] = '\0';
    *text = buf;
    *len = got;
    buf = NULL;

out:
    free(buf);
    close(fd);
    return rc;
}

int nu_profile_load_file(nu_profile_t **out, const char *path,
                         const nu_policy_limits_t *limits, nu_err_t *err)
{
    char *text = NULL;
    size_t len = 0;
    int rc;

    *out = NULL;
    rc = nu__read_file(path, &text, &len, err);
    if (rc != NU_OK)
        return rc;
    rc = nu_profile_load_string(out, path, text, len, limits, err);
    free(text);
    return rc;
}

const char *nu_profile_builtin_source(const char *name, size_t *len)
{
    for (const nu__builtin_t *b = nu__builtin_profiles; b->name != NULL;
         b++) {
        if (strcmp(b->name, name) == 0) {
            if (len != NULL)
                *len = b->len;
            return b->source;
        }
    }
    return NULL;
}

const char *const *nu_profile_builtin_names(void)
{
    static const char *names[64];

    if (names[0] == NULL) {
        size_t n = 0;
        for (const nu__builtin_t *b = nu__builtin_profiles;
             b->name != NULL && n + 1 < sizeof names / sizeof names[0]; b++)
            names[n++] = b->name;
        names[n] = NULL;
    }
    return names;
}

int nu_profile_load_builtin(nu_profile_t **out, const char *name,
                            const nu_policy_limits_t *limits, nu_err_t *err)
{
    size_t len;
    const char *source = nu_profile_builtin_source(name, &len);
    char chunkname[160];
    int rc;

    *out = NULL;
    if (source == NULL)
        return nu_err_set(err, NU_ENOENT, "policy: cannot load profile "
                                          "'%s': no such file or built-in "
                                          "profile", name);
    snprintf(chunkname, sizeof chunkname, "builtin/%s.lua", name);
    rc = nu_profile_load_string(out, chunkname, source, len, limits, err);
    if (rc == NU_OK) {
        free((*out)->source);
        (*out)->source = NULL;
        if (asprintf(&(*out)->source, "builtin:%s", name) < 0) {
            (*out)->source = NULL;
            nu_profile_free(*out);
            *out = NULL;
            return nu_err_set(err, NU_ENOMEM, "policy: out of memory");
        }
    }
    return rc;
}

int nu_profile_load(nu_profile_t **out, const char *name_or_path,
                    const nu_policy_limits_t *limits, nu_err_t *err)
{
    struct stat st;

    *out = NULL;
    if (stat(name_or_path, &st) == 0 || strchr(name_or_path, '/') != NULL)
        return nu_profile_load_file(out, name_or_path, limits, err);
    return nu_profile_load_builtin(out, name_or_path, limits, err);
}

/* --- accessors ------------------------------------------------------- */

const char *nu_profile_name(const nu_profile_t *profile)
{
    return profile->name;
}

const char *nu_profile_source(const nu_profile_t *profile)
{
    return profile->source;
}

const nu_perm_t *nu_profile_perm(const nu_profile_t *profile)
{
    return &profile->perm;
}

bool nu_profile_has_check(const nu_profile_t *profile)
{
    return profile->check_ref != LUA_NOREF;
}

bool nu_profile_has_approve(const nu_profile_t *profile)
{
    return profile->approve_ref != LUA_NOREF;
}

nu_policy_t *nu_profile_policy(const nu_profile_t *profile)
{
    return profile->policy;
}
