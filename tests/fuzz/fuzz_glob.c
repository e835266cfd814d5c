/*
 * fuzz_glob.c - libFuzzer target for the glob matcher.
 *
 * Input: one flags byte, then pattern and text separated by the first
 * NUL byte.  Beyond memory safety it checks three things.  The fast paths
 * (literal prechecks, the one-word automaton, plain-name path rules) agree
 * with the general automaton.  A pattern without special characters
 * matches exactly the equal text.  An invalid pattern matches nothing.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../core/lattice_internal.h"
#include "nucleus/glob.h"

#ifndef NU_FUZZ_ENTRY
#define NU_FUZZ_ENTRY LLVMFuzzerTestOneInput
#endif

int NU_FUZZ_ENTRY(const uint8_t *data, size_t size);

int NU_FUZZ_ENTRY(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;

    int flags = data[0] & (NU_GLOB_PATHNAME | NU_GLOB_CASEFOLD);
    char *buf = malloc(size + 1);
    if (buf == NULL)
        return 0;
    memcpy(buf, data + 1, size - 1);
    buf[size - 1] = '\0';
    buf[size] = '\0';

    const char *pattern = buf;
    const char *text = buf + strlen(buf) + (strlen(buf) < size - 1 ? 1 : 0);

    bool match = nu_glob_match(pattern, text, flags);
    if (nu_glob_match(pattern, text, flags | NU__GLOB_NO_PRECHECK) != match ||
        nu_glob_match(pattern, text, flags | NU__GLOB_WIDE) != match ||
        nu_glob_match(pattern, text,
                      flags | NU__GLOB_WIDE | NU__GLOB_NO_PRECHECK) != match)
        abort();
    bool valid = nu_glob_valid(pattern);
    if (!valid && match)
        abort();
    if (valid && (flags & NU_GLOB_CASEFOLD) == 0 &&
        strpbrk(pattern, "*?[\\") == NULL && match != (strcmp(pattern, text) == 0))
        abort();

    /* A plain-name path rule takes a shortcut; "[\\c]rest" means the same
     * as "crest" but runs the automaton. */
    bool path_match = nu_glob_match_path(pattern, text);
    size_t plen = strlen(pattern);
    if (plen > 0 && plen < 1000 && pattern[0] != '/' &&
        strpbrk(pattern, "*?[\\") == NULL) {
        char alt[1008];

        snprintf(alt, sizeof alt, "[\\%c]%s", pattern[0], pattern + 1);
        if (nu_glob_match_path(alt, text) != path_match)
            abort();
    }
    free(buf);
    return 0;
}
