/*
 * test_lattice_fuzz.c - feed the fuzz targets fixed seeds and a few
 * thousand seeded mutations, so that every ctest run exercises them
 * without libFuzzer.  tests/fuzz/run.sh does the real fuzzing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#define NU_FUZZ_ENTRY fuzz_glob_entry
#include "../fuzz/fuzz_glob.c"
#undef NU_FUZZ_ENTRY

#define NU_FUZZ_ENTRY fuzz_perm_json_entry
#include "../fuzz/fuzz_perm_json.c"
#undef NU_FUZZ_ENTRY

typedef int (*fuzz_entry_t)(const uint8_t *data, size_t size);

/* Run entry on each seed and on byte-level mutations of it. */
static void run_mutations(fuzz_entry_t entry, const char *const *seeds,
                          const size_t *sizes, size_t nseeds, uint64_t rng)
{
    uint8_t buf[1024];

    for (size_t s = 0; s < nseeds; s++) {
        assert_true(sizes[s] <= sizeof buf);
        entry((const uint8_t *)seeds[s], sizes[s]);

        for (int round = 0; round < 1000; round++) {
            size_t len = sizes[s];

            memcpy(buf, seeds[s], len);
            for (int edits = 0; edits < 3; edits++) {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                size_t at = (size_t)(rng % (len + 1));
                uint8_t byte = (uint8_t)(rng >> 32);

                if (rng & 0x100 && at < len)
                    buf[at] = byte;
                else if (rng & 0x200 && at < len)
                    memmove(buf + at, buf + at + 1, len-- - at - 1);
                else if (len < sizeof buf) {
                    memmove(buf + at + 1, buf + at, len - at);
                    buf[at] = byte;
                    len++;
                }
            }
            entry(buf, len);
        }
    }
}

/* Seed bytes with their length, which may include NUL separators. */
#define SEED(text) text, sizeof(text) - 1

static void test_lattice_fuzz_glob_seeds(void **state)
{
    static const struct { const char *data; size_t size; } seeds[] = {
        { SEED("\001**/*.pem\000certs/a.pem") },
        { SEED("\003[[:alpha:]]*[!a-z]\000Ab9") },
        { SEED("\000a\\*b?c\000a*bxc") },
        { SEED("\001a/**/b\000a/x/y/b") },
        { SEED("\001[a-\000x") },
    };
    const char *data[5];
    size_t sizes[5];

    (void)state;
    for (int i = 0; i < 5; i++) {
        data[i] = seeds[i].data;
        sizes[i] = seeds[i].size;
    }
    run_mutations(fuzz_glob_entry, data, sizes, 5, 0x9e3779b97f4a7c15ULL);
}

static void test_lattice_fuzz_perm_json_seeds(void **state)
{
    static const char *const seeds[] = {
        "{}",
        "{\"capabilities\":{\"read_files\":\"always\",\"web_fetch\":\"low_risk\","
        "\"git_push\":\"always\"},\"obligations\":[],\"paths\":{\"allow\":\"*\","
        "\"block\":[\"*.pem\"],\"write_block\":[]},\"budget\":{\"usd\":1.5,"
        "\"input_tokens\":100,\"output_tokens\":\"*\",\"tool_calls\":5},"
        "\"time\":{\"not_before\":\"*\",\"not_after\":100,\"ttl\":60}}",
        "{\"network\":{\"allow\":[\"10.0.0.0/8:443\",\"[::1]:80\"],"
        "\"domains\":[\"*.example.org\"],\"trusted\":\"*\"},"
        "\"commands\":{\"allow\":[\"git status\"],\"block\":[\"sudo\"]}}",
    };
    size_t sizes[3];

    (void)state;
    for (int i = 0; i < 3; i++)
        sizes[i] = strlen(seeds[i]);
    run_mutations(fuzz_perm_json_entry, seeds, sizes, 3, 0x1234567887654321ULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lattice_fuzz_glob_seeds),
        cmocka_unit_test(test_lattice_fuzz_perm_json_seeds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
