/*
 * decide_validate.c - step 1 of the pipeline: request shape and sizes.
 *
 * Every tool has a fixed table of fields.  A valid call is an object whose
 * "tool" names a known tool.  Every other key is a field of that tool,
 * every required field is present, and every value has the field's type
 * and stays within its limits.  Unknown keys are rejected
 * rather than ignored: a field this version does not know is a field it
 * cannot check.
 *
 * NUL bytes are rejected in every string except the data fields (write
 * content, run stdin, web_fetch body).  A NUL in a path, an argument or a
 * header would end the string early for the C code that finally uses it,
 * so the value checked would not be the value used.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decide_internal.h"

typedef enum {
    NU__F_PATH,      /* string, no NUL, at most NU_PATH_MAX bytes */
    NU__F_TEXT,      /* string, no NUL, at most NU_DECIDE_MAX_STRING */
    NU__F_DATA,      /* string, NUL allowed, at most NU_DECIDE_MAX_CONTENT */
    NU__F_INT,       /* integer in [min, max] */
    NU__F_NUMBER,    /* number in (0, max] */
    NU__F_BOOL,
    NU__F_MODE,      /* integer 0..07777 or a string of octal digits */
    NU__F_ARGV,      /* non-empty array of strings */
    NU__F_ENV,       /* object of strings, names [A-Za-z_][A-Za-z0-9_]* */
    NU__F_HEADERS,   /* object of strings, token names, no CR/LF */
    NU__F_METHOD,    /* HTTP method */
    NU__F_URL,       /* http(s) URL, see nu_url_parse */
    NU__F_ENCODING   /* "utf-8" or "base64": how a byte field is sent */
} nu__ftype_t;

typedef struct nu__field {
    const char *name;
    nu__ftype_t type;
    bool required;
    bool nonempty;
    int64_t min, max;
} nu__field_t;

typedef struct nu__tool_spec {
    const char *name;
    nu__tool_t tool;
    const nu__field_t *fields;
} nu__tool_spec_t;

static const nu__field_t nu__read_fields[] = {
    {"path", NU__F_PATH, true, true, 0, 0},
    {"offset", NU__F_INT, false, false, 0, INT64_C(1) << 53},
    {"limit", NU__F_INT, false, false, 0, INT64_C(1) << 53},
    {NULL, 0, false, false, 0, 0}};
static const nu__field_t nu__write_fields[] = {
    {"path", NU__F_PATH, true, true, 0, 0},
    {"content", NU__F_DATA, true, false, 0, 0},
    {"content_encoding", NU__F_ENCODING, false, false, 0, 0},
    {"mode", NU__F_MODE, false, false, 0, 07777},
    {NULL, 0, false, false, 0, 0}};
static const nu__field_t nu__edit_fields[] = {
    {"path", NU__F_PATH, true, true, 0, 0},
    {"old", NU__F_DATA, true, true, 0, 0},
    {"new", NU__F_DATA, true, false, 0, 0},
    {"replace_all", NU__F_BOOL, false, false, 0, 0},
    {NULL, 0, false, false, 0, 0}};
static const nu__field_t nu__glob_fields[] = {
    {"pattern", NU__F_PATH, true, true, 0, 0},
    {"path", NU__F_PATH, false, false, 0, 0},
    {NULL, 0, false, false, 0, 0}};
static const nu__field_t nu__grep_fields[] = {
    {"pattern", NU__F_TEXT, true, true, 0, 0},
    {"path", NU__F_PATH, false, false, 0, 0},
    {"glob", NU__F_PATH, false, true, 0, 0},
    {"context", NU__F_INT, false, false, 0, 1000},
    {"max", NU__F_INT, false, false, 1, 1000000},
    {NULL, 0, false, false, 0, 0}};
static const nu__field_t nu__run_fields[] = {
    {"argv", NU__F_ARGV, false, false, 0, 0},
    {"command", NU__F_TEXT, false, true, 0, 0},
    {"cwd", NU__F_PATH, false, false, 0, 0},
    {"env", NU__F_ENV, false, false, 0, 0},
    {"stdin", NU__F_DATA, false, false, 0, 0},
    {"stdin_encoding", NU__F_ENCODING, false, false, 0, 0},
    {"timeout", NU__F_NUMBER, false, false, 0, NU_DECIDE_MAX_TIMEOUT},
    {NULL, 0, false, false, 0, 0}};
