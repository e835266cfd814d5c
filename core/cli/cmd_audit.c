/*
 * cmd_audit.c - nucleus audit: verify, export, prove, check-proof, show,
 * key, checkpoint and the append-test helper.
 *
 * Output formats other tests rely on:
 *   verify ok:    "ok: N events, M checkpoints, root <hex>" then
 *                 "unanchored: K events after the newest checkpoint"
 *   verify fail:  "audit: verification failed at seq N: <reason>", exit 1
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "nucleus/audit.h"
#include "nucleus/home.h"
#include "nucleus/node.h"
#include "nucleus/home.h"
#include "nucleus/json.h"

typedef struct nu__audit_args {
    const char *home;
    const char *db;
    const char *key_file;
    const char *bundle_file;
    const char *file;
    const char *checkpoint_file;
    const char *pod;
    const char *format;
    const char *output;
    const char *signer_key;
    const char *signer_chain;
    const char *reason;
    int64_t since;
    int64_t tail;
    int64_t from;
    int64_t to;
    int64_t every;
    int64_t threads;
    int power;
    int print_seq;
    const char *positional[2];
    int npositional;
} nu__audit_args_t;

static void nu__usage(FILE *out)
{
    fprintf(out,
        "usage: nucleus audit COMMAND [OPTIONS]\n\n"
        "commands:\n"
        "  verify [--file EXPORT.jsonl] [--checkpoint FILE]\n"
        "                        re-check chain, tree roots and signatures\n"
        "  export [--pod ID] [--since SEQ] [--format jsonl] [-o FILE]\n"
        "  prove SEQ | prove --from SIZE1 [--to SIZE2]\n"
        "  check-proof PROOF.json\n"
        "  show [--pod ID] [--tail N]\n"
        "  key                   print the node public key (PEM)\n"
        "  checkpoint            sign a checkpoint over every event now\n\n"
        "common options:\n"
        "  --home DIR            state directory (default $NUCLEUS_HOME)\n"
        "  --db FILE             audit database (default DIR/audit.db)\n"
        "  --key PEM             trust this public key for signatures\n"
        "  --bundle PEM          trust checkpoints whose chain leads here\n");
}

static int nu__int_arg(const char *opt, const char *v, int64_t *out)
{
    char *end;
    long long n;

    errno = 0;
    n = strtoll(v != NULL ? v : "", &end, 10);
    if (v == NULL || *v == '\0' || *end != '\0' || errno != 0 || n < 0) {
        fprintf(stderr, "audit: invalid value '%s' for %s: expected a "
                "non-negative integer\n", v != NULL ? v : "", opt);
        return -1;
    }
    *out = n;
    return 0;
}

/* Parse argv[1..]; returns 0, or -1 after printing a usage error. */
static int nu__parse(int argc, char **argv, nu__audit_args_t *o)
{
    static const struct { const char *name; size_t off; } str_opts[] = {
        { "--home", offsetof(nu__audit_args_t, home) },
        { "--db", offsetof(nu__audit_args_t, db) },
        { "--key", offsetof(nu__audit_args_t, key_file) },
        { "--bundle", offsetof(nu__audit_args_t, bundle_file) },
        { "--file", offsetof(nu__audit_args_t, file) },
        { "--checkpoint", offsetof(nu__audit_args_t, checkpoint_file) },
        { "--pod", offsetof(nu__audit_args_t, pod) },
        { "--format", offsetof(nu__audit_args_t, format) },
        { "-o", offsetof(nu__audit_args_t, output) },
        { "--signer-key", offsetof(nu__audit_args_t, signer_key) },
        { "--signer-chain", offsetof(nu__audit_args_t, signer_chain) },
        { "--reason", offsetof(nu__audit_args_t, reason) },
    };
    static const struct { const char *name; size_t off; } int_opts[] = {
        { "--since", offsetof(nu__audit_args_t, since) },
        { "--tail", offsetof(nu__audit_args_t, tail) },
        { "--from", offsetof(nu__audit_args_t, from) },
        { "--to", offsetof(nu__audit_args_t, to) },
        { "--every", offsetof(nu__audit_args_t, every) },
        { "--threads", offsetof(nu__audit_args_t, threads) },
    };

    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        int matched = 0;

        if (strcmp(a, "--power") == 0) {
            o->power = 1;
            continue;
        }
        if (strcmp(a, "--print-seq") == 0) {
            o->print_seq = 1;
            continue;
        }
        for (size_t k = 0; k < sizeof str_opts / sizeof str_opts[0]; k++) {
            if (strcmp(a, str_opts[k].name) != 0)
                continue;
            if (i + 1 >= argc) {
                fprintf(stderr, "audit: option %s needs a value\n", a);
                return -1;
            }
            *(const char **)((char *)o + str_opts[k].off) = argv[++i];
            matched = 1;
        }
        for (size_t k = 0; !matched && k < sizeof int_opts / sizeof int_opts[0];
             k++) {
            if (strcmp(a, int_opts[k].name) != 0)
                continue;
            if (nu__int_arg(a, i + 1 < argc ? argv[i + 1] : NULL,
                            (int64_t *)((char *)o + int_opts[k].off)) != 0)
                return -1;
            i++;
            matched = 1;
        }
        if (matched)
            continue;
        if (a[0] == '-' || o->npositional >= 2) {
            fprintf(stderr, "audit: unknown option or extra argument '%s' "
                    "(run 'nucleus audit --help')\n", a);
            return -1;
        }
        o->positional[o->npositional++] = a;
    }
    if (o->home != NULL && o->db != NULL) {
        fprintf(stderr, "audit: --home and --db are exclusive\n");
        return -1;
    }
    if (o->key_file != NULL && o->bundle_file != NULL) {
        fprintf(stderr, "audit: --key and --bundle are exclusive\n");
        return -1;
    }
    return 0;
}

