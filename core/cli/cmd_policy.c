/*
 * cmd_policy.c - "nucleus policy": check, show, meet, join, leq, eval,
 * test and list.
 *
 * Output formats (other tools and tests parse them):
 *   check FILE          nothing on success; "FILE:LINE: message" on stderr
 *                       and exit 1 when the profile is invalid
 *   show NAME|FILE      the normalized permission as canonical JSON
 *   meet A B, join A B  canonical JSON of the result
 *   leq A B             "true" or "false"
 *   eval NAME|FILE --call JSON [--exposure LEGS] [--egress] [--now SECONDS]
 *                       one JSON object {"decision", "operation", "kind",
 *                       "reason", "approval_key"} (kind and approval_key
 *                       only when they apply), exit 0 whatever the decision
 *   test [PATH...]      runs every *_test.lua (PATH is a file or a
 *                       directory searched recursively; default
 *                       "policies"), prints failures then "N passed, N
 *                       failed"; exit 1 when any failed
 *   list                the built-in profile names, one a line
 * Usage errors exit 2.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli/commands.h"
#include "nucleus/json.h"
#include "nucleus/policy.h"

#define NU__TEST_MAX_DEPTH 16

static void nu__policy_usage(FILE *out)
{
    fprintf(out,
            "usage: nucleus policy check FILE\n"
            "       nucleus policy show NAME|FILE\n"
            "       nucleus policy meet|join|leq A B\n"
            "       nucleus policy eval NAME|FILE --call JSON "
            "[--exposure private,untrusted,exfil] [--egress] "
            "[--now SECONDS]\n"
            "       nucleus policy test [PATH...]\n"
            "       nucleus policy list\n\n"
            "NAME is a built-in profile ('nucleus policy list'); FILE is a "
            "Lua profile or the\ncanonical JSON that 'show' prints.\n");
}

static int nu__usage_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static int nu__usage_error(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "nucleus policy: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (run 'nucleus policy --help')\n");
    return NU_EXIT_USAGE;
}

static nu_profile_t *nu__load(const char *arg)
{
    nu_profile_t *profile = NULL;
    nu_err_t err;

    if (nu_profile_load(&profile, arg, NULL, &err) != NU_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return NULL;
    }
    return profile;
}

static int nu__print_json(const json_t *json)
{
    nu_err_t err;
    char *text;

    if (json == NULL) {
        fprintf(stderr, "nucleus policy: out of memory\n");
        return NU_EXIT_FAIL;
    }
    text = nu_json_canonical(json, NULL, &err);
    if (text == NULL) {
        fprintf(stderr, "nucleus policy: %s\n", err.msg);
        return NU_EXIT_FAIL;
    }
    printf("%s\n", text);
    free(text);
    return NU_EXIT_OK;
}

static int nu__cmd_check(int argc, char **argv)
{
    nu_profile_t *profile;

    if (argc != 2)
        return nu__usage_error("check takes one FILE");
    profile = nu__load(argv[1]);
    if (profile == NULL)
        return NU_EXIT_FAIL;
    nu_profile_free(profile);
    return NU_EXIT_OK;
}

static int nu__cmd_show(int argc, char **argv)
{
    nu_profile_t *profile;
    json_t *json;
    int rc;

    if (argc != 2)
        return nu__usage_error("show takes one NAME or FILE");
    profile = nu__load(argv[1]);
    if (profile == NULL)
        return NU_EXIT_FAIL;
    json = nu_perm_to_json(nu_profile_perm(profile));
    rc = nu__print_json(json);
    json_decref(json);
    nu_profile_free(profile);
    return rc;
}

/* meet, join and leq: two profiles in, one result out. */
static int nu__cmd_binary(int argc, char **argv)
{
    const char *op = argv[0];
    nu_profile_t *a = NULL, *b = NULL;
    nu_perm_t out;
    json_t *json;
    int rc = NU_EXIT_FAIL;

    if (argc != 3)
        return nu__usage_error("%s takes two profiles (NAME or FILE)", op);
    if ((a = nu__load(argv[1])) == NULL || (b = nu__load(argv[2])) == NULL)
        goto out;

    if (strcmp(op, "leq") == 0) {
        printf("%s\n", nu_perm_leq(nu_profile_perm(a), nu_profile_perm(b))
                           ? "true" : "false");
        rc = NU_EXIT_OK;
        goto out;
    }

    if ((strcmp(op, "meet") == 0 ? nu_perm_meet : nu_perm_join)(
            &out, nu_profile_perm(a), nu_profile_perm(b)) != NU_OK) {
        fprintf(stderr, "nucleus policy: cannot compute the %s: out of "
                        "memory\n", op);
        goto out;
    }
    json = nu_perm_to_json(&out);
    rc = nu__print_json(json);
    json_decref(json);
    nu_perm_free(&out);

out:
    nu_profile_free(a);
    nu_profile_free(b);
    return rc;
}

