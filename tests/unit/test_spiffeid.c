/*
 * test_spiffeid.c - SPIFFE ID syntax: valid and invalid IDs, trust domains,
 * pod and node IDs.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "nucleus/spiffeid.h"

static void test_spiffeid_accepts_valid_ids(void **state)
{
    static const struct { const char *id, *td, *path; } cases[] = {
        { "spiffe://example.org", "example.org", "" },
        { "spiffe://example.org/workload", "example.org", "/workload" },
        { "spiffe://nucleus.local/ns/default/pod/p-1", "nucleus.local",
          "/ns/default/pod/p-1" },
        { "spiffe://a_b-c.0/A.b-C_9/x", "a_b-c.0", "/A.b-C_9/x" },
        { "spiffe://td/.../..a/a..", "td", "/.../..a/a.." },
        { "spiffe://1.2.3.4/x", "1.2.3.4", "/x" },
    };
    nu_spiffeid_t id;
    nu_err_t err;

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = nu_spiffeid_parse(cases[i].id, strlen(cases[i].id), &id, &err);
        if (rc != NU_OK)
            fail_msg("rejected '%s': %s", cases[i].id, err.msg);
        assert_string_equal(id.id, cases[i].id);
        assert_string_equal(id.trust_domain, cases[i].td);
        assert_string_equal(nu_spiffeid_path(&id), cases[i].path);
    }
}

static void test_spiffeid_rejects_invalid_ids(void **state)
{
    static const struct { const char *id, *reason; } cases[] = {
        { "", "empty" },
        { "spiffe://", "trust domain is missing" },
        { "spiffe:///path", "trust domain is missing" },
        { "SPIFFE://example.org/a", "scheme" },
        { "Spiffe://example.org/a", "scheme" },
        { "https://example.org/a", "scheme" },
        { "spiffe:/example.org/a", "scheme" },
        { "spiffe:example.org", "scheme" },
        { "example.org/a", "scheme" },
        { "spiffe://Example.org/a", "uppercase" },
        { "spiffe://EXAMPLE.ORG", "uppercase" },
        { "spiffe://example.org:8080/a", "port" },
        { "spiffe://user@example.org/a", "user info" },
        { "spiffe://user:pw@example.org/a", "port" },
        { "spiffe://exa%41mple.org/a", "percent" },
        { "spiffe://example.org/a%2Fb", "percent" },
        { "spiffe://example.org/%41", "percent" },
        { "spiffe://example.org/a?x=1", "query" },
        { "spiffe://example.org?x=1", "query" },
        { "spiffe://example.org/a#frag", "fragment" },
        { "spiffe://example.org#frag", "fragment" },
        { "spiffe://example.org/", "empty segment" },
        { "spiffe://example.org//a", "empty segment" },
        { "spiffe://example.org/a//b", "empty segment" },
        { "spiffe://example.org/a/", "empty segment" },
        { "spiffe://example.org/.", "'.' or '..'" },
        { "spiffe://example.org/..", "'.' or '..'" },
        { "spiffe://example.org/a/./b", "'.' or '..'" },
        { "spiffe://example.org/a/../b", "'.' or '..'" },
        { "spiffe://example.org/a b", "character" },
        { "spiffe://example.org/a\tb", "character" },
        { "spiffe://example.org/a\nb", "character" },
        { "spiffe://example.org/a\x7f", "character" },
        { "spiffe://example.org/caf\xc3\xa9", "character" },
        { "spiffe://exa mple.org/a", "character" },
        { "spiffe://example.org/a~b", "character" },
        { "spiffe://example.org/a+b", "character" },
        { "spiffe://[::1]/a", "character" },
    };
    nu_spiffeid_t id;
    nu_err_t err;

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = nu_spiffeid_parse(cases[i].id, strlen(cases[i].id), &id, &err);
        if (rc != NU_EPARSE)
            fail_msg("accepted '%s' (expected: %s)", cases[i].id,
                     cases[i].reason);
        if (strstr(err.msg, cases[i].reason) == NULL)
            fail_msg("'%s': message '%s' lacks '%s'", cases[i].id, err.msg,
                     cases[i].reason);
    }
}

static void test_spiffeid_rejects_nul_byte(void **state)
{
    static const char id_with_nul[] = "spiffe://example.org/a\0b";
    nu_spiffeid_t id;
    nu_err_t err;

    (void)state;
    assert_int_equal(nu_spiffeid_parse(id_with_nul, sizeof id_with_nul - 1,
                                       &id, &err), NU_EPARSE);
    assert_non_null(strstr(err.msg, "NUL"));
    /* The message must not carry the raw control characters. */
    assert_null(strchr(err.msg, '\n'));
}