static char *nu__slurp(const char *path)
{
    FILE *f = fopen(path, "rbe");
    char *data = NULL;
    size_t len = 0, cap = 0, n;

    if (f == NULL) {
        fprintf(stderr, "audit: cannot open '%s': %s\n", path,
                strerror(errno));
        return NULL;
    }
    do {
        if (len + 4096 + 1 > cap) {
            char *next = realloc(data, cap = cap * 2 + 8192);
            if (next == NULL) {
                free(data);
                fclose(f);
                return NULL;
            }
            data = next;
        }
        n = fread(data + len, 1, 4096, f);
        len += n;
    } while (n > 0);
    data[len] = '\0';
    fclose(f);
    return data;
}

typedef struct nu__trust_files {
    nu_audit_trust_t trust;
    char *key;
    char *bundle;
} nu__trust_files_t;

/* Load --key / --bundle; with neither, fall back to the local node key of
 * the state directory (missing is fine here; the verifier reports it). */
static int nu__load_trust(const nu__audit_args_t *o, nu__trust_files_t *t)
{
    memset(t, 0, sizeof *t);
    if (o->key_file != NULL && (t->key = nu__slurp(o->key_file)) == NULL)
        return -1;
    if (o->bundle_file != NULL &&
        (t->bundle = nu__slurp(o->bundle_file)) == NULL)
        return -1;
    if (t->key == NULL && t->bundle == NULL && o->db == NULL) {
        char home[4096];
        nu_err_t err;
        t->key = nu_audit_local_public_key(o->home, NULL);
        /* Checkpoints signed by the node SVID check against the CA. */
        if (nu_home_resolve(o->home, home, sizeof home, &err) == NU_OK)
            t->bundle = nu_node_bundle(home);
    }
    if (t->key == NULL && t->bundle == NULL && o->db != NULL) {
        char path[4200];
        const char *slash = strrchr(o->db, '/');

        snprintf(path, sizeof path, "%.*s/audit/node.pub",
                 slash != NULL ? (int)(slash - o->db) : 1,
                 slash != NULL ? o->db : ".");
        FILE *f = fopen(path, "re");
        if (f != NULL) {
            fclose(f);
            t->key = nu__slurp(path);
        }
    }
    t->trust.key_pem = t->key;
    t->trust.bundle_pem = t->bundle;
    return 0;
}