static const nu__field_t nu__fetch_fields[] = {
    {"url", NU__F_URL, true, true, 0, 0},
    {"method", NU__F_METHOD, false, false, 0, 0},
    {"headers", NU__F_HEADERS, false, false, 0, 0},
    {"body", NU__F_DATA, false, false, 0, 0},
    {"max_bytes", NU__F_INT, false, false, 1, INT64_C(1) << 30},
    {NULL, 0, false, false, 0, 0}};

static const nu__tool_spec_t nu__tools[] = {
    {"read", NU__TOOL_READ, nu__read_fields},
    {"write", NU__TOOL_WRITE, nu__write_fields},
    {"edit", NU__TOOL_EDIT, nu__edit_fields},
    {"glob", NU__TOOL_GLOB, nu__glob_fields},
    {"grep", NU__TOOL_GREP, nu__grep_fields},
    {"run", NU__TOOL_RUN, nu__run_fields},
    {"web_fetch", NU__TOOL_WEB_FETCH, nu__fetch_fields},
    {NULL, 0, NULL}};

static const char *const nu__methods[] = {
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", NULL};

typedef struct nu__vctx {
    const char *tool;
    char *reason;
    size_t size;
} nu__vctx_t;

static int nu__invalid(nu__vctx_t *v, const char *field, const char *fmt,
                       ...) __attribute__((format(printf, 3, 4)));

static int nu__invalid(nu__vctx_t *v, const char *field, const char *fmt, ...)
{
    char detail[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    snprintf(v->reason, v->size, "%s: invalid field '%s': %s", v->tool,
             field, detail);
    return NU_EINVAL;
}

static const char *nu__type_name(const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT: return "object";
    case JSON_ARRAY: return "array";
    case JSON_STRING: return "string";
    case JSON_INTEGER: return "integer";
    case JSON_REAL: return "number";
    case JSON_TRUE:
    case JSON_FALSE: return "boolean";
    case JSON_NULL: return "null";
    }
    return "unknown";
}

/* Check a string value: type, NUL bytes (unless allowed), size. */
static int nu__check_string(nu__vctx_t *v, const char *field, const json_t *j,
                            bool allow_nul, size_t max, bool nonempty)
{
    if (!json_is_string(j))
        return nu__invalid(v, field, "expected a string, got %s",
                           nu__type_name(j));

    size_t len = json_string_length(j);
    if (!allow_nul && strlen(json_string_value(j)) != len)
        return nu__invalid(v, field, "contains a NUL byte");
    if (len > max)
        return nu__invalid(v, field, "%zu bytes exceeds the limit of %zu",
                           len, max);
    if (nonempty && len == 0)
        return nu__invalid(v, field, "must not be empty");
    return NU_OK;
}

static int nu__check_int(nu__vctx_t *v, const nu__field_t *f, const json_t *j)
{
    if (!json_is_integer(j))
        return nu__invalid(v, f->name, "expected an integer, got %s",
                           nu__type_name(j));
    json_int_t n = json_integer_value(j);
    if (n < f->min || n > f->max)
        return nu__invalid(v, f->name, "%lld is outside %lld..%lld",
                           (long long)n, (long long)f->min,
                           (long long)f->max);
    return NU_OK;
}

static int nu__check_number(nu__vctx_t *v, const nu__field_t *f,
                            const json_t *j)
{
    if (!json_is_number(j))
        return nu__invalid(v, f->name, "expected a number, got %s",
                           nu__type_name(j));
    double d = json_number_value(j);
    if (!(d > 0) || d > (double)f->max)
        return nu__invalid(v, f->name,
                           "%g is outside the range (0, %lld] seconds", d,
                           (long long)f->max);
    return NU_OK;
}

static int nu__check_mode(nu__vctx_t *v, const nu__field_t *f,
                          const json_t *j)
{
    if (json_is_integer(j))
        return nu__check_int(v, f, j);
    if (!json_is_string(j))
        return nu__invalid(v, f->name,
                           "expected an integer or an octal string, got %s",
                           nu__type_name(j));

    const char *s = json_string_value(j);
    size_t len = strlen(s);
    if (len == 0 || len > 5 || strspn(s, "01234567") != len ||
        strtol(s, NULL, 8) > 07777)
        return nu__invalid(v, f->name,
                           "'%s' is not an octal mode 0..7777 (e.g. \"0644\")",
                           s);
    return NU_OK;
}

static int nu__check_argv(nu__vctx_t *v, const char *field, const json_t *j)
{
    size_t total = 0;
    size_t i;
    const json_t *item;
    char name[32];

    if (!json_is_array(j))
        return nu__invalid(v, field, "expected an array of strings, got %s",
                           nu__type_name(j));
    if (json_array_size(j) == 0)
        return nu__invalid(v, field, "must name a program");
    if (json_array_size(j) > NU_DECIDE_MAX_ARGV)
        return nu__invalid(v, field, "%zu entries exceeds the limit of %d",
                           json_array_size(j), NU_DECIDE_MAX_ARGV);

    json_array_foreach(j, i, item) {
        snprintf(name, sizeof name, "%s[%zu]", field, i);
        int rc = nu__check_string(v, name, item, false, NU_DECIDE_MAX_STRING,
                                  i == 0);
        if (rc != NU_OK)
            return rc;
        total += json_string_length(item);
    }
    if (total > NU_DECIDE_MAX_ARGV_BYTES)
        return nu__invalid(v, field, "%zu bytes in all exceeds the limit of %u",
                           total, NU_DECIDE_MAX_ARGV_BYTES);
    return NU_OK;
}

static bool nu__env_name_ok(const char *s)
{
    if (!(isalpha((unsigned char)*s) || *s == '_'))
        return false;
    for (s++; *s; s++)
        if (!(isalnum((unsigned char)*s) || *s == '_'))
            return false;
    return true;
}

/* RFC 9110 token characters. */
static bool nu__header_name_ok(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s; s++)
        if (!(isalnum((unsigned char)*s) || strchr("!#$%&'*+-.^_`|~", *s)))
            return false;
    return true;
}

