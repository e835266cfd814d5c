/*
 * fuzz_shell.c - libFuzzer target for the shell parser and the classifier.
 *
 * Build with -DNU_FUZZ=ON (clang), then run for example
 *   build/fuzz/tests/fuzz_shell -max_len=4096 -max_total_time=60
 * Each input is parsed with its exact length (NUL bytes included), then
 * classified as a C string and as an argv vector split at newlines.
 * Invariants checked: the call succeeds, flags stay within the defined
 * bits, and every reported command has a NULL-terminated argv.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nucleus/classify.h"
#include "nucleus/shell.h"

#define FUZZ_FLAGS_ALL 0x01FFu

static void check_analysis(const nu_cmd_analysis_t *a)
{
    if ((a->flags & ~FUZZ_FLAGS_ALL) != 0 || a->ncmds > NU_SHELL_MAX_COMMANDS)
        abort();
    for (size_t i = 0; i < a->ncmds; i++) {
        const nu_simple_cmd_t *c = &a->cmds[i];
        if (c->argc < 0 || c->argv == NULL || c->argv[c->argc] != NULL)
            abort();
        if (c->operation >= NU_OP_COUNT)
            abort();
    }
}

static void classify_argv(const char *text)
{
    char *copy = strdup(text);
    char *argv[64];
    int argc = 0;
    nu_cmd_analysis_t a;

    if (copy == NULL)
        return;
    for (char *tok = strtok(copy, "\n"); tok != NULL && argc < 63;
         tok = strtok(NULL, "\n"))
        argv[argc++] = tok;
    argv[argc] = NULL;
    if (nu_classify_argv(argc, argv, &a) == NU_OK) {
        check_analysis(&a);
        nu_cmd_analysis_free(&a);
    }
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    nu_shell_script_t script;
    nu_cmd_analysis_t a;
    char *text;

    if (nu_shell_parse((const char *)data, size, 0, &script) == NU_OK)
        nu_shell_script_free(&script);

    text = malloc(size + 1);
    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';

    if (nu_classify_shell(text, &a) == NU_OK) {
        check_analysis(&a);
        nu_cmd_analysis_free(&a);
    }
    classify_argv(text);
    free(text);
    return 0;
}