static void nu__trust_free(nu__trust_files_t *t)
{
    free(t->key);
    free(t->bundle);
}

static int nu__open(const nu__audit_args_t *o, int read_only, nu_audit_t **a)
{
    nu_audit_options_t opts = { 0 };
    nu_err_t err = { 0 };

    opts.home = o->home;
    opts.db_path = o->db;
    opts.read_only = read_only;
    if (nu_audit_open(&opts, a, &err) != NU_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    return 0;
}

static int nu__print_report(int rc, const nu_audit_report_t *rep)
{
    char hex[NU_SHA256_HEX_LEN + 1];

    if (rc == NU_EDENIED) {
        printf("audit: verification failed at seq %" PRId64 ": %s\n",
               rep->bad_seq, rep->reason);
        fflush(stdout);
        return NU_EXIT_FAIL;
    }
    nu_hex_encode(rep->root, NU_SHA256_LEN, hex);
    printf("ok: %" PRId64 " events, %" PRId64 " checkpoints, root %s\n",
           rep->events, rep->checkpoints, hex);
    printf("unanchored: %" PRId64 " events after the newest checkpoint\n",
           rep->unanchored);
    return NU_EXIT_OK;
}

static int nu__cmd_verify(const nu__audit_args_t *o)
{
    nu__trust_files_t t;
    nu_audit_report_t rep;
    nu_err_t err = { 0 };
    nu_audit_t *a = NULL;
    int rc, status = NU_EXIT_FAIL;

    if (nu__load_trust(o, &t) != 0)
        goto cleanup;

    if (o->file != NULL) {
        FILE *in = fopen(o->file, "re");

        if (in == NULL) {
            fprintf(stderr, "audit: cannot open '%s': %s\n", o->file,
                    strerror(errno));
            goto cleanup;
        }
        rc = nu_audit_verify_export(in, &t.trust, NULL, &rep, &err);
        fclose(in);
    } else {
        nu_audit_options_t opts = { 0 };

        opts.home = o->home;
        opts.db_path = o->db;
        opts.read_only = 1;
        rc = nu_audit_open(&opts, &a, &err);
        if (rc == NU_EDB) {
            /* A file that SQLite cannot read as our schema is damage that
             * verification reports, not a usage problem. */
            memset(&rep, 0, sizeof rep);
            rep.bad_seq = 1;
            snprintf(rep.reason, sizeof rep.reason, "cannot read the "
                     "database: %.200s", err.msg);
            status = nu__print_report(NU_EDENIED, &rep);
            goto cleanup;
        }
        if (rc != NU_OK) {
            fprintf(stderr, "%s\n", err.msg);
            goto cleanup;
        }
        rc = nu_audit_verify_anchor(a, &t.trust, o->checkpoint_file, &rep,
                                    &err);
    }
    if (rc != NU_OK && rc != NU_EDENIED) {
        fprintf(stderr, "%s\n", err.msg);
        goto cleanup;
    }
    status = nu__print_report(rc, &rep);

cleanup:
    nu_audit_close(a);
    nu__trust_free(&t);
    return status;
}

static int nu__cmd_export(const nu__audit_args_t *o)
{
    nu_err_t err = { 0 };
    nu_audit_t *a = NULL;
    FILE *out = stdout;
    int status = NU_EXIT_FAIL;

    if (o->format != NULL && strcmp(o->format, "jsonl") != 0) {
        fprintf(stderr, "audit: invalid --format '%s': only 'jsonl' is "
                "supported\n", o->format);
        return NU_EXIT_USAGE;
    }
    if (nu__open(o, 1, &a) != 0)
        return NU_EXIT_FAIL;
    if (o->output != NULL && (out = fopen(o->output, "we")) == NULL) {
        fprintf(stderr, "audit: cannot create '%s': %s\n", o->output,
                strerror(errno));
        goto cleanup;
    }
    if (nu_audit_export(a, o->pod, o->since, out, &err) != NU_OK) {
        fprintf(stderr, "%s\n", err.msg);
        goto cleanup;
    }
    status = NU_EXIT_OK;

cleanup:
    if (out != stdout && out != NULL && fclose(out) != 0)
        status = NU_EXIT_FAIL;
    nu_audit_close(a);
    return status;
}

static int nu__print_json(json_t *obj)
{
    char *text = json_dumps(obj, JSON_INDENT(2) | JSON_SORT_KEYS);

    if (text == NULL)
        return NU_EXIT_FAIL;
    puts(text);
    free(text);
    return NU_EXIT_OK;
}

static int nu__cmd_prove(const nu__audit_args_t *o)
{
    nu_err_t err = { 0 };
    nu_audit_t *a = NULL;
    json_t *proof;
    int64_t seq = 0;
    int status;

    if (o->from == 0 && (o->npositional != 1 ||
                         nu__int_arg("SEQ", o->positional[0], &seq) != 0)) {
        fprintf(stderr, "usage: nucleus audit prove SEQ | prove --from SIZE1 "
                "[--to SIZE2]\n");
        return NU_EXIT_USAGE;
    }
    if (nu__open(o, 1, &a) != 0)
        return NU_EXIT_FAIL;
    proof = o->from != 0 ? nu_audit_prove_consistency(a, o->from, o->to, &err)
                         : nu_audit_prove_inclusion(a, seq, &err);
    nu_audit_close(a);
    if (proof == NULL) {
        fprintf(stderr, "%s\n", err.msg);
        return NU_EXIT_FAIL;
    }
    status = nu__print_json(proof);
    json_decref(proof);
    return status;
}

static int nu__cmd_check_proof(const nu__audit_args_t *o)
{
    nu__trust_files_t t;
    nu_err_t err = { 0 };
    json_error_t jerr;
    json_t *proof = NULL;
    char summary[512];
    int status = NU_EXIT_FAIL;

    if (o->npositional != 1) {
        fprintf(stderr, "usage: nucleus audit check-proof PROOF.json "
                "[--key PEM | --bundle PEM]\n");
        return NU_EXIT_USAGE;
    }
    if (nu__load_trust(o, &t) != 0)
        goto cleanup;
    proof = json_load_file(o->positional[0], 0, &jerr);
    if (proof == NULL) {
        fprintf(stderr, "audit: cannot read proof '%s': %s (line %d)\n",
                o->positional[0], jerr.text, jerr.line);
        goto cleanup;
    }
    if (nu_audit_check_proof(proof, &t.trust, summary, sizeof summary,
                             &err) != NU_OK) {
        printf("audit: proof check failed: %s\n", err.msg);
        goto cleanup;
    }
    printf("%s\n", summary);
    status = NU_EXIT_OK;

cleanup:
    json_decref(proof);
    nu__trust_free(&t);
    return status;
}

/* ---- show ------------------------------------------------------------------ */

/* Code points that can make a terminal line lie about its contents: bidi
 * embeddings, overrides and isolates, zero-width characters, line and
 * paragraph separators and the byte order mark. */
static int nu__deceptive(uint32_t cp)
{
    return (cp >= 0x200b && cp <= 0x200f) || (cp >= 0x202a && cp <= 0x202e) ||
           (cp >= 0x2060 && cp <= 0x2069) || cp == 0x2028 || cp == 0x2029 ||
           cp == 0xfeff || cp == 0x061c || (cp >= 0x80 && cp < 0xa0);
}

/* Write s with control, bidi and zero-width characters escaped. */
static void nu__put_escaped(FILE *out, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;

    while (*p != '\0') {
        uint32_t cp;
        int len;

        if (*p < 0x20 || *p == 0x7f || *p == '\\') {
            if (*p == '\\')
                fputs("\\\\", out);
            else
                fprintf(out, "\\x%02x", *p);
            p++;
            continue;
        }
        if (*p < 0x80) {
            fputc(*p++, out);
            continue;
        }
        if ((*p & 0xe0) == 0xc0) {
            cp = *p & 0x1f;
            len = 2;
        } else if ((*p & 0xf0) == 0xe0) {
            cp = *p & 0x0f;
            len = 3;
        } else if ((*p & 0xf8) == 0xf0) {
            cp = *p & 0x07;
            len = 4;
        } else {
            fprintf(out, "\\x%02x", *p++);
            continue;
        }
        for (int i = 1; i < len; i++) {
            if ((p[i] & 0xc0) != 0x80) {
                len = 0;
                break;
            }
            cp = cp << 6 | (p[i] & 0x3f);
        }
        if (len == 0) {
            fprintf(out, "\\x%02x", *p++);
            continue;
        }
        if (nu__deceptive(cp))
            fprintf(out, "\\u{%04x}", (unsigned)cp);
        else
            fwrite(p, 1, (size_t)len, out);
        p += len;
    }
}

static void nu__show_field(FILE *out, const char *name, const char *value)
{
    if (value == NULL)
        return;
    fprintf(out, " %s=", name);
    nu__put_escaped(out, value);
}

typedef struct nu__show {
    char **lines;
    int64_t cap;
    int64_t count;
} nu__show_t;

static int nu__show_event(const nu_audit_record_t *r, void *ud)
{
    nu__show_t *s = ud;
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);

    if (out == NULL)
        return NU_ENOMEM;
    fprintf(out, "%" PRId64 " ", r->seq);
    nu__put_escaped(out, r->time != NULL ? r->time : "-");
    fputc(' ', out);
    nu__put_escaped(out, r->type != NULL ? r->type : "-");
    nu__show_field(out, "pod", r->pod);
    nu__show_field(out, "spiffe_id", r->spiffe_id);
    nu__show_field(out, "tool", r->tool);
    nu__show_field(out, "operation", r->operation);
    nu__show_field(out, "decision", r->decision);
    nu__show_field(out, "kind", r->kind);
    nu__show_field(out, "reason", r->reason);
    nu__show_field(out, "args", r->args);
    nu__show_field(out, "result_digest", r->result_digest);
    fclose(out);

    if (s->cap == 0) {
        puts(buf);
        free(buf);
        return 0;
    }
    free(s->lines[s->count % s->cap]);
    s->lines[s->count % s->cap] = buf;
    s->count++;
    return 0;
}

