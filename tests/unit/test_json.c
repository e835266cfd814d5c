/*
 * test_json.c - canonical JSON (RFC 8785) and strict parsing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "nucleus/json.h"

static void assert_canonical(const char *input, const char *expected)
{
    nu_err_t err;
    json_t *v = nu_json_parse(input, strlen(input), &err);
    assert_non_null(v);

    char *out = nu_json_canonical(v, NULL, &err);
    assert_non_null(out);
    assert_string_equal(out, expected);

    free(out);
    json_decref(v);
}

static void test_json_sorts_keys(void **state)
{
    (void)state;
    assert_canonical("{\"b\": 1, \"a\": [true, null, \"x\"]}",
                     "{\"a\":[true,null,\"x\"],\"b\":1}");
    /* RFC 8785 section 3.2.3 sorts by UTF-16 units: U+E000 after U+1F600. */
    assert_canonical("{\"\xee\x80\x80\": 1, \"\xf0\x9f\x98\x80\": 2}",
                     "{\"\xf0\x9f\x98\x80\":2,\"\xee\x80\x80\":1}");
}

static void test_json_escapes_strings(void **state)
{
    (void)state;
    assert_canonical("\"a\\u0001\\n\\\"\\/\\u00e9\"",
                     "\"a\\u0001\\n\\\"/\xc3\xa9\"");
}

static void test_json_formats_numbers(void **state)
{
    static const struct { double d; const char *text; } cases[] = {
        { 0.0, "0" }, { -0.0, "0" }, { 1.0, "1" }, { 0.1, "0.1" },
        { 1e21, "1e+21" }, { 1e20, "100000000000000000000" },
        { 1e-7, "1e-7" }, { 0.000001, "0.000001" }, { 123.456, "123.456" },
        { -1.5e-10, "-1.5e-10" }, { 5e-324, "5e-324" },
        { 1.7976931348623157e308, "1.7976931348623157e+308" },
        { 333333333.33333329, "333333333.3333333" },
    };
    char buf[40];

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(nu_json_format_number(cases[i].d, buf, sizeof buf), NU_OK);
        assert_string_equal(buf, cases[i].text);
    }
}

static void test_json_rejects_duplicates(void **state)
{
    nu_err_t err;
    (void)state;
    assert_null(nu_json_parse("{\"a\":1,\"a\":2}", 13, &err));
    assert_int_equal(err.code, NU_EPARSE);
}

static void test_json_rejects_deep_nesting(void **state)
{
    char text[200];
    nu_err_t err;
    (void)state;
    memset(text, '[', 100);
    memset(text + 100, ']', 100);
    assert_null(nu_json_parse(text, sizeof text, &err));
    assert_int_equal(err.code, NU_ELIMIT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_sorts_keys),
        cmocka_unit_test(test_json_escapes_strings),
        cmocka_unit_test(test_json_formats_numbers),
        cmocka_unit_test(test_json_rejects_duplicates),
        cmocka_unit_test(test_json_rejects_deep_nesting),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
