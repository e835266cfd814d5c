/*
 * display.c - escape control, bidirectional and invisible characters.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nucleus/display.h"

/* Decode one UTF-8 sequence; returns its length, or 0 when invalid. */
static size_t nu__utf8_next(const unsigned char *s, size_t avail, uint32_t *cp)
{
    uint32_t c = s[0];
    size_t len;

    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if ((c & 0xe0) == 0xc0)
        len = 2, c &= 0x1f;
    else if ((c & 0xf0) == 0xe0)
        len = 3, c &= 0x0f;
    else if ((c & 0xf8) == 0xf0)
        len = 4, c &= 0x07;
    else
        return 0;
    if (len > avail)
        return 0;

    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        c = c << 6 | (s[i] & 0x3f);
    }
    if ((len == 2 && c < 0x80) || (len == 3 && c < 0x800) ||
        (len == 4 && (c < 0x10000 || c > 0x10ffff)) ||
        (c >= 0xd800 && c <= 0xdfff))
        return 0;
    *cp = c;
    return len;
}

static int nu__is_hidden(uint32_t cp)
{
    return cp == 0x00ad || cp == 0x061c || cp == 0x180e ||
           (cp >= 0x200b && cp <= 0x200f) ||
           (cp >= 0x2028 && cp <= 0x202e) ||
           (cp >= 0x2060 && cp <= 0x2064) ||
           (cp >= 0x2066 && cp <= 0x2069) || cp == 0xfeff;
}

char *nu_display_escape(const char *s, size_t len, int flags)
{
    const unsigned char *p = (const unsigned char *)s;
    /* The longest escape, "\u{10FFFF}", is 10 bytes for up to 4 input
     * bytes; "\xHH" is 4 bytes for one. */
    size_t cap = len * 4 + 16;
    char *out = malloc(cap);
    size_t o = 0, i = 0;

    if (out == NULL)
        return NULL;

    while (i < len) {
        uint32_t cp;
        size_t step = nu__utf8_next(p + i, len - i, &cp);

        if (o + 16 > cap) {
            cap *= 2;
            char *grown = realloc(out, cap);
            if (grown == NULL) {
                free(out);
                return NULL;
            }
            out = grown;
        }

        if (step == 0) {
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", p[i]);
            i++;
            continue;
        }

        if (cp == '\\') {
            out[o++] = '\\';
            out[o++] = '\\';
        } else if ((cp == '\n' || cp == '\t') &&
                   (flags & NU_DISPLAY_KEEP_NEWLINES)) {
            out[o++] = (char)cp;
        } else if (cp == '\n') {
            o += (size_t)snprintf(out + o, cap - o, "\\n");
        } else if (cp == '\t') {
            o += (size_t)snprintf(out + o, cap - o, "\\t");
        } else if (cp == '\r') {
            o += (size_t)snprintf(out + o, cap - o, "\\r");
        } else if (cp == 0x1b) {
            o += (size_t)snprintf(out + o, cap - o, "\\e");
        } else if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f)) {
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", (unsigned)cp);
        } else if (nu__is_hidden(cp)) {
            o += (size_t)snprintf(out + o, cap - o, "\\u{%04X}", (unsigned)cp);
        } else {
            memcpy(out + o, p + i, step);
            o += step;
        }
        i += step;
    }
    out[o] = '\0';
    return out;
}
