/*
 * test_executor_fs.c - the read, write and edit tools on a temporary
 * workspace (no namespaces: the sandbox tests cover confinement).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "executor_int.h"
#include "test_executor_util.h"

static int setup(void **state)
{
    ws_t *w = ws_new(NULL);

    ws_mkdir(w, "src");
    ws_puts(w, "src/main.c", "int main(void)\n{\n    return 0;\n}\n");
    ws_puts(w, ".env", "TOKEN=secret\n");
    ws_symlink(w, "notes.txt", ".env");
    ws_symlink(w, "passwd", "/etc/passwd");
    *state = w;
    return 0;
}

static int teardown(void **state)
{
    ws_free(*state);
    return 0;
}

/* --- read --------------------------------------------------------------- */

static void test_read_whole_file(void **state)
{
    json_t *r = ws_ok(*state, "{\"tool\":\"read\",\"path\":\"src/main.c\"}");

    assert_string_equal(str_field(r, "content"), "int main(void)\n{\n    return 0;\n}\n");
    assert_string_equal(str_field(r, "content_encoding"), "utf-8");
    assert_string_equal(str_field(r, "path"), "src/main.c");
    assert_int_equal(int_field(r, "size"), 33);
    assert_int_equal(int_field(r, "bytes"), 33);
    assert_true(json_is_false(json_object_get(r, "truncated")));
    json_decref(r);
}

static void test_read_offset_limit(void **state)
{
    json_t *r = ws_ok(*state,
                      "{\"tool\":\"read\",\"args\":{\"path\":\"src/main.c\",\"offset\":4,\"limit\":4}}");

    assert_string_equal(str_field(r, "content"), "main");
    assert_int_equal(int_field(r, "offset"), 4);
    assert_true(json_is_true(json_object_get(r, "truncated")));
    json_decref(r);

    r = ws_ok(*state, "{\"tool\":\"read\",\"path\":\"src/main.c\",\"offset\":1000}");
    assert_string_equal(str_field(r, "content"), "");
    assert_int_equal(int_field(r, "bytes"), 0);
    json_decref(r);
}

static void test_read_follows_link_inside(void **state)
{
    json_t *r = ws_ok(*state, "{\"tool\":\"read\",\"path\":\"notes.txt\"}");

    assert_string_equal(str_field(r, "path"), ".env");
    assert_string_equal(str_field(r, "content"), "TOKEN=secret\n");
    json_decref(r);
}

static void test_read_absolute_inside(void **state)
{
    json_t *r = ws_ok(*state, "{\"tool\":\"read\",\"path\":\"/workspace/src/main.c\"}");

    assert_string_equal(str_field(r, "path"), "src/main.c");
    json_decref(r);
}

static void test_read_errors(void **state)
{
    ws_t *w = *state;

    ws_fails(w, "{\"tool\":\"read\",\"path\":\"missing.txt\"}", "not_found");
    ws_symlink(w, "dangling", "missing.txt");
    ws_fails(w, "{\"tool\":\"read\",\"path\":\"dangling\"}", "not_found");
    ws_fails(w, "{\"tool\":\"read\",\"path\":\"src\"}", "invalid_request");
    ws_fails(w, "{\"tool\":\"read\"}", "invalid_request");
    ws_fails(w, "{\"tool\":\"read\",\"path\":7}", "invalid_request");
    ws_fails(w, "{\"tool\":\"read\",\"path\":\"src/main.c\",\"offset\":-1}", "invalid_request");
    ws_fails(w, "{\"tool\":\"read\",\"path\":\"src/main.c\",\"limit\":\"all\"}",
             "invalid_request");
    ws_fails(w, "{\"tool\":\"read\",\"path\":\"src\\u0000/main.c\"}", "invalid_request");
    ws_fails(w, "{\"tool\":\"read\",\"path\":\"\"}", "invalid_request");
    ws_fails(w, "{\"tool\":\"frobnicate\"}", "invalid_request");
    ws_fails(w, "{\"path\":\"x\"}", "invalid_request");
    ws_fails(w, "[]", "invalid_request");
}

