/*
 * display.h - make untrusted text safe to show to a person.
 *
 * What a person approves must be what runs.  Text from agents, files and
 * commands can hide itself on a terminal: control characters move the
 * cursor or rewrite the screen, bidirectional overrides reorder what is
 * displayed, and zero-width characters make two different strings look
 * the same.  nu_display_escape rewrites every such character as a visible
 * escape:
 *   - C0 controls (except, with NU_DISPLAY_KEEP_NEWLINES, '\n' and '\t'),
 *     DEL and C1 controls (U+0080..U+009F) as \xHH or \n, \t, \r, \e;
 *   - bidirectional controls U+061C, U+200E, U+200F, U+202A..U+202E,
 *     U+2066..U+2069 as \u{HHHH};
 *   - zero-width and invisible characters U+00AD, U+180E, U+200B..U+200D,
 *     U+2060..U+2064, U+FEFF as \u{HHHH};
 *   - the line and paragraph separators U+2028, U+2029 as \u{HHHH};
 *   - bytes that are not valid UTF-8 as \xHH;
 *   - a backslash as "\\", so the output cannot forge an escape.
 */
#ifndef NUCLEUS_DISPLAY_H
#define NUCLEUS_DISPLAY_H

#include <stddef.h>

#define NU_DISPLAY_KEEP_NEWLINES 1   /* pass '\n' and '\t' through */

/* Escape len bytes of s.  Returns a malloc'd NUL-terminated string, or
 * NULL on ENOMEM. */
char *nu_display_escape(const char *s, size_t len, int flags);

#endif