static void test_spiffeid_enforces_length_limit(void **state)
{
    char *text = malloc(NU_SPIFFEID_MAX + 2);
    size_t prefix = strlen("spiffe://example.org/");
    nu_spiffeid_t id;
    nu_err_t err;

    (void)state;
    memcpy(text, "spiffe://example.org/", prefix);
    memset(text + prefix, 'a', NU_SPIFFEID_MAX + 1 - prefix);

    /* Exactly 2048 bytes is valid. */
    assert_int_equal(nu_spiffeid_parse(text, NU_SPIFFEID_MAX, &id, &err), NU_OK);
    assert_int_equal(strlen(id.id), NU_SPIFFEID_MAX);

    /* 2049 bytes is not. */
    assert_int_equal(nu_spiffeid_parse(text, NU_SPIFFEID_MAX + 1, &id, &err),
                     NU_EPARSE);
    assert_non_null(strstr(err.msg, "2048"));
    free(text);
}

static void test_spiffeid_trust_domain_forms(void **state)
{
    char td[NU_TRUST_DOMAIN_MAX + 1];
    char long_td[NU_TRUST_DOMAIN_MAX + 2];
    nu_err_t err;

    (void)state;
    assert_int_equal(nu_spiffeid_parse_trust_domain("example.org", td, &err),
                     NU_OK);
    assert_string_equal(td, "example.org");
    assert_int_equal(nu_spiffeid_parse_trust_domain("spiffe://example.org", td,
                                                    &err), NU_OK);
    assert_string_equal(td, "example.org");

    assert_int_equal(nu_spiffeid_parse_trust_domain("", td, &err), NU_EPARSE);
    assert_int_equal(nu_spiffeid_parse_trust_domain("Example.org", td, &err),
                     NU_EPARSE);
    assert_int_equal(nu_spiffeid_parse_trust_domain("spiffe://example.org/a",
                                                    td, &err), NU_EPARSE);
    assert_int_equal(nu_spiffeid_parse_trust_domain("example.org:443", td,
                                                    &err), NU_EPARSE);

    memset(long_td, 'a', sizeof long_td - 1);
    long_td[sizeof long_td - 1] = '\0';
    assert_int_equal(nu_spiffeid_parse_trust_domain(long_td, td, &err),
                     NU_EPARSE);
    long_td[NU_TRUST_DOMAIN_MAX] = '\0';
    assert_int_equal(nu_spiffeid_parse_trust_domain(long_td, td, &err), NU_OK);
}

static void test_spiffeid_member_of_is_exact(void **state)
{
    nu_spiffeid_t id;
    const char *text = "spiffe://nucleus.local.evil/ns/a/pod/b";

    (void)state;
    assert_int_equal(nu_spiffeid_parse(text, strlen(text), &id, NULL), NU_OK);
    assert_false(nu_spiffeid_member_of(&id, "nucleus.local"));
    assert_false(nu_spiffeid_member_of(&id, "local.evil"));
    assert_false(nu_spiffeid_member_of(&id, NULL));
    assert_true(nu_spiffeid_member_of(&id, "nucleus.local.evil"));

    text = "spiffe://nucleus.local/x";
    assert_int_equal(nu_spiffeid_parse(text, strlen(text), &id, NULL), NU_OK);
    assert_false(nu_spiffeid_member_of(&id, "nucleus.local.evil"));
    assert_false(nu_spiffeid_member_of(&id, "nucleus.loca"));
}

static void test_spiffeid_builds_pod_and_node_ids(void **state)
{
    nu_spiffeid_t id;
    nu_err_t err;

    (void)state;
    assert_int_equal(nu_spiffeid_for_pod("nucleus.local", "default", "p-42",
                                         &id, &err), NU_OK);
    assert_string_equal(id.id, "spiffe://nucleus.local/ns/default/pod/p-42");
    assert_int_equal(nu_spiffeid_for_node("nucleus.local", "host1", &id, &err),
                     NU_OK);
    assert_string_equal(id.id, "spiffe://nucleus.local/node/host1");

    assert_int_equal(nu_spiffeid_for_pod("nucleus.local", "a/b", "p", &id,
                                         &err), NU_EPARSE);
    assert_int_equal(nu_spiffeid_for_pod("nucleus.local", "default", "..", &id,
                                         &err), NU_EPARSE);
    assert_int_equal(nu_spiffeid_for_pod("nucleus.local", "", "p", &id, &err),
                     NU_EPARSE);
    assert_int_equal(nu_spiffeid_for_node("Nucleus.local", "n", &id, &err),
                     NU_EPARSE);
    assert_int_equal(nu_spiffeid_for_node("nucleus.local", "n%20", &id, &err),
                     NU_EPARSE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spiffeid_accepts_valid_ids),
        cmocka_unit_test(test_spiffeid_rejects_invalid_ids),
        cmocka_unit_test(test_spiffeid_rejects_nul_byte),
        cmocka_unit_test(test_spiffeid_enforces_length_limit),
        cmocka_unit_test(test_spiffeid_trust_domain_forms),
        cmocka_unit_test(test_spiffeid_member_of_is_exact),
        cmocka_unit_test(test_spiffeid_builds_pod_and_node_ids),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
