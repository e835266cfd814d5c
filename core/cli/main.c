/*
 * main.c - the nucleus command: dispatch to a subcommand.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"

typedef struct nu_cmd {
    const char *name;
    nu_cmd_fn fn;
    const char *help;
} nu_cmd_t;

static const nu_cmd_t nu__commands[] = {
#define NU__CMD_ENTRY(name, help) { #name, nu_cmd_##name, help },
    NU_CMD_LIST(NU__CMD_ENTRY)
#undef NU__CMD_ENTRY
};

static void nu__usage(FILE *out)
{
    fprintf(out, "usage: nucleus [COMMAND] [ARGS...]\n\n"
                 "Without a command on a terminal, nucleus starts the REPL.\n\n"
                 "commands:\n");
    for (size_t i = 0; i < sizeof nu__commands / sizeof nu__commands[0]; i++)
        if (nu__commands[i].fn != NULL)
            fprintf(out, "  %-8s %s\n", nu__commands[i].name,
                    nu__commands[i].help);
    fprintf(out, "\nRun 'nucleus COMMAND --help' for a command's options.\n");
}

int main(int argc, char **argv)
{
    const char *name;

    if (argc < 2) {
        if (isatty(STDIN_FILENO) && nu_cmd_repl != NULL)
            return nu_cmd_repl(1, (char *[]){ "repl", NULL });
        nu__usage(stderr);
        return NU_EXIT_USAGE;
    }

    name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 ||
        strcmp(name, "help") == 0) {
        nu__usage(stdout);
        return NU_EXIT_OK;
    }
    if (strcmp(name, "--version") == 0) {
        printf("nucleus %s\n", NU_VERSION);
        return NU_EXIT_OK;
    }

    for (size_t i = 0; i < sizeof nu__commands / sizeof nu__commands[0]; i++) {
        if (strcmp(nu__commands[i].name, name) != 0)
            continue;
        if (nu__commands[i].fn == NULL) {
            fprintf(stderr, "nucleus: command '%s' is not available in this "
                            "build\n", name);
            return NU_EXIT_FAIL;
        }
        return nu__commands[i].fn(argc - 1, argv + 1);
    }

    fprintf(stderr, "nucleus: unknown command '%s' (run 'nucleus --help' for "
                    "the list)\n", name);
    return NU_EXIT_USAGE;
}
