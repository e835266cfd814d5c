/*
 * lattice_json.c - the canonical JSON form of a permission.
 *
 * Shape (keys sorted when serialized with nu_json_canonical):
 *
 *   {"budget":{"input_tokens":N|"*","output_tokens":N|"*",
 *              "tool_calls":N|"*","usd":X|"*"},
 *    "capabilities":{"<op>":"never"|"low_risk"|"always", ... all 12},
 *    "commands":{"allow":SET,"block":SET},
 *    "network":{"allow":SET,"domains":SET,"trusted":SET},
 *    "obligations":["<op>", ...],
 *    "paths":{"allow":SET,"block":SET,"write_block":SET},
 *    "time":{"not_after":T|"*","not_before":T|"*","ttl":N|"*"}}
 *
 * SET is "*" (TOP) or an array of strings in strcmp order; "*" as a number
 * means unlimited (or unbounded, for the time window).  Obligations are
 * sorted by name.  Integers must lie within +-2^53 so that every JSON
 * reader reads them exactly.
 *
 * Reading is strict, because a typo in a policy must not widen it:
 *   1. Unknown keys, operations and levels, wrong types, negative budgets
 *      and invalid patterns are rejected, and the message names the key.
 *   2. A missing top-level component takes its BOTTOM value (capabilities
 *      all never, every obligation, allow sets EMPTY, block sets "*",
 *      zero budget, empty time window).  A missing operation inside
 *      "capabilities" is "never".  Inside every other component all keys
 *      are required, since a half-written component is more likely a
 *      mistake than a request for BOTTOM.
 *   3. The result is normalized (trifecta closure), so a serialized
 *      permission cannot switch normalization off.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lattice_internal.h"
#include "nucleus/glob.h"

#define NU__JSON_MAX_INT 9007199254740992LL /* 2^53 */

#define NU__PARSE_ERR "lattice: cannot parse permission: "

/* --- writing ---------------------------------------------------------- */

/* Set key of obj to value (a new reference, may be NULL); false on
 * failure, which also drops value. */
static bool nu__put(json_t *obj, const char *key, json_t *value)
{
    return value != NULL && json_object_set_new(obj, key, value) == 0;
}

static json_t *nu__int_or_star(int64_t v, int64_t unlimited)
{
    return v == unlimited ? json_string("*") : json_integer((json_int_t)v);
}

