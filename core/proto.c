/*
 * proto.c - the host <-> pod message protocol.
 *
 * The host and the process that executes tool calls inside the isolation
 * (the pod init of the namespace sandbox, later the guest agent of a
 * microVM) exchange frames over one ordered, reliable byte stream.  Nothing
 * else is assumed: no message boundaries, no fd passing, no credentials.
 *
 * FRAME LAYOUT (all integers big-endian)
 *
 *   offset size  field
 *   0      4     magic     "NUPF" (0x4e 0x55 0x50 0x46)
 *   4      1     version   protocol version of this frame (1)
 *   5      1     type      1 hello, 2 request, 3 response, 4 output, 5 error
 *   6      2     flags     reserved, 0 in version 1
 *   8      4     json_len  length of the JSON part, 2 .. 1 MiB
 *   12     4     blob_len  length of the blob part, 0 .. 16 MiB
 *   16     json_len        UTF-8 JSON text of one object
 *   16+json_len  blob_len  raw bytes (file content, command output)
 *
 * RULES
 *
 *   1. The header layout above is the same in every version, so that a
 *      reader can always find the version and the lengths.
 *   2. A reader validates the whole header before it allocates anything:
 *      wrong magic, a version outside its range, an unknown type, non-zero
 *      flags or a length beyond its maximum is a framing error.
 *   3. The JSON part must parse (strictly: no duplicate keys, no NUL) to an
 *      object; anything else is a framing error.
 *   4. There is no resynchronization.  On a framing error the reader sends
 *      nothing more and closes the stream, so the peer reads EOF.
 *   5. Requests carry a numeric "id"; the response and any output frames
 *      for that request carry the same id.  Version 1 allows one request in
 *      flight per stream.
 *   6. An error frame ({"message": ...}) is fatal: its sender closes the
 *      stream after writing it.
 *
 * VERSION NEGOTIATION
 *
 *   The host opens with a hello frame encoded in version 1,
 *     {"min_version": a, "max_version": b, "config": {...}},
 *   and the pod replies with a hello frame encoded in the chosen version,
 *     {"version": v, ...}, v = the highest version in both ranges,
 *   or with an error frame when the ranges do not overlap.  Every later
 *   frame uses version v.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "nucleus/json.h"
#include "nucleus/proto.h"

_Static_assert(NU_PROTO_HEADER_SIZE == 16, "frame header is 16 bytes");
_Static_assert(sizeof(NU_PROTO_MAGIC) - 1 == 4, "magic is 4 bytes");
_Static_assert(NU_PROTO_MAX_JSON <= UINT32_MAX, "json_len fits in 32 bits");
_Static_assert(NU_PROTO_MAX_BLOB <= UINT32_MAX, "blob_len fits in 32 bits");
_Static_assert((size_t)NU_PROTO_HEADER_SIZE + NU_PROTO_MAX_JSON +
                   NU_PROTO_MAX_BLOB < (size_t)INT32_MAX,
               "a whole frame fits in a signed 32-bit length");

static void nu__put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t nu__get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
           (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static int nu__type_known(int type)
{
    return type >= NU_FRAME_HELLO && type <= NU_FRAME_ERROR;
}

const char *nu_frame_type_name(int type)
{
    switch (type) {
    case NU_FRAME_HELLO: return "hello";
    case NU_FRAME_REQUEST: return "request";
    case NU_FRAME_RESPONSE: return "response";
    case NU_FRAME_OUTPUT: return "output";
    case NU_FRAME_ERROR: return "error";
    }
    return "unknown";
}

int nu_proto_pack_header(uint8_t out[NU_PROTO_HEADER_SIZE], uint8_t version,
                         uint8_t type, uint32_t json_len, uint32_t blob_len)
{
    if (version < NU_PROTO_VERSION_MIN || version > NU_PROTO_VERSION_MAX ||
        !nu__type_known(type))
        return NU_EINVAL;
    if (json_len < 2 || json_len > NU_PROTO_MAX_JSON ||
        blob_len > NU_PROTO_MAX_BLOB)
        return NU_ELIMIT;

    memcpy(out, NU_PROTO_MAGIC, 4);
    out[4] = version;
    out[5] = type;
    out[6] = 0;
    out[7] = 0;
    nu__put32(out + 8, json_len);
    nu__put32(out + 12, blob_len);
    return NU_OK;
}

int nu_proto_unpack_header(const uint8_t in[NU_PROTO_HEADER_SIZE],
                           nu_frame_header_t *out, nu_err_t *err)
{
    if (memcmp(in, NU_PROTO_MAGIC, 4) != 0)
        return nu_err_set(err, NU_EPROTO, "proto: cannot read frame: bad "
                          "magic 0x%02x%02x%02x%02x (expected \"NUPF\")",
                          in[0], in[1], in[2], in[3]);

    out->version = in[4];
    out->type = in[5];
    out->flags = (uint16_t)(in[6] << 8 | in[7]);
    out->json_len = nu__get32(in + 8);
    out->blob_len = nu__get32(in + 12);

    if (out->version < NU_PROTO_VERSION_MIN ||
        out->version > NU_PROTO_VERSION_MAX)
        return nu_err_set(err, NU_EPROTO, "proto: cannot read frame: "
                          "version %u not in %d..%d", out->version,
                          NU_PROTO_VERSION_MIN, NU_PROTO_VERSION_MAX);
    if (!nu__type_known(out->type))
        return nu_err_set(err, NU_EPROTO, "proto: cannot read frame: "
                          "unknown type %u", out->type);
    if (out->flags != 0)
        return nu_err_set(err, NU_EPROTO, "proto: cannot read frame: "
                          "reserved flags 0x%04x are not zero", out->flags);
    if (out->json_len < 2 || out->json_len > NU_PROTO_MAX_JSON)
        return nu_err_set(err, NU_EPROTO, "proto: cannot read frame: "
                          "json_len %u not in 2..%u", out->json_len,
                          NU_PROTO_MAX_JSON);
    if (out->blob_len > NU_PROTO_MAX_BLOB)
        return nu_err_set(err, NU_EPROTO, "proto: cannot read frame: "
                          "blob_len %u exceeds %u", out->blob_len,
                          NU_PROTO_MAX_BLOB);
    return NU_OK;
}

/* Serialize json compactly; rejects non-objects and oversized text. */
static char *nu__dump_object(const json_t *json, size_t *len, nu_err_t *err)
{
    char *text;

    if (!json_is_object(json)) {
        nu_err_set(err, NU_EINVAL, "proto: cannot encode frame: the JSON "
                   "part must be an object");
        return NULL;
    }
    text = json_dumps(json, JSON_COMPACT | JSON_ENCODE_ANY);
    if (text == NULL) {
        nu_err_set(err, NU_ENOMEM, "proto: cannot encode frame: out of "
                   "memory");
        return NULL;
    }
    *len = strlen(text);
    if (*len > NU_PROTO_MAX_JSON) {
        nu_err_set(err, NU_ELIMIT, "proto: cannot encode frame: JSON part "
                   "of %zu bytes exceeds %u", *len, NU_PROTO_MAX_JSON);
        free(text);
        return NULL;
    }
    return text;
}