static int nu__cmd_show(const nu__audit_args_t *o)
{
    nu__show_t s = { NULL, o->tail, 0 };
    nu_err_t err = { 0 };
    nu_audit_t *a = NULL;
    int64_t since = 1, size = 0;
    int status = NU_EXIT_OK;

    if (nu__open(o, 1, &a) != 0)
        return NU_EXIT_FAIL;
    if (o->tail > 0 && o->pod == NULL &&
        nu_audit_size(a, &size, &err) == NU_OK && size > o->tail)
        since = size - o->tail + 1;
    if (s.cap > 0 && (s.lines = calloc((size_t)s.cap, sizeof *s.lines)) ==
                         NULL) {
        nu_audit_close(a);
        return NU_EXIT_FAIL;
    }
    if (nu_audit_scan(a, since, o->pod, nu__show_event, &s, &err) != NU_OK) {
        fprintf(stderr, "%s\n", err.msg);
        status = NU_EXIT_FAIL;
    }
    for (int64_t i = s.count > s.cap ? s.count - s.cap : 0; i < s.count; i++)
        puts(s.lines[i % s.cap]);
    for (int64_t i = 0; i < s.cap; i++)
        free(s.lines[i]);
    free(s.lines);
    nu_audit_close(a);
    return status;
}

static int nu__cmd_key(const nu__audit_args_t *o)
{
    nu_audit_signer_t signer;
    nu_err_t err = { 0 };
    char dir[4096], sub[4200];

    if (nu_home_path(o->home, NULL, dir, sizeof dir, &err) != NU_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return NU_EXIT_FAIL;
    }
    snprintf(sub, sizeof sub, "%s/audit", dir);
    if (nu_audit_local_signer(sub, &signer, &err) != NU_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return NU_EXIT_FAIL;
    }
    fputs(signer.public_key_pem, stdout);
    nu_audit_signer_free(&signer);
    return NU_EXIT_OK;
}