static void test_read_fifo_rejected(void **state)
{
    ws_t *w = *state;
    char path[PATH_MAX];

    ws_path(w, "fifo", path, sizeof path);
    assert_int_equal(mkfifo(path, 0600), 0);
    ws_fails(w, "{\"tool\":\"read\",\"path\":\"fifo\"}", "invalid_request");
}

static void test_read_escapes_denied(void **state)
{
    ws_t *w = *state;
    char call[512];

    ws_fails(w, "{\"tool\":\"read\",\"path\":\"passwd\"}", "path_denied");
    ws_fails(w, "{\"tool\":\"read\",\"path\":\"../outside/secret\"}", "path_denied");
    ws_fails(w, "{\"tool\":\"read\",\"path\":\"/etc/passwd\"}", "path_denied");
    ws_fails(w, "{\"tool\":\"read\",\"path\":\"/proc/self/root/etc/passwd\"}", "path_denied");
    snprintf(call, sizeof call, "{\"tool\":\"read\",\"path\":\"%s/secret\"}", w->outside);
    ws_fails(w, call, "path_denied");
}

static void test_read_long_path(void **state)
{
    ws_t *w = *state;
    size_t n = 5000;
    char *call = malloc(n + 64);

    assert_non_null(call);
    strcpy(call, "{\"tool\":\"read\",\"path\":\"");
    memset(call + strlen(call), 'a', n);
    strcpy(call + 23 + n, "\"}");
    ws_fails(w, call, "invalid_request");
    free(call);
}

static void test_read_binary_base64(void **state)
{
    ws_t *w = *state;
    unsigned char bytes[256];
    unsigned char *decoded = NULL;
    size_t decoded_len = 0;
    const char *b64;
    json_t *r;

    for (int i = 0; i < 256; i++)
        bytes[i] = (unsigned char)i;
    ws_write(w, "blob.bin", bytes, sizeof bytes);

    r = ws_ok(w, "{\"tool\":\"read\",\"path\":\"blob.bin\"}");
    assert_string_equal(str_field(r, "content_encoding"), "base64");
    b64 = str_field(r, "content");
    assert_int_equal(nu__base64_decode(b64, strlen(b64), &decoded, &decoded_len), NU_OK);
    assert_int_equal(decoded_len, sizeof bytes);
    assert_memory_equal(decoded, bytes, sizeof bytes);
    free(decoded);
    json_decref(r);
}

static void test_read_into_blob(void **state)
{
    ws_t *w = *state;
    json_t *call = json_pack("{s:s, s:s}", "tool", "read", "path", "src/main.c");
    json_t *result = NULL;
    nu_blob_t blob = { 0 };
    nu_err_t err;

    assert_int_equal(nu_exec_tool(&w->ex, call, &result, &blob, &err), NU_OK);
    assert_string_equal(str_field(result, "content_encoding"), "blob");
    assert_null(json_object_get(result, "content"));
    assert_int_equal(blob.len, 33);
    assert_memory_equal(blob.data, "int main", 8);
    assert_true(w->ex.last_exec_ns > 0);
    nu_blob_free(&blob);
    json_decref(result);
    json_decref(call);
}

static void test_read_capped_by_config(void **state)
{
    nu_executor_config_t cfg;
    ws_t *w;
    json_t *r;

    (void)state;
    nu_executor_config_init(&cfg);
    cfg.max_read_bytes = 10;
    w = ws_new(&cfg);
    ws_puts(w, "big.txt", "0123456789abcdef");

    r = ws_ok(w, "{\"tool\":\"read\",\"path\":\"big.txt\",\"limit\":100}");
    assert_string_equal(str_field(r, "content"), "0123456789");
    assert_true(json_is_true(json_object_get(r, "truncated")));
    assert_int_equal(int_field(r, "size"), 16);
    json_decref(r);
    ws_free(w);
}

/* --- write -------------------------------------------------------------- */

static void test_write_creates_parents(void **state)
{
    ws_t *w = *state;
    json_t *r = ws_ok(w, "{\"tool\":\"write\",\"path\":\"new/dir/file.txt\",\"content\":\"hello\\n\"}");
    char *content = ws_read(w, "new/dir/file.txt");
    char path[PATH_MAX];
    struct stat st;

    assert_string_equal(content, "hello\n");
    assert_int_equal(int_field(r, "bytes"), 6);
    assert_true(json_is_true(json_object_get(r, "created")));
    ws_path(w, "new/dir/file.txt", path, sizeof path);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    free(content);
    json_decref(r);

    ws_fails(w, "{\"tool\":\"write\",\"path\":\"other/file.txt\",\"content\":\"x\","
                "\"create_dirs\":false}", "not_found");
}