int nu_proto_encode(uint8_t version, uint8_t type, const json_t *json,
                    const void *blob, size_t blob_len, uint8_t **out,
                    size_t *out_len, nu_err_t *err)
{
    size_t json_len = 0;
    char *text;
    uint8_t *buf;
    int rc;

    if (blob_len > NU_PROTO_MAX_BLOB)
        return nu_err_set(err, NU_ELIMIT, "proto: cannot encode frame: "
                          "blob of %zu bytes exceeds %u", blob_len,
                          NU_PROTO_MAX_BLOB);

    text = nu__dump_object(json, &json_len, err);
    if (text == NULL)
        return err != NULL ? err->code : NU_EINVAL;

    buf = malloc(NU_PROTO_HEADER_SIZE + json_len + blob_len);
    if (buf == NULL) {
        rc = nu_err_set(err, NU_ENOMEM, "proto: cannot encode frame: out "
                        "of memory");
        goto out;
    }

    rc = nu_proto_pack_header(buf, version, type, (uint32_t)json_len,
                              (uint32_t)blob_len);
    if (rc < 0) {
        nu_err_set(err, rc, "proto: cannot encode frame: invalid version "
                   "%u or type %u", version, type);
        free(buf);
        goto out;
    }
    memcpy(buf + NU_PROTO_HEADER_SIZE, text, json_len);
    if (blob_len > 0)
        memcpy(buf + NU_PROTO_HEADER_SIZE + json_len, blob, blob_len);

    *out = buf;
    *out_len = NU_PROTO_HEADER_SIZE + json_len + blob_len;

out:
    free(text);
    return rc;
}

