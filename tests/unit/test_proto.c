/*
 * test_proto.c - framing, limits and error handling of the host <-> pod
 * protocol.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "nucleus/proto.h"

static uint8_t *encode_ok(uint8_t type, const char *json_text,
                          const void *blob, size_t blob_len, size_t *len)
{
    nu_err_t err;
    json_t *json = json_loads(json_text, 0, NULL);
    uint8_t *buf = NULL;

    assert_non_null(json);
    assert_int_equal(nu_proto_encode(1, type, json, blob, blob_len, &buf,
                                     len, &err), NU_OK);
    json_decref(json);
    return buf;
}

static void test_proto_round_trip(void **state)
{
    (void)state;
    nu_err_t err;
    nu_frame_t frame;
    size_t len;
    uint8_t *buf = encode_ok(NU_FRAME_REQUEST, "{\"id\":7,\"tool\":\"run\"}",
                             "abc\0def", 7, &len);

    assert_int_equal(len, NU_PROTO_HEADER_SIZE + 21 + 7);
    assert_memory_equal(buf, "NUPF\x01\x02\x00\x00\x00\x00\x00\x15\x00\x00"
                        "\x00\x07", 16);

    assert_int_equal(nu_proto_decode(buf, len, &frame, &err), (long)len);
    assert_int_equal(frame.type, NU_FRAME_REQUEST);
    assert_int_equal(frame.version, 1);
    assert_int_equal(json_integer_value(json_object_get(frame.json, "id")),
                     7);
    assert_int_equal(frame.blob_len, 7);
    assert_memory_equal(frame.blob, "abc\0def", 7);

    nu_frame_free(&frame);
    free(buf);
}

static void test_proto_partial_needs_more(void **state)
{
    (void)state;
    nu_err_t err;
    nu_frame_t frame;
    size_t len;
    uint8_t *buf = encode_ok(NU_FRAME_RESPONSE, "{\"ok\":true}", "xy", 2,
                             &len);

    for (size_t cut = 0; cut < len; cut++)
        assert_int_equal(nu_proto_decode(buf, cut, &frame, &err), 0);
    assert_int_equal(nu_proto_decode(buf, len, &frame, &err), (long)len);
    nu_frame_free(&frame);
    free(buf);
}

static void test_proto_rejects_bad_magic(void **state)
{
    (void)state;
    nu_err_t err;
    nu_frame_t frame;
    size_t len;
    uint8_t *buf = encode_ok(NU_FRAME_HELLO, "{}", NULL, 0, &len);

    buf[0] = 'X';
    assert_int_equal(nu_proto_decode(buf, len, &frame, &err), NU_EPROTO);
    assert_non_null(strstr(err.msg, "bad magic"));
    /* Even two bytes of a wrong magic are enough to give up. */
    assert_int_equal(nu_proto_decode(buf, 2, &frame, &err), NU_EPROTO);
    free(buf);
}

static void test_proto_rejects_bad_header_fields(void **state)
{
    (void)state;
    nu_err_t err;
    nu_frame_t frame;
    size_t len;
    uint8_t *buf = encode_ok(NU_FRAME_HELLO, "{}", NULL, 0, &len);
    uint8_t copy[64];

    memcpy(copy, buf, len);
    copy[4] = 9;  /* version */
    assert_int_equal(nu_proto_decode(copy, len, &frame, &err), NU_EPROTO);
    assert_non_null(strstr(err.msg, "version 9"));

    memcpy(copy, buf, len);
    copy[5] = 42;  /* type */
    assert_int_equal(nu_proto_decode(copy, len, &frame, &err), NU_EPROTO);
    assert_non_null(strstr(err.msg, "unknown type 42"));

    memcpy(copy, buf, len);
    copy[7] = 1;  /* flags */
    assert_int_equal(nu_proto_decode(copy, len, &frame, &err), NU_EPROTO);
    assert_non_null(strstr(err.msg, "flags"));

    memcpy(copy, buf, len);
    copy[8] = 0x7f;  /* json_len far beyond 1 MiB */
    assert_int_equal(nu_proto_decode(copy, len, &frame, &err), NU_EPROTO);
    assert_non_null(strstr(err.msg, "json_len"));

    memcpy(copy, buf, len);
    copy[12] = 0x02;  /* blob_len 32 MiB */
    assert_int_equal(nu_proto_decode(copy, len, &frame, &err), NU_EPROTO);
    assert_non_null(strstr(err.msg, "blob_len"));
    free(buf);
}

static void test_proto_rejects_non_object_json(void **state)
{
    (void)state;
    nu_err_t err;
    nu_frame_t frame;
    uint8_t buf[64];

    assert_int_equal(nu_proto_pack_header(buf, 1, NU_FRAME_REQUEST, 2, 0),
                     NU_OK);
    memcpy(buf + 16, "[]", 2);
    assert_int_equal(nu_proto_decode(buf, 18, &frame, &err), NU_EPROTO);

    memcpy(buf + 16, "{x", 2);
    assert_int_equal(nu_proto_decode(buf, 18, &frame, &err), NU_EPROTO);

    assert_int_equal(nu_proto_pack_header(buf, 1, NU_FRAME_REQUEST, 15, 0),
                     NU_OK);
    memcpy(buf + 16, "{\"a\":1,\"a\":2}  ", 15);
    assert_int_equal(nu_proto_decode(buf, 31, &frame, &err), NU_EPROTO);
}