static int nu__cmd_checkpoint(const nu__audit_args_t *o)
{
    nu_err_t err = { 0 };
    nu_audit_t *a = NULL;
    int64_t seq = 0;
    int rc;

    if (nu__open(o, 0, &a) != 0)
        return NU_EXIT_FAIL;
    rc = nu_audit_checkpoint(a, &seq, &err);
    nu_audit_close(a);
    if (rc != NU_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return NU_EXIT_FAIL;
    }
    if (seq == 0)
        printf("checkpoint: the newest event is already a checkpoint\n");
    else
        printf("checkpoint: written at seq %" PRId64 "\n", seq);
    return NU_EXIT_OK;
}

/* ---- append-test: a load generator for the tests ------------------------- */

typedef struct nu__loader {
    nu_audit_t *a;
    const nu__audit_args_t *o;
    int64_t count;
    int id;
    int failed;
    pthread_mutex_t *print_mu;
} nu__loader_t;

static void *nu__load_thread(void *arg)
{
    nu__loader_t *l = arg;
    static const nu_audit_redaction_t red[] = {
        { "GITHUB_TOKEN", "ghp_testtoken0123456789" },
    };

    for (int64_t i = 0; i < l->count; i++) {
        char pod[64], path[96], digest[NU_SHA256_HEX_LEN + 1];
        nu_audit_event_t ev = { 0 };
        nu_err_t err = { 0 };
        int64_t seq = 0;
        json_t *args;
        int rc;

        snprintf(pod, sizeof pod, "%s", l->o->pod != NULL ? l->o->pod : "");
        if (l->o->pod == NULL)
            snprintf(pod, sizeof pod, "pod-%d", (int)((l->id + i) % 4));
        snprintf(path, sizeof path, "src/module-%d/file-%" PRId64 ".c",
                 l->id, i);
        nu_audit_digest(path, strlen(path), digest);
        args = json_pack("{s:s, s:I, s:s}", "path", path, "limit",
                         (json_int_t)(i % 5000), "token",
                         "ghp_testtoken0123456789");
        ev.pod = pod;
        ev.spiffe_id = "spiffe://nucleus.local/ns/test/pod/load";
        ev.type = "tool_call";
        ev.tool = "read";
        ev.operation = "read";
        ev.args = args;
        ev.decision = "allow";
        ev.reason = l->o->reason != NULL ? l->o->reason
                                         : "profile allows reads";
        ev.result_digest = digest;
        rc = nu_audit_append(l->a, &ev, red, 1, &seq, &err);
        json_decref(args);
        if (rc != NU_OK) {
            fprintf(stderr, "%s\n", err.msg);
            l->failed = 1;
            return NULL;
        }
        if (l->o->print_seq) {
            pthread_mutex_lock(l->print_mu);
            printf("%" PRId64 "\n", seq);
            fflush(stdout);
            pthread_mutex_unlock(l->print_mu);
        }
    }
    return NULL;
}