static int nu__check_map(nu__vctx_t *v, const char *field, const json_t *j,
                         bool headers)
{
    size_t max = headers ? NU_DECIDE_MAX_HEADERS : NU_DECIDE_MAX_ENV;
    const char *key;
    const json_t *value;
    char name[300];

    if (!json_is_object(j))
        return nu__invalid(v, field, "expected an object of strings, got %s",
                           nu__type_name(j));
    if (json_object_size(j) > max)
        return nu__invalid(v, field, "%zu entries exceeds the limit of %zu",
                           json_object_size(j), max);

    json_object_foreach((json_t *)j, key, value) {
        snprintf(name, sizeof name, "%s.%.200s", field, key);
        if (headers ? !nu__header_name_ok(key) : !nu__env_name_ok(key))
            return nu__invalid(v, name, "'%.200s' is not a valid %s name",
                               key, headers ? "header" : "variable");
        int rc = nu__check_string(v, name, value, false, NU_DECIDE_MAX_STRING,
                                  false);
        if (rc != NU_OK)
            return rc;
        if (headers && strpbrk(json_string_value(value), "\r\n") != NULL)
            return nu__invalid(v, name, "contains CR or LF");
    }
    return NU_OK;
}

static int nu__check_method(nu__vctx_t *v, const char *field, const json_t *j)
{
    int rc = nu__check_string(v, field, j, false, 16, true);
    if (rc != NU_OK)
        return rc;
    for (size_t i = 0; nu__methods[i] != NULL; i++)
        if (strcmp(nu__methods[i], json_string_value(j)) == 0)
            return NU_OK;
    return nu__invalid(v, field,
                       "'%s' is not one of GET, HEAD, POST, PUT, PATCH, "
                       "DELETE, OPTIONS",
                       json_string_value(j));
}

static int nu__check_field(nu__vctx_t *v, const nu__field_t *f,
                           const json_t *j, nu__request_t *req)
{
    nu_err_t err;
    int rc;

    switch (f->type) {
    case NU__F_PATH:
        return nu__check_string(v, f->name, j, false, NU_PATH_MAX,
                                f->nonempty);
    case NU__F_TEXT:
        return nu__check_string(v, f->name, j, false, NU_DECIDE_MAX_STRING,
                                f->nonempty);
    case NU__F_DATA:
        return nu__check_string(v, f->name, j, true, NU_DECIDE_MAX_CONTENT,
                                f->nonempty);
    case NU__F_INT:
        return nu__check_int(v, f, j);
    case NU__F_NUMBER:
        return nu__check_number(v, f, j);
    case NU__F_BOOL:
        if (!json_is_boolean(j))
            return nu__invalid(v, f->name, "expected a boolean, got %s",
                               nu__type_name(j));
        return NU_OK;
    case NU__F_MODE:
        return nu__check_mode(v, f, j);
    case NU__F_ARGV:
        return nu__check_argv(v, f->name, j);
    case NU__F_ENV:
        return nu__check_map(v, f->name, j, false);
    case NU__F_HEADERS:
        return nu__check_map(v, f->name, j, true);
    case NU__F_METHOD:
        return nu__check_method(v, f->name, j);
    case NU__F_ENCODING:
        if (!json_is_string(j) ||
            (strcmp(json_string_value(j), "utf-8") != 0 &&
             strcmp(json_string_value(j), "base64") != 0))
            return nu__invalid(v, f->name, "expected \"utf-8\" or "
                               "\"base64\"");
        return NU_OK;
    case NU__F_URL:
        rc = nu__check_string(v, f->name, j, false, NU_DECIDE_MAX_URL, true);
        if (rc != NU_OK)
            return rc;
        if (nu_url_parse(json_string_value(j), &req->url, &err) != NU_OK)
            return nu__invalid(v, f->name, "%s", err.msg);
        return NU_OK;
    }
    return nu__invalid(v, f->name, "unknown field type");
}