/* Parse "private,untrusted,exfil" (any subset, comma-separated). */
static int nu__parse_exposure(const char *text, unsigned *legs)
{
    char *copy = strdup(text), *save = NULL;
    int rc = 0;

    if (copy == NULL)
        return -1;
    *legs = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        if (strcmp(tok, "private") == 0)
            *legs |= NU_LEG_PRIVATE;
        else if (strcmp(tok, "untrusted") == 0)
            *legs |= NU_LEG_UNTRUSTED;
        else if (strcmp(tok, "exfil") == 0)
            *legs |= NU_LEG_EXFIL;
        else if (tok[0] != '\0')
            rc = -1;
    }
    free(copy);
    return rc;
}

static int nu__cmd_eval(int argc, char **argv)
{
    static const struct option options[] = {
        { "call", required_argument, NULL, 'c' },
        { "exposure", required_argument, NULL, 'x' },
        { "egress", no_argument, NULL, 'e' },
        { "now", required_argument, NULL, 'n' },
        { NULL, 0, NULL, 0 }
    };
    nu_decide_ctx_t ctx = { .now = (int64_t)time(NULL) };
    const char *call_text = NULL;
    nu_profile_t *profile;
    nu_decision_t decision;
    json_t *call, *json;
    nu_err_t err;
    char *end;
    int opt, rc;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
        switch (opt) {
        case 'c':
            call_text = optarg;
            break;
        case 'x':
            if (nu__parse_exposure(optarg, &ctx.exposure) != 0)
                return nu__usage_error("invalid --exposure '%s' (expected "
                                       "a list of private, untrusted, "
                                       "exfil)", optarg);
            break;
        case 'e':
            ctx.egress = true;
            break;
        case 'n':
            errno = 0;
            ctx.now = strtoll(optarg, &end, 10);
            if (errno != 0 || *end != '\0' || end == optarg)
                return nu__usage_error("invalid --now '%s' (expected Unix "
                                       "seconds)", optarg);
            break;
        default:
            return nu__usage_error("invalid option for eval");
        }
    }
    if (optind != argc - 1)
        return nu__usage_error("eval takes one NAME or FILE");
    if (call_text == NULL)
        return nu__usage_error("eval needs --call JSON");

    call = nu_json_parse(call_text, strlen(call_text), &err);
    if (call == NULL)
        return nu__usage_error("invalid --call: %s", err.msg);

    profile = nu__load(argv[optind]);
    if (profile == NULL) {
        json_decref(call);
        return NU_EXIT_FAIL;
    }
    nu_profile_eval(profile, call, &ctx, NULL, &decision, NULL);
    json = nu_decision_to_json(&decision);
    rc = nu__print_json(json);
    json_decref(json);
    json_decref(call);
    nu_profile_free(profile);
    return rc;
}

/* --- test ------------------------------------------------------------ */

typedef struct nu__test_totals {
    int passed;
    int failed;
    int files;
} nu__test_totals_t;

static void nu__print_failure(const char *line, void *userdata)
{
    printf("FAIL %s\n", line);
}