static int nu__cmd_append_test(const nu__audit_args_t *o)
{
    nu_audit_options_t opts = { 0 };
    nu_audit_signer_t signer = { 0 };
    pthread_mutex_t print_mu = PTHREAD_MUTEX_INITIALIZER;
    int64_t n = 0, threads = o->threads > 0 ? o->threads : 1;
    nu__loader_t *loaders = NULL;
    pthread_t *tids = NULL;
    nu_err_t err = { 0 };
    nu_audit_t *a = NULL;
    int status = NU_EXIT_FAIL;

    if (o->npositional != 1 || nu__int_arg("N", o->positional[0], &n) != 0 ||
        threads > 1024) {
        fprintf(stderr, "usage: nucleus audit append-test N [--threads T "
                "(at most 1024)] [--every EVENTS] [--power] [--print-seq] "
                "[--reason TEXT] [--signer-key PEM [--signer-chain PEM]]\n");
        return NU_EXIT_USAGE;
    }
    if (o->signer_key != NULL &&
        nu_audit_file_signer(o->signer_key, o->signer_chain, &signer,
                             &err) != NU_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return NU_EXIT_FAIL;
    }
    opts.home = o->home;
    opts.db_path = o->db;
    opts.durability = o->power ? NU_AUDIT_POWER : NU_AUDIT_CRASH;
    opts.checkpoint_every = (uint64_t)o->every;
    opts.signer = o->signer_key != NULL ? &signer : NULL;
    if (nu_audit_open(&opts, &a, &err) != NU_OK) {
        fprintf(stderr, "%s\n", err.msg);
        goto cleanup;
    }

    loaders = calloc((size_t)threads, sizeof *loaders);
    tids = calloc((size_t)threads, sizeof *tids);
    if (loaders == NULL || tids == NULL)
        goto cleanup;
    for (int64_t i = 0; i < threads; i++) {
        loaders[i] = (nu__loader_t){ a, o, n, (int)i, 0, &print_mu };
        pthread_create(&tids[i], NULL, nu__load_thread, &loaders[i]);
    }
    status = NU_EXIT_OK;
    for (int64_t i = 0; i < threads; i++) {
        pthread_join(tids[i], NULL);
        if (loaders[i].failed)
            status = NU_EXIT_FAIL;
    }

cleanup:
    free(loaders);
    free(tids);
    nu_audit_close(a);
    nu_audit_signer_free(&signer);
    return status;
}