static void test_write_replaces_and_keeps_mode(void **state)
{
    ws_t *w = *state;
    char path[PATH_MAX];
    struct stat st;
    json_t *r;
    char *content;

    ws_path(w, "src/main.c", path, sizeof path);
    assert_int_equal(chmod(path, 0600), 0);
    r = ws_ok(w, "{\"tool\":\"write\",\"path\":\"src/main.c\",\"content\":\"new\"}");
    assert_true(json_is_false(json_object_get(r, "created")));
    json_decref(r);

    content = ws_read(w, "src/main.c");
    assert_string_equal(content, "new");
    free(content);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    json_decref(ws_ok(w, "{\"tool\":\"write\",\"path\":\"src/main.c\",\"content\":\"x\","
                         "\"mode\":\"0755\"}"));
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0755);

    json_decref(ws_ok(w, "{\"tool\":\"write\",\"path\":\"src/main.c\",\"content\":\"x\","
                         "\"mode\":416}"));
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640);
}

static void test_write_leaves_no_temp_files(void **state)
{
    ws_t *w = *state;
    json_t *r;

    json_decref(ws_ok(w, "{\"tool\":\"write\",\"path\":\"src/a.txt\",\"content\":\"a\"}"));
    r = ws_ok(w, "{\"tool\":\"glob\",\"pattern\":\"src/.*\"}");
    assert_int_equal(json_array_size(json_object_get(r, "matches")), 0);
    json_decref(r);
}

static void test_write_binary_round_trip(void **state)
{
    ws_t *w = *state;
    unsigned char bytes[300];
    char *b64, *call;
    size_t len;
    json_t *r;
    char path[PATH_MAX];
    char *content;

    for (size_t i = 0; i < sizeof bytes; i++)
        bytes[i] = (unsigned char)(i * 7 + 3);
    b64 = nu__base64_encode(bytes, sizeof bytes, NULL);
    assert_non_null(b64);
    call = malloc(strlen(b64) + 128);
    assert_non_null(call);
    sprintf(call, "{\"tool\":\"write\",\"path\":\"bin/data\",\"content\":\"%s\","
                  "\"content_encoding\":\"base64\"}", b64);
    r = ws_ok(w, call);
    assert_int_equal(int_field(r, "bytes"), sizeof bytes);
    json_decref(r);

    ws_path(w, "bin/data", path, sizeof path);
    content = ws_slurp(path, &len);
    assert_int_equal(len, sizeof bytes);
    assert_memory_equal(content, bytes, sizeof bytes);
    free(content);

    r = ws_ok(w, "{\"tool\":\"read\",\"path\":\"bin/data\"}");
    assert_string_equal(str_field(r, "content_encoding"), "base64");
    assert_string_equal(str_field(r, "content"), b64);
    json_decref(r);
    free(b64);
    free(call);
}

static void test_write_errors(void **state)
{
    ws_t *w = *state;

    ws_fails(w, "{\"tool\":\"write\",\"path\":\"a.txt\"}", "invalid_request");
    ws_fails(w, "{\"tool\":\"write\",\"path\":\"src\",\"content\":\"x\"}", "invalid_request");
    ws_fails(w, "{\"tool\":\"write\",\"path\":\".\",\"content\":\"x\"}", "invalid_request");
    ws_fails(w, "{\"tool\":\"write\",\"path\":\"a.txt\",\"content\":\"x\",\"mode\":\"04755\"}",
             "invalid_request");
    ws_fails(w, "{\"tool\":\"write\",\"path\":\"a.txt\",\"content\":\"x\",\"mode\":\"rw\"}",
             "invalid_request");
    ws_fails(w, "{\"tool\":\"write\",\"path\":\"a.txt\",\"content\":\"%%%\","
                "\"content_encoding\":\"base64\"}", "invalid_request");
    ws_fails(w, "{\"tool\":\"write\",\"path\":\"a.txt\",\"content\":\"x\","
                "\"content_encoding\":\"latin1\"}", "invalid_request");
    ws_fails(w, "{\"tool\":\"write\",\"path\":\"src/main.c/x\",\"content\":\"x\"}", "not_found");
}