/* Fill frame from a validated header and its body bytes. */
static int nu__frame_from_parts(const nu_frame_header_t *h,
                                const uint8_t *body, nu_frame_t *frame,
                                nu_err_t *err)
{
    nu_err_t detail = { 0 };
    json_t *json;

    json = nu_json_parse((const char *)body, h->json_len, &detail);
    if (json == NULL)
        return nu_err_set(err, NU_EPROTO, "proto: cannot read %s frame: "
                          "%s", nu_frame_type_name(h->type), detail.msg);
    if (!json_is_object(json)) {
        json_decref(json);
        return nu_err_set(err, NU_EPROTO, "proto: cannot read %s frame: "
                          "the JSON part is not an object",
                          nu_frame_type_name(h->type));
    }

    frame->blob = NULL;
    frame->blob_len = h->blob_len;
    if (h->blob_len > 0) {
        frame->blob = malloc(h->blob_len);
        if (frame->blob == NULL) {
            json_decref(json);
            return nu_err_set(err, NU_ENOMEM, "proto: cannot read frame: "
                              "out of memory for a %u-byte blob",
                              h->blob_len);
        }
        memcpy(frame->blob, body + h->json_len, h->blob_len);
    }
    frame->version = h->version;
    frame->type = h->type;
    frame->json = json;
    return NU_OK;
}

long nu_proto_decode(const uint8_t *buf, size_t len, nu_frame_t *frame,
                     nu_err_t *err)
{
    nu_frame_header_t h;
    size_t total;
    int rc;

    if (len < NU_PROTO_HEADER_SIZE) {
        /* Reject a wrong magic as soon as its bytes are there. */
        if (memcmp(buf, NU_PROTO_MAGIC, len < 4 ? len : 4) != 0)
            return nu_err_set(err, NU_EPROTO, "proto: cannot read frame: "
                              "bad magic");
        return 0;
    }

    rc = nu_proto_unpack_header(buf, &h, err);
    if (rc < 0)
        return rc;

    total = NU_PROTO_HEADER_SIZE + (size_t)h.json_len + h.blob_len;
    if (len < total)
        return 0;

    rc = nu__frame_from_parts(&h, buf + NU_PROTO_HEADER_SIZE, frame, err);
    if (rc < 0)
        return rc;
    return (long)total;
}

void nu_frame_free(nu_frame_t *frame)
{
    if (frame == NULL)
        return;
    json_decref(frame->json);
    free(frame->blob);
    frame->json = NULL;
    frame->blob = NULL;
    frame->blob_len = 0;
}

/* Send all of buf; sockets get MSG_NOSIGNAL, other fds plain write. */
static int nu__write_all(int fd, const uint8_t *buf, size_t len,
                         nu_err_t *err)
{
    int use_send = 1;
    ssize_t n;

    while (len > 0) {
        if (use_send)
            n = send(fd, buf, len, MSG_NOSIGNAL);
        else
            n = write(fd, buf, len);
        if (n < 0 && errno == ENOTSOCK && use_send) {
            use_send = 0;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd p = { .fd = fd, .events = POLLOUT };
            poll(&p, 1, -1);
            continue;
        }
        if (n <= 0)
            return nu_err_errno(err, n < 0 ? errno : EPIPE, "proto: cannot "
                                "write frame");
        buf += n;
        len -= (size_t)n;
    }
    return NU_OK;
}

