/*
 * proto.h - the host <-> pod message protocol.
 *
 * One frame is a 16-byte header, a JSON object and an optional byte blob.
 * The byte layout, the frame types, version negotiation and the error
 * rules are described at the top of core/proto.c and in docs/protocol.md.
 * The protocol needs nothing but an ordered byte stream: a socketpair to
 * the namespace pod's init today, a virtio serial port to a microVM guest
 * agent later.
 */
#ifndef NUCLEUS_PROTO_H
#define NUCLEUS_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "nucleus/error.h"

#define NU_PROTO_MAGIC "NUPF"
#define NU_PROTO_HEADER_SIZE 16
#define NU_PROTO_VERSION_MIN 1
#define NU_PROTO_VERSION_MAX 1

/* Maximum sizes of one frame's parts; a larger length in a header is a
 * framing error.  A run result carries up to 1 MiB of each output stream,
 * and JSON may escape a byte as six ("\u0001"), so the JSON part allows
 * 16 MiB. */
#define NU_PROTO_MAX_JSON (16u << 20)  /* 16 MiB */
#define NU_PROTO_MAX_BLOB (16u << 20)  /* 16 MiB */

typedef enum {
    NU_FRAME_HELLO = 1,     /* version negotiation and pod configuration */
    NU_FRAME_REQUEST = 2,   /* host -> pod: one tool call */
    NU_FRAME_RESPONSE = 3,  /* pod -> host: the final result of a request */
    NU_FRAME_OUTPUT = 4,    /* pod -> host: a chunk of streamed output */
    NU_FRAME_ERROR = 5      /* either way: fatal error, the sender closes */
} nu_frame_type_t;

/* The decoded fixed header. */
typedef struct nu_frame_header {
    uint8_t version;
    uint8_t type;
    uint16_t flags;
    uint32_t json_len;
    uint32_t blob_len;
} nu_frame_header_t;

/* A whole frame.  json is owned (a new reference), blob is malloc'd (or
 * NULL when blob_len is 0); release both with nu_frame_free. */
typedef struct nu_frame {
    uint8_t version;
    uint8_t type;
    json_t *json;
    uint8_t *blob;
    size_t blob_len;
} nu_frame_t;

/* Write the 16-byte header for the given part lengths into out.  Uses no
 * allocation or locks, so a forked child may call it.  Returns NU_OK, or
 * NU_ELIMIT when a length exceeds its maximum, NU_EINVAL for an unknown
 * type or version. */
int nu_proto_pack_header(uint8_t out[NU_PROTO_HEADER_SIZE], uint8_t version,
                         uint8_t type, uint32_t json_len, uint32_t blob_len);

/* Decode and validate a header: magic, version in the supported range,
 * known type, flags zero, json_len in [2, NU_PROTO_MAX_JSON], blob_len at
 * most NU_PROTO_MAX_BLOB.  Returns NU_OK or NU_EPROTO with err filled. */
int nu_proto_unpack_header(const uint8_t in[NU_PROTO_HEADER_SIZE],
                           nu_frame_header_t *out, nu_err_t *err);

/* Encode one frame into a malloc'd buffer (*out, *out_len; the caller
 * frees it).  json must be an object; blob may be NULL when blob_len is 0.
 * Returns NU_OK, NU_EINVAL (not an object, unknown type), NU_ELIMIT
 * (a part too large) or NU_ENOMEM. */
int nu_proto_encode(uint8_t version, uint8_t type, const json_t *json,
                    const void *blob, size_t blob_len, uint8_t **out,
                    size_t *out_len, nu_err_t *err);

/* Decode one frame from the start of buf.  Returns the number of bytes
 * consumed (> 0) with *frame filled, 0 when buf holds only part of a frame
 * (read more), or NU_EPROTO for a framing error (bad header, JSON that is
 * not a strict object).  After NU_EPROTO the stream cannot be resynchronized:
 * the reader must close it. */
long nu_proto_decode(const uint8_t *buf, size_t len, nu_frame_t *frame,
                     nu_err_t *err);

/* Write one frame to fd, retrying on EINTR and partial writes (sockets are
 * written with MSG_NOSIGNAL, so a closed peer gives NU_EIO, not SIGPIPE).
 * Returns NU_OK, NU_EIO, or the errors of nu_proto_encode. */
int nu_proto_write(int fd, uint8_t version, uint8_t type, const json_t *json,
                   const void *blob, size_t blob_len, nu_err_t *err);

/* Read one frame from fd, waiting at most timeout_ms for the whole frame
 * (-1 waits forever).  Returns NU_OK with *frame filled, NU_EIO when the
 * peer closed the stream (err contains "closed" for a clean end between
 * frames), NU_ETIMEDOUT, or NU_EPROTO; after anything but NU_OK and
 * NU_ETIMEDOUT before the first byte, close fd. */
int nu_proto_read(int fd, nu_frame_t *frame, int timeout_ms, nu_err_t *err);

void nu_frame_free(nu_frame_t *frame);

/* Pick the highest version in both [our_min, our_max] and
 * [peer_min, peer_max].  Returns the version, or NU_ENOTSUP when the
 * ranges do not overlap. */
int nu_proto_negotiate(int our_min, int our_max, int peer_min, int peer_max,
                       nu_err_t *err);

/* Name of a frame type ("request"), "unknown" for others. */
const char *nu_frame_type_name(int type);

#endif
