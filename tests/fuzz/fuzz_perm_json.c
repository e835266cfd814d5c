/*
 * fuzz_perm_json.c - libFuzzer target for the permission JSON reader.
 *
 * Every input that nu_perm_from_json accepts must survive a round trip
 * through canonical bytes unchanged, and must be a fixed point of
 * normalization and of meet with itself.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nucleus/json.h"
#include "nucleus/lattice.h"

#ifndef NU_FUZZ_ENTRY
#define NU_FUZZ_ENTRY LLVMFuzzerTestOneInput
#endif

int NU_FUZZ_ENTRY(const uint8_t *data, size_t size);

static void check_round_trip(const nu_perm_t *p)
{
    nu_err_t err;
    nu_perm_t back, self, normal;
    json_t *j = nu_perm_to_json(p);
    char *bytes = j != NULL ? nu_json_canonical(j, NULL, &err) : NULL;

    json_decref(j);
    if (bytes == NULL)
        abort();

    json_t *again = nu_json_parse(bytes, strlen(bytes), &err);
    if (again == NULL || nu_perm_from_json(&back, again, &err) != NU_OK ||
        !nu_perm_equal(&back, p))
        abort();

    if (nu_perm_meet(&self, p, p) != NU_OK || !nu_perm_equal(&self, p) ||
        !nu_perm_leq(p, p))
        abort();

    if (nu_perm_copy(&normal, p) != NU_OK)
        abort();
    nu_perm_normalize(&normal);
    if (!nu_perm_equal(&normal, p))
        abort();

    nu_perm_free(&normal);
    nu_perm_free(&self);
    nu_perm_free(&back);
    json_decref(again);
    free(bytes);
}

int NU_FUZZ_ENTRY(const uint8_t *data, size_t size)
{
    nu_err_t err;
    nu_perm_t p;
    json_t *j = nu_json_parse((const char *)data, size, &err);

    if (j == NULL)
        return 0;
    if (nu_perm_from_json(&p, j, &err) == NU_OK)
        check_round_trip(&p);
    nu_perm_free(&p);
    json_decref(j);
    return 0;
}
