/*
 * cmd_ca.c - nucleus ca: create the trust domain's CA and print its bundle.
 *
 *   nucleus ca init [--trust-domain TD] [--force] [--home DIR]
 *   nucleus ca bundle [--format pem|spiffe] [--home DIR]
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "nucleus/home.h"
#include "nucleus/identity.h"

static void nu__ca_usage(FILE *out)
{
    fprintf(out,
            "usage: nucleus ca init [--trust-domain TD] [--force] [--home DIR]\n"
            "       nucleus ca bundle [--format pem|spiffe] [--home DIR]\n"
            "\n"
            "  init            create the CA under $NUCLEUS_HOME/ca/\n"
            "  bundle          print the trust bundle\n"
            "  --trust-domain  trust domain name (default " NU_TRUST_DOMAIN_DEFAULT ")\n"
            "  --force         replace an existing CA (its SVIDs stop validating)\n"
            "  --format        pem (default): the root certificate;\n"
            "                  spiffe: the SPIFFE bundle (JWKS) JSON\n"
            "  --home          state directory (overrides NUCLEUS_HOME)\n");
}

typedef struct nu__ca_opts {
    const char *home;
    const char *trust_domain;
    const char *format;
    int force;
} nu__ca_opts_t;

/* Parse options after the action word; returns 0, or 2 on a usage error. */
static int nu__ca_parse(int argc, char **argv, nu__ca_opts_t *opts)
{
    static const struct option longopts[] = {
        { "home", required_argument, NULL, 'H' },
        { "trust-domain", required_argument, NULL, 't' },
        { "format", required_argument, NULL, 'f' },
        { "force", no_argument, NULL, 'F' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int c;

    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'H': opts->home = optarg; break;
        case 't': opts->trust_domain = optarg; break;
        case 'f': opts->format = optarg; break;
        case 'F': opts->force = 1; break;
        case 'h': nu__ca_usage(stdout); exit(NU_EXIT_OK);
        default:
            fprintf(stderr, "nucleus ca: invalid option '%s' (run 'nucleus ca "
                    "--help')\n", argv[optind - 1]);
            return NU_EXIT_USAGE;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "nucleus ca: unexpected argument '%s'\n", argv[optind]);
        return NU_EXIT_USAGE;
    }
    return 0;
}

static int nu__ca_init(const nu__ca_opts_t *opts)
{
    char dir[4096];
    nu_err_t err;
    nu_ca_t *ca = NULL;

    if (nu_home_path(opts->home, "ca", dir, sizeof dir, &err) != NU_OK ||
        nu_ca_create(dir, opts->trust_domain, opts->force, &err) != NU_OK ||
        nu_ca_load(dir, &ca, &err) != NU_OK) {
        fprintf(stderr, "nucleus: %s\n", err.msg);
        return NU_EXIT_FAIL;
    }
    printf("created CA for trust domain '%s' in %s\n", nu_ca_trust_domain(ca),
           dir);
    nu_ca_free(ca);
    return NU_EXIT_OK;
}

static int nu__ca_bundle(const nu__ca_opts_t *opts)
{
    const char *format = opts->format != NULL ? opts->format : "pem";
    char dir[4096];
    nu_err_t err;
    nu_ca_t *ca = NULL;
    char *json;

    if (strcmp(format, "pem") != 0 && strcmp(format, "spiffe") != 0) {
        fprintf(stderr, "nucleus ca: invalid --format '%s' (expected pem or "
                "spiffe)\n", format);
        return NU_EXIT_USAGE;
    }
    if (nu_home_path(opts->home, "ca", dir, sizeof dir, &err) != NU_OK ||
        nu_ca_load(dir, &ca, &err) != NU_OK) {
        fprintf(stderr, "nucleus: %s\n", err.msg);
        return NU_EXIT_FAIL;
    }
    if (strcmp(format, "pem") == 0) {
        fputs(nu_ca_bundle_pem(ca), stdout);
    } else {
        json = nu_ca_bundle_json(ca, &err);
        if (json == NULL) {
            fprintf(stderr, "nucleus: %s\n", err.msg);
            nu_ca_free(ca);
            return NU_EXIT_FAIL;
        }
        printf("%s\n", json);
        free(json);
    }
    nu_ca_free(ca);
    return NU_EXIT_OK;
}

int nu_cmd_ca(int argc, char **argv)
{
    nu__ca_opts_t opts = { 0 };
    const char *action;
    int rc;

    if (argc < 2) {
        nu__ca_usage(stderr);
        return NU_EXIT_USAGE;
    }
    action = argv[1];
    if (strcmp(action, "--help") == 0 || strcmp(action, "-h") == 0) {
        nu__ca_usage(stdout);
        return NU_EXIT_OK;
    }
    rc = nu__ca_parse(argc - 1, argv + 1, &opts);
    if (rc != 0)
        return rc;

    if (strcmp(action, "init") == 0) {
        if (opts.format != NULL) {
            fprintf(stderr, "nucleus ca init: --format applies to 'ca bundle'\n");
            return NU_EXIT_USAGE;
        }
        return nu__ca_init(&opts);
    }
    if (strcmp(action, "bundle") == 0) {
        if (opts.trust_domain != NULL || opts.force) {
            fprintf(stderr, "nucleus ca bundle: --trust-domain and --force "
                    "apply to 'ca init'\n");
            return NU_EXIT_USAGE;
        }
        return nu__ca_bundle(&opts);
    }
    fprintf(stderr, "nucleus ca: unknown action '%s' (expected init or "
            "bundle)\n", action);
    return NU_EXIT_USAGE;
}