int nu_proto_write(int fd, uint8_t version, uint8_t type, const json_t *json,
                   const void *blob, size_t blob_len, nu_err_t *err)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc;

    rc = nu_proto_encode(version, type, json, blob, blob_len, &buf, &len,
                         err);
    if (rc < 0)
        return rc;
    rc = nu__write_all(fd, buf, len, err);
    if (rc < 0)
        rc = NU_EIO;
    free(buf);
    return rc;
}

static int64_t nu__now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Read exactly len bytes before deadline_ms (-1: no deadline).  *got
 * counts the bytes read so far, so the caller can tell a clean EOF between
 * frames from a truncated frame. */
static int nu__read_full(int fd, uint8_t *buf, size_t len,
                         int64_t deadline_ms, size_t *got, nu_err_t *err)
{
    size_t done = 0;
    ssize_t n;

    while (done < len) {
        if (deadline_ms >= 0) {
            int64_t left = deadline_ms - nu__now_ms();
            struct pollfd p = { .fd = fd, .events = POLLIN };
            int pr;

            if (left < 0)
                left = 0;
            pr = poll(&p, 1, (int)left);
            if (pr < 0 && errno == EINTR)
                continue;
            if (pr == 0) {
                *got = done;
                return nu_err_set(err, NU_ETIMEDOUT, "proto: cannot read "
                                  "frame: timed out");
            }
        }
        n = read(fd, buf + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd p = { .fd = fd, .events = POLLIN };
            poll(&p, 1, -1);
            continue;
        }
        if (n < 0) {
            *got = done;
            return nu_err_errno(err, errno, "proto: cannot read frame");
        }
        if (n == 0) {
            *got = done;
            return nu_err_set(err, NU_EIO, "proto: cannot read frame: "
                              "stream closed");
        }
        done += (size_t)n;
    }
    *got = done;
    return NU_OK;
}

int nu_proto_read(int fd, nu_frame_t *frame, int timeout_ms, nu_err_t *err)
{
    uint8_t header[NU_PROTO_HEADER_SIZE];
    nu_frame_header_t h;
    int64_t deadline = timeout_ms < 0 ? -1 : nu__now_ms() + timeout_ms;
    uint8_t *body = NULL;
    size_t got = 0;
    int rc;

    rc = nu__read_full(fd, header, sizeof header, deadline, &got, err);
    if (rc == NU_EIO && got == 0)
        return nu_err_set(err, NU_EIO, "proto: cannot read frame: closed");
    if (rc < 0)
        return rc == NU_ETIMEDOUT && got > 0 ? NU_EPROTO : rc;

    rc = nu_proto_unpack_header(header, &h, err);
    if (rc < 0)
        return rc;

    body = malloc((size_t)h.json_len + h.blob_len);
    if (body == NULL)
        return nu_err_set(err, NU_ENOMEM, "proto: cannot read frame: out "
                          "of memory for %u bytes", h.json_len + h.blob_len);

    rc = nu__read_full(fd, body, (size_t)h.json_len + h.blob_len, deadline,
                       &got, err);
    if (rc == NU_ETIMEDOUT)
        rc = NU_EPROTO;  /* a partial frame cannot be resumed */
    if (rc == NU_OK)
        rc = nu__frame_from_parts(&h, body, frame, err);

    free(body);
    return rc;
}

int nu_proto_negotiate(int our_min, int our_max, int peer_min, int peer_max,
                       nu_err_t *err)
{
    int low = our_min > peer_min ? our_min : peer_min;
    int high = our_max < peer_max ? our_max : peer_max;

    if (low > high || high < 1)
        return nu_err_set(err, NU_ENOTSUP, "proto: cannot agree on a "
                          "version: ours %d..%d, peer's %d..%d", our_min,
                          our_max, peer_min, peer_max);
    return high;
}