static void test_write_size_limit(void **state)
{
    nu_executor_config_t cfg;
    ws_t *w;

    (void)state;
    nu_executor_config_init(&cfg);
    cfg.max_write_bytes = 4;
    w = ws_new(&cfg);
    json_decref(ws_ok(w, "{\"tool\":\"write\",\"path\":\"a\",\"content\":\"1234\"}"));
    ws_fails(w, "{\"tool\":\"write\",\"path\":\"a\",\"content\":\"12345\"}", "invalid_request");
    ws_fails(w, "{\"tool\":\"write\",\"path\":\"a\",\"content\":\"MTIzNDU=\","
                "\"content_encoding\":\"base64\"}", "invalid_request");
    ws_free(w);
}

static void test_write_through_inside_link(void **state)
{
    ws_t *w = *state;
    json_t *r = ws_ok(w, "{\"tool\":\"write\",\"path\":\"notes.txt\",\"content\":\"T=2\\n\"}");
    char *content = ws_read(w, ".env");
    char path[PATH_MAX];
    struct stat st;

    assert_string_equal(str_field(r, "path"), ".env");
    assert_string_equal(content, "T=2\n");
    ws_path(w, "notes.txt", path, sizeof path);
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    free(content);
    json_decref(r);
}

static void test_write_escapes_denied(void **state)
{
    ws_t *w = *state;
    char call[PATH_MAX + 128], secret[PATH_MAX];
    char *content;

    ws_symlink(w, "out", w->outside);
    snprintf(secret, sizeof secret, "%s/secret", w->outside);
    snprintf(call, sizeof call, "{\"tool\":\"write\",\"path\":\"%s\",\"content\":\"pwned\"}",
             secret);

    ws_fails(w, call, "path_denied");
    ws_fails(w, "{\"tool\":\"write\",\"path\":\"out/secret\",\"content\":\"pwned\"}",
             "path_denied");
    ws_fails(w, "{\"tool\":\"write\",\"path\":\"out/new/x\",\"content\":\"pwned\"}",
             "path_denied");
    ws_fails(w, "{\"tool\":\"write\",\"path\":\"../outside/secret\",\"content\":\"pwned\"}",
             "path_denied");
    ws_fails(w, "{\"tool\":\"write\",\"path\":\"passwd\",\"content\":\"pwned\"}", "path_denied");

    content = ws_slurp(secret, NULL);
    assert_string_equal(content, "outside secret\n");
    free(content);
}

static void test_write_detaches_hard_link(void **state)
{
    ws_t *w = *state;
    char secret[PATH_MAX], hard[PATH_MAX];
    char *content;
    json_t *r;

    snprintf(secret, sizeof secret, "%s/secret", w->outside);
    ws_path(w, "hard", hard, sizeof hard);
    assert_int_equal(link(secret, hard), 0);

    r = ws_ok(w, "{\"tool\":\"write\",\"path\":\"hard\",\"content\":\"new\"}");
    assert_true(json_is_true(json_object_get(r, "hardlinks_detached")));
    json_decref(r);

    content = ws_slurp(secret, NULL);
    assert_string_equal(content, "outside secret\n");
    free(content);
    content = ws_read(w, "hard");
    assert_string_equal(content, "new");
    free(content);
}

/* --- edit --------------------------------------------------------------- */

static void test_edit_unique_replacement(void **state)
{
    ws_t *w = *state;
    json_t *r = ws_ok(w, "{\"tool\":\"edit\",\"path\":\"src/main.c\",\"old\":\"return 0;\","
                         "\"new\":\"return 1;\"}");
    char *content = ws_read(w, "src/main.c");

    assert_int_equal(int_field(r, "replacements"), 1);
    assert_string_equal(content, "int main(void)\n{\n    return 1;\n}\n");
    free(content);
    json_decref(r);
}