static void test_proto_encode_limits(void **state)
{
    (void)state;
    nu_err_t err;
    uint8_t *buf = NULL;
    size_t len;
    json_t *arr = json_array();
    json_t *obj = json_object();

    assert_int_equal(nu_proto_encode(1, NU_FRAME_REQUEST, arr, NULL, 0,
                                     &buf, &len, &err), NU_EINVAL);
    assert_int_equal(nu_proto_encode(1, NU_FRAME_REQUEST, obj, "",
                                     NU_PROTO_MAX_BLOB + 1, &buf, &len,
                                     &err), NU_ELIMIT);
    assert_int_equal(nu_proto_encode(1, 77, obj, NULL, 0, &buf, &len, &err),
                     NU_EINVAL);

    char *big = malloc(NU_PROTO_MAX_JSON + 1);
    memset(big, 'a', NU_PROTO_MAX_JSON);
    big[NU_PROTO_MAX_JSON] = '\0';
    json_object_set_new(obj, "s", json_string(big));
    assert_int_equal(nu_proto_encode(1, NU_FRAME_REQUEST, obj, NULL, 0,
                                     &buf, &len, &err), NU_ELIMIT);
    free(big);
    json_decref(arr);
    json_decref(obj);
}

static void test_proto_stream_read_write(void **state)
{
    (void)state;
    nu_err_t err;
    nu_frame_t frame;
    int sv[2];
    json_t *json = json_pack("{s:i,s:s}", "id", 1, "tool", "ping");
    static uint8_t blob[200000];

    memset(blob, 0x5a, sizeof blob);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv),
                     0);
    /* A 200 kB blob is larger than the socket buffer: write from a child. */
    pid_t pid = fork();
    if (pid == 0) {
        close(sv[0]);
        _exit(nu_proto_write(sv[1], 1, NU_FRAME_OUTPUT, json, blob,
                             sizeof blob, NULL) == NU_OK ? 0 : 1);
    }
    close(sv[1]);
    assert_int_equal(nu_proto_read(sv[0], &frame, 5000, &err), NU_OK);
    assert_int_equal(frame.type, NU_FRAME_OUTPUT);
    assert_int_equal(frame.blob_len, sizeof blob);
    assert_memory_equal(frame.blob, blob, sizeof blob);
    nu_frame_free(&frame);

    /* The writer is gone: a clean EOF between frames. */
    assert_int_equal(nu_proto_read(sv[0], &frame, 5000, &err), NU_EIO);
    assert_non_null(strstr(err.msg, "closed"));
    close(sv[0]);
    json_decref(json);
}

static void test_proto_read_times_out(void **state)
{
    (void)state;
    nu_err_t err;
    nu_frame_t frame;
    int sv[2];

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv),
                     0);
    assert_int_equal(nu_proto_read(sv[0], &frame, 20, &err), NU_ETIMEDOUT);

    /* Half a header, then silence: the stream is unusable. */
    assert_int_equal(write(sv[1], "NUPF\x01", 5), 5);
    assert_int_equal(nu_proto_read(sv[0], &frame, 20, &err), NU_EPROTO);
    close(sv[0]);
    close(sv[1]);
}

static void test_proto_truncated_frame_is_error(void **state)
{
    (void)state;
    nu_err_t err;
    nu_frame_t frame;
    int sv[2];
    size_t len;
    uint8_t *buf = encode_ok(NU_FRAME_RESPONSE, "{\"id\":1}", "data", 4,
                             &len);

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv),
                     0);
    assert_int_equal(write(sv[1], buf, len - 2), (ssize_t)(len - 2));
    close(sv[1]);
    assert_int_equal(nu_proto_read(sv[0], &frame, 1000, &err), NU_EIO);
    assert_null(strstr(err.msg, ": closed"));
    close(sv[0]);
    free(buf);
}

static void test_proto_negotiates_versions(void **state)
{
    (void)state;
    nu_err_t err;

    assert_int_equal(nu_proto_negotiate(1, 1, 1, 1, &err), 1);
    assert_int_equal(nu_proto_negotiate(1, 3, 2, 5, &err), 3);
    assert_int_equal(nu_proto_negotiate(1, 1, 2, 3, &err), NU_ENOTSUP);
    assert_non_null(strstr(err.msg, "peer's 2..3"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_proto_round_trip),
        cmocka_unit_test(test_proto_partial_needs_more),
        cmocka_unit_test(test_proto_rejects_bad_magic),
        cmocka_unit_test(test_proto_rejects_bad_header_fields),
        cmocka_unit_test(test_proto_rejects_non_object_json),
        cmocka_unit_test(test_proto_encode_limits),
        cmocka_unit_test(test_proto_stream_read_write),
        cmocka_unit_test(test_proto_read_times_out),
        cmocka_unit_test(test_proto_truncated_frame_is_error),
        cmocka_unit_test(test_proto_negotiates_versions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