static json_t *nu__set_to_json(const nu_strset_t *s)
{
    json_t *arr;

    if (s->top)
        return json_string("*");

    arr = json_array();
    for (size_t i = 0; arr != NULL && i < s->count; i++) {
        if (json_array_append_new(arr, json_string(s->items[i])) != 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

static json_t *nu__budget_to_json(const nu_budget_t *b)
{
    json_t *obj = json_object();

    if (obj == NULL ||
        !nu__put(obj, "usd", isinf(b->usd) ? json_string("*") : json_real(b->usd)) ||
        !nu__put(obj, "input_tokens", nu__int_or_star(b->input_tokens, NU_UNLIMITED)) ||
        !nu__put(obj, "output_tokens", nu__int_or_star(b->output_tokens, NU_UNLIMITED)) ||
        !nu__put(obj, "tool_calls", nu__int_or_star(b->tool_calls, NU_UNLIMITED))) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

static json_t *nu__time_to_json(const nu_timewin_t *t)
{
    json_t *obj = json_object();

    if (obj == NULL ||
        !nu__put(obj, "not_before", nu__int_or_star(t->not_before, INT64_MIN)) ||
        !nu__put(obj, "not_after", nu__int_or_star(t->not_after, INT64_MAX)) ||
        !nu__put(obj, "ttl", nu__int_or_star(t->ttl, NU_UNLIMITED))) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

static json_t *nu__caps_to_json(const nu_perm_t *p)
{
    json_t *obj = json_object();

    for (int op = 0; obj != NULL && op < NU_OP_COUNT; op++) {
        if (!nu__put(obj, nu_op_name(op), json_string(nu_level_name(p->caps[op])))) {
            json_decref(obj);
            return NULL;
        }
    }
    return obj;
}

static int nu__name_compare(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static json_t *nu__obligations_to_json(nu_opset_t set)
{
    const char *names[NU_OP_COUNT];
    size_t n = 0;
    json_t *arr;

    for (int op = 0; op < NU_OP_COUNT; op++) {
        if (set & NU_OPSET(op))
            names[n++] = nu_op_name(op);
    }
    qsort(names, n, sizeof names[0], nu__name_compare);

    arr = json_array();
    for (size_t i = 0; arr != NULL && i < n; i++) {
        if (json_array_append_new(arr, json_string(names[i])) != 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

/* The object of one set-valued component ("paths"), creating it in root. */
static json_t *nu__component(json_t *root, const char *name)
{
    json_t *obj = json_object_get(root, name);

    if (obj == NULL && nu__put(root, name, json_object()))
        obj = json_object_get(root, name);
    return obj;
}

json_t *nu_perm_to_json(const nu_perm_t *p)
{
    json_t *root = json_object();

    if (root == NULL)
        return NULL;

    if (!nu__put(root, "capabilities", nu__caps_to_json(p)) ||
        !nu__put(root, "obligations", nu__obligations_to_json(p->obligations)) ||
        !nu__put(root, "budget", nu__budget_to_json(&p->budget)) ||
        !nu__put(root, "time", nu__time_to_json(&p->time)))
        goto fail;

    for (size_t i = 0; i < NU__PERM_SET_COUNT; i++) {
        const nu_perm_set_field_t *f = &nu__perm_set_fields[i];
        json_t *component = nu__component(root, f->component);

        if (component == NULL ||
            !nu__put(component, f->key, nu__set_to_json(nu__perm_set_const(p, i))))
            goto fail;
    }
    return root;

fail:
    json_decref(root);
    return NULL;
}

/* --- reading ---------------------------------------------------------- */

static bool nu__is_star(const json_t *v)
{
    return json_is_string(v) && strcmp(json_string_value(v), "*") == 0;
}

/* Reject the first key of obj that is not in allowed[]; where is the
 * dotted name of obj ("" for the top level). */
static int nu__check_keys(const json_t *obj, const char *where,
                          const char *const *allowed, size_t n, nu_err_t *err)
{
    const char *key;
    json_t *value;

    json_object_foreach((json_t *)obj, key, value) {
        bool known = false;

        (void)value;
        for (size_t i = 0; i < n && !known; i++)
            known = strcmp(key, allowed[i]) == 0;
        if (!known)
            return nu_err_set(err, NU_EINVAL, NU__PARSE_ERR "unknown key '%s%s%s'",
                              where, *where ? "." : "", key);
    }
    return NU_OK;
}

/* Fetch the required member key of obj. */
static int nu__require(const json_t *obj, const char *where, const char *key,
                       json_t **out, nu_err_t *err)
{
    *out = json_object_get(obj, key);
    if (*out == NULL)
        return nu_err_set(err, NU_EINVAL, NU__PARSE_ERR "missing key '%s.%s'",
                          where, key);
    return NU_OK;
}

static int nu__parse_caps(nu_perm_t *out, const json_t *v, nu_err_t *err)
{
    const char *key;
    json_t *level;

    if (!json_is_object(v))
        return nu_err_set(err, NU_EINVAL, NU__PARSE_ERR "'capabilities' must be "
                          "an object of operation names to levels");

    json_object_foreach((json_t *)v, key, level) {
        int op = nu_op_parse(key);
        int lv = json_is_string(level) ? nu_level_parse(json_string_value(level)) : -1;

        if (op < 0)
            return nu_err_set(err, NU_EINVAL, NU__PARSE_ERR "unknown operation "
                              "'capabilities.%s' (see the list in lattice.h)", key);
        if (lv < 0)
            return nu_err_set(err, NU_EINVAL, NU__PARSE_ERR "'capabilities.%s' "
                              "must be \"never\", \"low_risk\" or \"always\"", key);
        out->caps[op] = (uint8_t)lv;
    }
    return NU_OK;
}

static int nu__parse_obligations(nu_perm_t *out, const json_t *v, nu_err_t *err)
{
    size_t i;
    json_t *item;

    if (!json_is_array(v))
        return nu_err_set(err, NU_EINVAL, NU__PARSE_ERR "'obligations' must be an "
                          "array of operation names");

    out->obligations = 0;
    json_array_foreach(v, i, item) {
        int op = json_is_string(item) ? nu_op_parse(json_string_value(item)) : -1;

        if (op < 0)
            return nu_err_set(err, NU_EINVAL, NU__PARSE_ERR "'obligations[%zu]' is "
                              "not an operation name", i);
        out->obligations |= NU_OPSET(op);
    }
    return NU_OK;
}

/* Check one member of set i (pattern, rule, entry or domain). */
static bool nu__member_valid(size_t i, const char *s)
{
    const nu_perm_set_field_t *f = &nu__perm_set_fields[i];

    if (strcmp(f->component, "paths") == 0)
        return nu_glob_valid(s);
    if (strcmp(f->component, "commands") == 0)
        return nu__cmdrule_valid(s);
    if (strcmp(f->key, "allow") == 0)
        return nu__net_entry_valid(s);
    /* "10.0.0.1" is also a valid DNS name, but the decision checks an IP
     * literal in a URL only against network.allow, so such an entry in
     * domains would never match. */
    if (strcmp(f->key, "domains") == 0)
        return nu__domain_pattern_valid(s) && !nu__net_entry_valid(s);
    return nu__domain_pattern_valid(s) || nu__net_entry_valid(s);
}

static const char *nu__member_hint(size_t i, const char *s)
{
    const nu_perm_set_field_t *f = &nu__perm_set_fields[i];
    const char *colon = strrchr(s, ':');

    if (strcmp(f->component, "paths") == 0)
        return "a valid glob (closed brackets, known [:class:], no trailing backslash)";
    if (strcmp(f->component, "commands") == 0)
        return "a command rule with balanced quotes";
    if (strcmp(f->key, "allow") == 0)
        return "an address or CIDR with an optional :port (IPv6 in brackets)";
    if (strcmp(f->key, "domains") == 0 && nu__net_entry_valid(s))
        return "a domain name, not an address: put IP addresses in "
               "network.allow";
    if (strcmp(f->key, "domains") == 0 && colon != NULL &&
        colon[1] != '\0' &&
        strspn(colon + 1, "0123456789") == strlen(colon + 1))
        return "a lower-case domain name or *.domain without a port "
               "(a domain entry allows every port of the name)";
    if (strcmp(f->key, "domains") == 0)
        return "a lower-case domain name or *.domain";
    return "a lower-case domain name, *.domain, address or CIDR";
}

static int nu__parse_set(nu_perm_t *out, size_t i, const json_t *v, nu_err_t *err)
{
    const nu_perm_set_field_t *f = &nu__perm_set_fields[i];
    nu_strset_t *set = nu__perm_set(out, i);
    size_t idx;
    json_t *item;

    nu_strset_free(set);
    if (nu__is_star(v)) {
        nu_strset_init_top(set);
        return NU_OK;
    }
    if (!json_is_array(v))
        return nu_err_set(err, NU_EINVAL, NU__PARSE_ERR "'%s.%s' must be \"*\" or "
                          "an array of strings", f->component, f->key);

    json_array_foreach(v, idx, item) {
        const char *s = json_string_value(item);

        if (s == NULL || s[0] == '\0' || strlen(s) != json_string_length(item))
            return nu_err_set(err, NU_EINVAL, NU__PARSE_ERR "'%s.%s[%zu]' must be "
                              "a non-empty string", f->component, f->key, idx);
        if (!nu__member_valid(i, s))
            return nu_err_set(err, NU_EINVAL, NU__PARSE_ERR "'%s.%s[%zu]' "
                              "('%.200s') must be %s", f->component, f->key, idx,
                              s, nu__member_hint(i, s));
        if (nu_strset_add(set, s) != NU_OK)
            return nu_err_set(err, NU_ENOMEM, NU__PARSE_ERR "out of memory");
    }
    return NU_OK;
}

/* Parse the object of a set-valued component (paths, commands, network). */
static int nu__parse_set_component(nu_perm_t *out, const char *name,
                                   const json_t *v, nu_err_t *err)
{
    const char *keys[3];
    size_t nkeys = 0;
    int rc;

    if (!json_is_object(v))
        return nu_err_set(err, NU_EINVAL, NU__PARSE_ERR "'%s' must be an object",
                          name);

    for (size_t i = 0; i < NU__PERM_SET_COUNT; i++) {
        if (strcmp(nu__perm_set_fields[i].component, name) == 0)
            keys[nkeys++] = nu__perm_set_fields[i].key;
    }
    rc = nu__check_keys(v, name, keys, nkeys, err);
    if (rc != NU_OK)
        return rc;

    for (size_t i = 0; i < NU__PERM_SET_COUNT; i++) {
        json_t *member;

        if (strcmp(nu__perm_set_fields[i].component, name) != 0)
            continue;
        rc = nu__require(v, name, nu__perm_set_fields[i].key, &member, err);
        if (rc == NU_OK)
            rc = nu__parse_set(out, i, member, err);
        if (rc != NU_OK)
            return rc;
    }
    return NU_OK;
}

/* Parse "*" (as unlimited) or an integer in [min, 2^53]. */
static int nu__parse_int(const json_t *v, const char *where, int64_t min,
                         int64_t unlimited, int64_t *out, nu_err_t *err)
{
    if (nu__is_star(v)) {
        *out = unlimited;
        return NU_OK;
    }
    if (!json_is_integer(v) || json_integer_value(v) < min ||
        json_integer_value(v) > NU__JSON_MAX_INT)
        return nu_err_set(err, NU_EINVAL, NU__PARSE_ERR "'%s' must be \"*\" or an "
                          "integer from %lld to 2^53", where, (long long)min);
    *out = json_integer_value(v);
    return NU_OK;
}

static int nu__parse_budget(nu_perm_t *out, const json_t *v, nu_err_t *err)
{
    static const char *const keys[] = { "input_tokens", "output_tokens",
                                        "tool_calls", "usd" };
    int64_t *fields[] = { &out->budget.input_tokens, &out->budget.output_tokens,
                          &out->budget.tool_calls };
    json_t *member;
    int rc;

    if (!json_is_object(v))
        return nu_err_set(err, NU_EINVAL, NU__PARSE_ERR "'budget' must be an object");
    rc = nu__check_keys(v, "budget", keys, 4, err);
    if (rc != NU_OK)
        return rc;

    for (size_t i = 0; i < 3; i++) {
        char where[32];

        snprintf(where, sizeof where, "budget.%s", keys[i]);
        rc = nu__require(v, "budget", keys[i], &member, err);
        if (rc == NU_OK)
            rc = nu__parse_int(member, where, 0, NU_UNLIMITED, fields[i], err);
        if (rc != NU_OK)
            return rc;
    }

    rc = nu__require(v, "budget", "usd", &member, err);
    if (rc != NU_OK)
        return rc;
    if (nu__is_star(member)) {
        out->budget.usd = INFINITY;
    } else if (json_is_number(member) && json_number_value(member) >= 0 &&
               json_number_value(member) <= (double)NU__JSON_MAX_INT) {
        out->budget.usd = json_number_value(member) + 0.0; /* no -0 */
    } else {
        return nu_err_set(err, NU_EINVAL, NU__PARSE_ERR "'budget.usd' must be \"*\" "
                          "or a number from 0 to 2^53");
    }
    return NU_OK;
}

static int nu__parse_time(nu_perm_t *out, const json_t *v, nu_err_t *err)
{
    static const char *const keys[] = { "not_after", "not_before", "ttl" };
    json_t *member;
    int rc;

    if (!json_is_object(v))
        return nu_err_set(err, NU_EINVAL, NU__PARSE_ERR "'time' must be an object");
    rc = nu__check_keys(v, "time", keys, 3, err);
    if (rc != NU_OK)
        return rc;

    rc = nu__require(v, "time", "not_before", &member, err);
    if (rc == NU_OK)
        rc = nu__parse_int(member, "time.not_before", -NU__JSON_MAX_INT, INT64_MIN,
                           &out->time.not_before, err);
    if (rc == NU_OK)
        rc = nu__require(v, "time", "not_after", &member, err);
    if (rc == NU_OK)
        rc = nu__parse_int(member, "time.not_after", -NU__JSON_MAX_INT, INT64_MAX,
                           &out->time.not_after, err);
    if (rc == NU_OK)
        rc = nu__require(v, "time", "ttl", &member, err);
    if (rc == NU_OK)
        rc = nu__parse_int(member, "time.ttl", 0, NU_UNLIMITED, &out->time.ttl, err);
    return rc;
}

static int nu__parse_component(nu_perm_t *out, const char *key, const json_t *v,
                               nu_err_t *err)
{
    if (strcmp(key, "capabilities") == 0)
        return nu__parse_caps(out, v, err);
    if (strcmp(key, "obligations") == 0)
        return nu__parse_obligations(out, v, err);
    if (strcmp(key, "budget") == 0)
        return nu__parse_budget(out, v, err);
    if (strcmp(key, "time") == 0)
        return nu__parse_time(out, v, err);
    return nu__parse_set_component(out, key, v, err);
}

int nu_perm_from_json(nu_perm_t *out, const json_t *json, nu_err_t *err)
{
    static const char *const keys[] = { "budget", "capabilities", "commands",
                                        "network", "obligations", "paths", "time" };
    const char *key;
    json_t *value;
    int rc;

    nu_perm_init_bottom(out);

    if (!json_is_object(json))
        return nu_err_set(err, NU_EINVAL, NU__PARSE_ERR "expected a JSON object");
    rc = nu__check_keys(json, "", keys, sizeof keys / sizeof keys[0], err);
    if (rc != NU_OK)
        return rc;

    json_object_foreach((json_t *)json, key, value) {
        rc = nu__parse_component(out, key, value, err);
        if (rc != NU_OK) {
            nu_perm_free(out);
            nu_perm_init_bottom(out);
            return rc;
        }
    }

    nu_perm_normalize(out);
    return NU_OK;
}