static const nu__field_t *nu__find_field(const nu__field_t *fields,
                                         const char *key)
{
    for (size_t i = 0; fields[i].name != NULL; i++)
        if (strcmp(fields[i].name, key) == 0)
            return &fields[i];
    return NULL;
}

static int nu__find_tool(const json_t *call, const nu__tool_spec_t **spec,
                         char *reason, size_t size)
{
    const json_t *tool;

    if (!json_is_object(call)) {
        snprintf(reason, size,
                 "request: invalid tool call: expected an object, got %s",
                 call ? nu__type_name(call) : "nothing");
        return NU_EINVAL;
    }
    tool = json_object_get(call, "tool");
    if (!json_is_string(tool)) {
        snprintf(reason, size,
                 "request: invalid field 'tool': expected a string naming "
                 "read, write, edit, glob, grep, run or web_fetch");
        return NU_EINVAL;
    }
    for (size_t i = 0; nu__tools[i].name != NULL; i++) {
        if (strcmp(nu__tools[i].name, json_string_value(tool)) == 0) {
            *spec = &nu__tools[i];
            return NU_OK;
        }
    }
    snprintf(reason, size,
             "request: unknown tool '%.100s' (expected read, write, edit, "
             "glob, grep, run or web_fetch)",
             json_string_value(tool));
    return NU_EINVAL;
}

/* Fill the fields later steps use. */
static void nu__extract(const json_t *call, nu__request_t *req)
{
    const json_t *j;

    j = json_object_get(call, "path");
    req->path = json_is_string(j) ? json_string_value(j) : "";
    j = json_object_get(call, req->tool == NU__TOOL_GREP ? "glob" : "pattern");
    req->pattern = json_is_string(j) ? json_string_value(j) : NULL;
    j = json_object_get(call, "cwd");
    req->cwd = json_is_string(j) ? json_string_value(j) : "";
    j = json_object_get(call, "command");
    req->command = json_is_string(j) ? json_string_value(j) : NULL;
    j = json_object_get(call, "argv");
    req->argv = json_is_array(j) ? j : NULL;
    j = json_object_get(call, "env");
    req->env = json_is_object(j) ? j : NULL;
}

int nu__decide_validate(const json_t *call, nu__request_t *req, char *reason,
                        size_t size)
{
    const nu__tool_spec_t *spec = NULL;
    nu__vctx_t v = {.tool = "request", .reason = reason, .size = size};
    const char *key;
    const json_t *value;
    int rc;

    memset(req, 0, sizeof *req);
    rc = nu__find_tool(call, &spec, reason, size);
    if (rc != NU_OK)
        return rc;
    v.tool = spec->name;
    req->tool = spec->tool;
    req->tool_known = true;

    json_object_foreach((json_t *)call, key, value) {
        if (strcmp(key, "tool") == 0)
            continue;
        const nu__field_t *f = nu__find_field(spec->fields, key);
        if (f == NULL) {
            snprintf(reason, size, "%s: unknown field '%.100s'", spec->name,
                     key);
            return NU_EINVAL;
        }
        rc = nu__check_field(&v, f, value, req);
        if (rc != NU_OK)
            return rc;
    }

    for (size_t i = 0; spec->fields[i].name != NULL; i++) {
        if (spec->fields[i].required &&
            json_object_get(call, spec->fields[i].name) == NULL) {
            snprintf(reason, size, "%s: missing required field '%s'",
                     spec->name, spec->fields[i].name);
            return NU_EINVAL;
        }
    }

    if (req->tool == NU__TOOL_RUN) {
        bool has_argv = json_object_get(call, "argv") != NULL;
        bool has_cmd = json_object_get(call, "command") != NULL;
        if (has_argv == has_cmd) {
            snprintf(reason, size,
                     "run: invalid request: give exactly one of 'argv' (a "
                     "list of strings) or 'command' (a shell string)");
            return NU_EINVAL;
        }
    }

    nu__extract(call, req);
    return NU_OK;
}
