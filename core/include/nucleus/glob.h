/*
 * glob.h - gitignore-style glob matching.
 *
 * Semantics follow git's wildmatch with WM_PATHNAME: '*' matches within one
 * path segment, '**' as a whole segment matches any number of segments,
 * '?' one character other than '/', bracket expressions with ranges,
 * negation ('!' or '^') and POSIX classes, and backslash escapes.
 *
 * The matcher runs in O(pattern * text) time with a memo table, and rejects
 * (never matches) texts longer than NU_PATH_MAX or with more than
 * NU_PATH_MAX_SEGMENTS segments.
 */
#ifndef NUCLEUS_GLOB_H
#define NUCLEUS_GLOB_H

#include <stdbool.h>

#define NU_GLOB_PATHNAME 1   /* '*' and '?' do not match '/' */
#define NU_GLOB_CASEFOLD 2   /* ASCII case-insensitive */

/* Patterns longer than this many bytes are invalid and never match. */
#define NU_GLOB_PATTERN_MAX 1024

/* Returns true when text matches pattern. */
bool nu_glob_match(const char *pattern, const char *text, int flags);

/* Can pattern ever match?  Returns false for an unterminated bracket
 * expression, an unknown "[:class:]" name, a trailing lone backslash, or
 * more than NU_GLOB_PATTERN_MAX bytes.  git's wildmatch matches no text
 * with such a pattern, so a block rule written that way would silently
 * block nothing.  Policy loaders reject these patterns. */
bool nu_glob_valid(const char *pattern);

/* Path-rule matching as gitignore does it: a pattern without a slash
 * (other than a trailing one) matches the base name at any depth; a
 * pattern with a slash is anchored at the workspace root; a trailing slash
 * matches a directory.  A path also matches when one of its parent
 * directories matches, so "secrets/" and ".ssh" cover everything below. */
bool nu_glob_match_path(const char *pattern, const char *path);

#endif