static bool nu__is_test_file(const char *name)
{
    size_t n = strlen(name);

    return n > 9 && strcmp(name + n - 9, "_test.lua") == 0;
}

static void nu__test_path(const char *path, nu__test_totals_t *totals,
                          int depth, bool explicit_file);

static void nu__test_dir(const char *path, nu__test_totals_t *totals,
                         int depth)
{
    struct dirent **entries = NULL;
    int n = scandir(path, &entries, NULL, alphasort);

    if (n < 0) {
        printf("FAIL %s: cannot read directory: %s\n", path, strerror(errno));
        totals->failed++;
        return;
    }
    for (int i = 0; i < n; i++) {
        char child[4096];
        if (entries[i]->d_name[0] != '.') {
            snprintf(child, sizeof child, "%s/%s", path, entries[i]->d_name);
            nu__test_path(child, totals, depth + 1, false);
        }
        free(entries[i]);
    }
    free(entries);
}

static void nu__test_path(const char *path, nu__test_totals_t *totals,
                          int depth, bool explicit_file)
{
    struct stat st;

    if (depth > NU__TEST_MAX_DEPTH)
        return;
    if (stat(path, &st) != 0) {
        printf("FAIL %s: cannot open: %s\n", path, strerror(errno));
        totals->failed++;
        return;
    }
    if (S_ISDIR(st.st_mode)) {
        nu__test_dir(path, totals, depth);
        return;
    }
    if (!explicit_file && !nu__is_test_file(path))
        return;
    totals->files++;
    nu_policy_test_file(path, NULL, &totals->passed, &totals->failed,
                        nu__print_failure, NULL);
}

static int nu__cmd_test(int argc, char **argv)
{
    nu__test_totals_t totals = { 0 };
    char **paths = argv + 1;
    int count = argc - 1;
    char *fallback[] = { "policies" };

    if (count == 0) {
        struct stat st;
        if (stat(fallback[0], &st) != 0 || !S_ISDIR(st.st_mode))
            return nu__usage_error("test needs a PATH (there is no "
                                   "./policies directory)");
        paths = fallback;
        count = 1;
    }
    for (int i = 0; i < count; i++) {
        if (paths[i][0] == '-')
            return nu__usage_error("unknown option '%s' for test", paths[i]);
        nu__test_path(paths[i], &totals, 0, true);
    }
    if (totals.files == 0 && totals.failed == 0)
        fprintf(stderr, "nucleus policy: no *_test.lua files found\n");
    printf("%d passed, %d failed\n", totals.passed, totals.failed);
    return totals.failed > 0 ? NU_EXIT_FAIL : NU_EXIT_OK;
}

static int nu__cmd_list(int argc, char **argv)
{
    const char *const *names = nu_profile_builtin_names();

    if (argc != 1)
        return nu__usage_error("list takes no arguments");
    for (int i = 0; names[i] != NULL; i++)
        printf("%s\n", names[i]);
    return NU_EXIT_OK;
}

int nu_cmd_policy(int argc, char **argv)
{
    const char *sub;

    if (argc < 2) {
        nu__policy_usage(stderr);
        return NU_EXIT_USAGE;
    }
    sub = argv[1];
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0 ||
        strcmp(sub, "help") == 0) {
        nu__policy_usage(stdout);
        return NU_EXIT_OK;
    }

    argc--;
    argv++;
    if (strcmp(sub, "check") == 0)
        return nu__cmd_check(argc, argv);
    if (strcmp(sub, "show") == 0)
        return nu__cmd_show(argc, argv);
    if (strcmp(sub, "meet") == 0 || strcmp(sub, "join") == 0 ||
        strcmp(sub, "leq") == 0)
        return nu__cmd_binary(argc, argv);
    if (strcmp(sub, "eval") == 0)
        return nu__cmd_eval(argc, argv);
    if (strcmp(sub, "test") == 0)
        return nu__cmd_test(argc, argv);
    if (strcmp(sub, "list") == 0)
        return nu__cmd_list(argc, argv);
    return nu__usage_error("unknown subcommand '%s'", sub);
}