int nu_cmd_audit(int argc, char **argv)
{
    nu__audit_args_t o = { 0 };
    const char *sub = argc > 1 ? argv[1] : NULL;

    if (sub == NULL || strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0) {
        nu__usage(sub == NULL ? stderr : stdout);
        return sub == NULL ? NU_EXIT_USAGE : NU_EXIT_OK;
    }
    if (nu__parse(argc, argv, &o) != 0)
        return NU_EXIT_USAGE;

    if (strcmp(sub, "verify") == 0)
        return nu__cmd_verify(&o);
    if (strcmp(sub, "export") == 0)
        return nu__cmd_export(&o);
    if (strcmp(sub, "prove") == 0)
        return nu__cmd_prove(&o);
    if (strcmp(sub, "check-proof") == 0)
        return nu__cmd_check_proof(&o);
    if (strcmp(sub, "show") == 0)
        return nu__cmd_show(&o);
    if (strcmp(sub, "key") == 0)
        return nu__cmd_key(&o);
    if (strcmp(sub, "checkpoint") == 0)
        return nu__cmd_checkpoint(&o);
    if (strcmp(sub, "append-test") == 0)
        return nu__cmd_append_test(&o);

    fprintf(stderr, "audit: unknown command '%s' (run 'nucleus audit "
            "--help')\n", sub);
    return NU_EXIT_USAGE;
}