static void test_edit_ambiguous_rejected(void **state)
{
    ws_t *w = *state;
    char *content;
    json_t *r;

    ws_puts(w, "dup.txt", "a x a x a");
    ws_fails(w, "{\"tool\":\"edit\",\"path\":\"dup.txt\",\"old\":\"a\",\"new\":\"b\"}",
             "invalid_request");
    content = ws_read(w, "dup.txt");
    assert_string_equal(content, "a x a x a");
    free(content);

    r = ws_ok(w, "{\"tool\":\"edit\",\"path\":\"dup.txt\",\"old\":\"a\",\"new\":\"bb\","
                 "\"replace_all\":true}");
    assert_int_equal(int_field(r, "replacements"), 3);
    json_decref(r);
    content = ws_read(w, "dup.txt");
    assert_string_equal(content, "bb x bb x bb");
    free(content);
}

static void test_edit_overlapping_counts_once(void **state)
{
    ws_t *w = *state;
    json_t *r;
    char *content;

    ws_puts(w, "o.txt", "aaa");
    r = ws_ok(w, "{\"tool\":\"edit\",\"path\":\"o.txt\",\"old\":\"aa\",\"new\":\"b\"}");
    assert_int_equal(int_field(r, "replacements"), 1);
    json_decref(r);
    content = ws_read(w, "o.txt");
    assert_string_equal(content, "ba");
    free(content);
}

static void test_edit_errors(void **state)
{
    ws_t *w = *state;

    ws_fails(w, "{\"tool\":\"edit\",\"path\":\"src/main.c\",\"old\":\"nope\",\"new\":\"x\"}",
             "not_found");
    ws_fails(w, "{\"tool\":\"edit\",\"path\":\"src/main.c\",\"old\":\"\",\"new\":\"x\"}",
             "invalid_request");
    ws_fails(w, "{\"tool\":\"edit\",\"path\":\"src/main.c\",\"old\":\"int\",\"new\":\"int\"}",
             "invalid_request");
    ws_fails(w, "{\"tool\":\"edit\",\"path\":\"src/main.c\",\"old\":\"int\"}", "invalid_request");
    ws_fails(w, "{\"tool\":\"edit\",\"path\":\"missing\",\"old\":\"a\",\"new\":\"b\"}",
             "not_found");
    ws_fails(w, "{\"tool\":\"edit\",\"path\":\"passwd\",\"old\":\"root\",\"new\":\"x\"}",
             "path_denied");
    ws_fails(w, "{\"tool\":\"edit\",\"path\":\"src/main.c\",\"old\":\"int\",\"new\":\"x\","
                "\"replace_all\":\"yes\"}", "invalid_request");
}

static void test_edit_binary_file(void **state)
{
    ws_t *w = *state;
    const unsigned char bytes[] = { 0, 1, 'k', 'e', 'y', 0xff, 0 };
    unsigned char expected[] = { 0, 1, 'v', 'a', 'l', 'u', 'e', 0xff, 0 };
    char path[PATH_MAX], *content;
    size_t len;

    ws_write(w, "b.bin", bytes, sizeof bytes);
    json_decref(ws_ok(w, "{\"tool\":\"edit\",\"path\":\"b.bin\",\"old\":\"key\",\"new\":\"value\"}"));
    ws_path(w, "b.bin", path, sizeof path);
    content = ws_slurp(path, &len);
    assert_int_equal(len, sizeof expected);
    assert_memory_equal(content, expected, sizeof expected);
    free(content);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_read_whole_file),
        T(test_read_offset_limit),
        T(test_read_follows_link_inside),
        T(test_read_absolute_inside),
        T(test_read_errors),
        T(test_read_fifo_rejected),
        T(test_read_escapes_denied),
        T(test_read_long_path),
        T(test_read_binary_base64),
        T(test_read_into_blob),
        T(test_read_capped_by_config),
        T(test_write_creates_parents),
        T(test_write_replaces_and_keeps_mode),
        T(test_write_leaves_no_temp_files),
        T(test_write_binary_round_trip),
        T(test_write_errors),
        T(test_write_size_limit),
        T(test_write_through_inside_link),
        T(test_write_escapes_denied),
        T(test_write_detaches_hard_link),
        T(test_edit_unique_replacement),
        T(test_edit_ambiguous_rejected),
        T(test_edit_overlapping_counts_once),
        T(test_edit_errors),
        T(test_edit_binary_file),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
