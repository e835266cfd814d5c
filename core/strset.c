/*
 * strset.c - sorted sets of unique strings with an explicit TOP element.
 *
 * A set is either TOP (every string, the "unrestricted" value) or a finite
 * array kept sorted by strcmp without duplicates.  Keeping the array sorted
 * makes equality a member-by-member compare and lets intersection, union
 * and subset run as linear merges.  An empty finite set is the EMPTY set,
 * never a stand-in for TOP.
 */
#include <stdlib.h>
#include <string.h>

#include "nucleus/lattice.h"

void nu_strset_init_empty(nu_strset_t *s)
{
    s->top = false;
    s->count = 0;
    s->items = NULL;
}

void nu_strset_init_top(nu_strset_t *s)
{
    nu_strset_init_empty(s);
    s->top = true;
}

void nu_strset_free(nu_strset_t *s)
{
    if (s == NULL)
        return;

    for (size_t i = 0; i < s->count; i++)
        free(s->items[i]);
    free(s->items);
    nu_strset_init_empty(s);
}

/* Binary search: returns the index of item, or of the place to insert it
 * with *found set to false. */
static size_t nu__strset_find(const nu_strset_t *s, const char *item,
                              bool *found)
{
    size_t lo = 0;
    size_t hi = s->count;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int cmp = strcmp(s->items[mid], item);

        if (cmp == 0) {
            *found = true;
            return mid;
        }
        if (cmp < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

int nu_strset_add(nu_strset_t *s, const char *item)
{
    bool found;
    size_t at;

    if (s->top)
        return NU_OK;

    at = nu__strset_find(s, item, &found);
    if (found)
        return NU_OK;

    char *copy = strdup(item);
    if (copy == NULL)
        return NU_ENOMEM;

    char **items = realloc(s->items, (s->count + 1) * sizeof *items);
    if (items == NULL) {
        free(copy);
        return NU_ENOMEM;
    }

    memmove(items + at + 1, items + at, (s->count - at) * sizeof *items);
    items[at] = copy;
    s->items = items;
    s->count++;
    return NU_OK;
}

bool nu_strset_contains(const nu_strset_t *s, const char *item)
{
    bool found;

    if (s->top)
        return true;
    nu__strset_find(s, item, &found);
    return found;
}

/* Append item, which sorts after every member already in s. */
static int nu__strset_push(nu_strset_t *s, const char *item)
{
    char *copy = strdup(item);
    if (copy == NULL)
        return NU_ENOMEM;

    char **items = realloc(s->items, (s->count + 1) * sizeof *items);
    if (items == NULL) {
        free(copy);
        return NU_ENOMEM;
    }
    items[s->count++] = copy;
    s->items = items;
    return NU_OK;
}

int nu_strset_copy(nu_strset_t *dst, const nu_strset_t *src)
{
    nu_strset_init_empty(dst);
    dst->top = src->top;

    for (size_t i = 0; i < src->count; i++) {
        if (nu__strset_push(dst, src->items[i]) != NU_OK) {
            nu_strset_free(dst);
            return NU_ENOMEM;
        }
    }
    return NU_OK;
}

bool nu_strset_equal(const nu_strset_t *a, const nu_strset_t *b)
{
    if (a->top || b->top)
        return a->top == b->top;
    if (a->count != b->count)
        return false;

    for (size_t i = 0; i < a->count; i++) {
        if (strcmp(a->items[i], b->items[i]) != 0)
            return false;
    }
    return true;
}

bool nu_strset_subset(const nu_strset_t *a, const nu_strset_t *b)
{
    size_t j = 0;

    if (b->top)
        return true;
    if (a->top)
        return false;

    for (size_t i = 0; i < a->count; i++) {
        while (j < b->count && strcmp(b->items[j], a->items[i]) < 0)
            j++;
        if (j == b->count || strcmp(b->items[j], a->items[i]) != 0)
            return false;
        j++;
    }
    return true;
}

/* Merge the sorted members of a and b into out, keeping those present in
 * both (keep_one_sided false) or in either (keep_one_sided true). */
static int nu__strset_merge(nu_strset_t *out, const nu_strset_t *a,
                            const nu_strset_t *b, bool keep_one_sided)
{
    size_t i = 0;
    size_t j = 0;
    int rc = NU_OK;

    nu_strset_init_empty(out);

    while (rc == NU_OK && (i < a->count || j < b->count)) {
        int cmp;

        if (i == a->count)
            cmp = 1;
        else if (j == b->count)
            cmp = -1;
        else
            cmp = strcmp(a->items[i], b->items[j]);

        if (cmp == 0) {
            rc = nu__strset_push(out, a->items[i]);
            i++;
            j++;
        } else if (cmp < 0) {
            if (keep_one_sided)
                rc = nu__strset_push(out, a->items[i]);
            i++;
        } else {
            if (keep_one_sided)
                rc = nu__strset_push(out, b->items[j]);
            j++;
        }
    }

    if (rc != NU_OK)
        nu_strset_free(out);
    return rc;
}

int nu_strset_intersect(nu_strset_t *out, const nu_strset_t *a,
                        const nu_strset_t *b)
{
    if (a->top)
        return nu_strset_copy(out, b);
    if (b->top)
        return nu_strset_copy(out, a);
    return nu__strset_merge(out, a, b, false);
}

int nu_strset_union(nu_strset_t *out, const nu_strset_t *a,
                    const nu_strset_t *b)
{
    if (a->top || b->top) {
        nu_strset_init_top(out);
        return NU_OK;
    }
    return nu__strset_merge(out, a, b, true);
}
