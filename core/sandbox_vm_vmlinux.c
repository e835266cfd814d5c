/*
 * sandbox_vm_vmlinux.c - extract the ELF vmlinux from an x86 bzImage, for
 * Firecracker, which on x86_64 boots only an uncompressed ELF kernel.
 *
 * bzImage layout (the Linux x86 boot protocol)
 * --------------------------------------------
 * The file starts with the real-mode setup code: a boot sector and
 * setup_sects more 512-byte sectors (the byte at 0x1f1; 0 means 4).  The
 * protected-mode code follows at (setup_sects + 1) * 512.  The setup
 * header carries the boot flag 0xAA55 at 0x1fe, the magic "HdrS" at 0x202
 * and the protocol version at 0x206.  From version 2.08 on, the 32-bit
 * little-endian fields payload_offset (0x248) and payload_length (0x24c)
 * locate the compressed kernel, relative to the protected-mode code.
 *
 * The payload is the compressed vmlinux, followed by its uncompressed
 * size in 4 little-endian bytes that the kernel build appends.  The
 * decoders below stop at the end of the first stream, so those 4 bytes
 * are never parsed as data.  xz (liblzma), gzip (zlib) and zstd (libzstd)
 * are decoded.  bzip2, lzma, lzo and lz4 payloads are rejected with their
 * name.
 */
#include <elf.h>
#include <stddef.h>
#include <lzma.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "sandbox_vm_internal.h"

/* Upper bound on the decompressed kernel.  Debian 12's 6.1.0-57-amd64
 * vmlinux is 63 MiB, so 1 GiB leaves room while stopping a decompression
 * bomb. */
#define NU__VMLINUX_MAX ((size_t)1 << 30)

#define NU__BZ_SETUP_SECTS 0x1f1
#define NU__BZ_BOOT_FLAG 0x1fe
#define NU__BZ_HEADER_MAGIC 0x202
#define NU__BZ_VERSION 0x206
#define NU__BZ_PAYLOAD_OFFSET 0x248
#define NU__BZ_PAYLOAD_LENGTH 0x24c

typedef struct nu__vmlinux_buf {
    unsigned char *data;
    size_t len;
    size_t cap;
} nu__vmlinux_buf_t;

static uint32_t nu__le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static uint16_t nu__le16(const unsigned char *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

/* Double the buffer, or allocate hint bytes (at least 1 MiB) at first. */
static int nu__vmlinux_grow(nu__vmlinux_buf_t *buf, size_t hint,
                            nu_err_t *err)
{
    size_t cap = buf->cap == 0 ? hint : buf->cap * 2;
    unsigned char *data;

    if (cap < ((size_t)1 << 20))
        cap = (size_t)1 << 20;
    if (buf->cap >= NU__VMLINUX_MAX)
        return nu_err_set(err, NU_EINVAL, "vm image: cannot extract "
                          "vmlinux: it decompresses to more than %zu MiB",
                          NU__VMLINUX_MAX >> 20);
    if (cap > NU__VMLINUX_MAX)
        cap = NU__VMLINUX_MAX;
    data = realloc(buf->data, cap);
    if (data == NULL)
        return nu_err_set(err, NU_ENOMEM, "vm image: out of memory");
    buf->data = data;
    buf->cap = cap;
    return NU_OK;
}

static int nu__vmlinux_corrupt(const char *format, const char *detail,
                               nu_err_t *err)
{
    return nu_err_set(err, NU_EINVAL, "vm image: cannot extract vmlinux: "
                      "the %s payload is corrupt (%s)", format, detail);
}

static int nu__vmlinux_xz(const unsigned char *in, size_t in_len,
                          size_t hint, nu__vmlinux_buf_t *out,
                          nu_err_t *err)
{
    lzma_stream strm = LZMA_STREAM_INIT;
    lzma_ret ret;
    int rc = NU_OK;

    /* No LZMA_CONCATENATED: decoding ends with the first stream. */
    if (lzma_stream_decoder(&strm, UINT64_MAX, 0) != LZMA_OK)
        return nu_err_set(err, NU_ENOMEM, "vm image: out of memory");
    strm.next_in = in;
    strm.avail_in = in_len;
    do {
        if (out->len == out->cap &&
            (rc = nu__vmlinux_grow(out, hint, err)) < 0)
            goto out;
        strm.next_out = out->data + out->len;
        strm.avail_out = out->cap - out->len;
        ret = lzma_code(&strm, LZMA_FINISH);
        out->len = out->cap - strm.avail_out;
    } while (ret == LZMA_OK);
    if (ret != LZMA_STREAM_END)
        rc = nu__vmlinux_corrupt("xz", ret == LZMA_BUF_ERROR ? "truncated"
                                 : "liblzma decoding error", err);

out:
    lzma_end(&strm);
    return rc;
}

static int nu__vmlinux_gzip(const unsigned char *in, size_t in_len,
                            size_t hint, nu__vmlinux_buf_t *out,
                            nu_err_t *err)
{
    z_stream z = { 0 };
    int ret, rc = NU_OK;

    /* 16 + MAX_WBITS: a gzip header and trailer, not a zlib one. */
    if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK)
        return nu_err_set(err, NU_ENOMEM, "vm image: out of memory");
    z.next_in = (unsigned char *)in;
    z.avail_in = (uInt)in_len;
    do {
        if (out->len == out->cap &&
            (rc = nu__vmlinux_grow(out, hint, err)) < 0)
            goto out;
        z.next_out = out->data + out->len;
        z.avail_out = (uInt)(out->cap - out->len);
        ret = inflate(&z, Z_NO_FLUSH);
        out->len = out->cap - z.avail_out;
    } while (ret == Z_OK);
    if (ret != Z_STREAM_END)
        rc = nu__vmlinux_corrupt("gzip", z.msg != NULL ? z.msg :
                                 "truncated", err);

out:
    inflateEnd(&z);
    return rc;
}

static int nu__vmlinux_zstd(const unsigned char *in, size_t in_len,
                            size_t hint, nu__vmlinux_buf_t *out,
                            nu_err_t *err)
{
    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    ZSTD_inBuffer src = { in, in_len, 0 };
    size_t ret;
    int rc = NU_OK;

    if (dctx == NULL)
        return nu_err_set(err, NU_ENOMEM, "vm image: out of memory");
    do {
        ZSTD_outBuffer dst;

        if (out->len == out->cap &&
            (rc = nu__vmlinux_grow(out, hint, err)) < 0)
            goto out;
        dst = (ZSTD_outBuffer){ out->data, out->cap, out->len };
        ret = ZSTD_decompressStream(dctx, &dst, &src);
        out->len = dst.pos;
        if (ZSTD_isError(ret)) {
            rc = nu__vmlinux_corrupt("zstd", ZSTD_getErrorName(ret), err);
            goto out;
        }
        /* ret 0: the frame is complete.  Input used up with the frame
         * still open means the payload is cut short. */
        if (ret != 0 && src.pos == src.size && dst.pos < dst.size) {
            rc = nu__vmlinux_corrupt("zstd", "truncated", err);
            goto out;
        }
    } while (ret != 0);

out:
    ZSTD_freeDCtx(dctx);
    return rc;
}

/* Name the compression format from the payload's first bytes. */
static const char *nu__vmlinux_format(const unsigned char *p, size_t len)
{
    static const struct {
        const char *name;
        const char *magic;
        size_t len;
    } formats[] = {
        { "xz", "\xfd" "7zXZ\0", 6 },
        { "gzip", "\x1f\x8b", 2 },
        { "zstd", "\x28\xb5\x2f\xfd", 4 },
        { "bzip2", "BZh", 3 },
        { "lzo", "\x89LZO", 4 },
        { "lz4", "\x02\x21\x4c\x18", 4 },
        { "lzma", "\x5d\x00\x00", 3 },
    };

    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++)
        if (len >= formats[i].len &&
            memcmp(p, formats[i].magic, formats[i].len) == 0)
            return formats[i].name;
    return NULL;
}

/* Check the boot protocol header and locate the payload in bz. */
static int nu__vmlinux_payload(const unsigned char *bz, size_t len,
                               size_t *offset, size_t *length,
                               nu_err_t *err)
{
    uint64_t pm_offset, start, end;
    unsigned setup_sects;
    uint16_t version;

    if (len < NU__BZ_PAYLOAD_LENGTH + 4)
        return nu_err_set(err, NU_EINVAL, "vm image: cannot extract "
                          "vmlinux: the kernel is %zu bytes, too short for "
                          "a bzImage header", len);
    if (nu__le16(bz + NU__BZ_BOOT_FLAG) != 0xAA55 ||
        memcmp(bz + NU__BZ_HEADER_MAGIC, "HdrS", 4) != 0)
        return nu_err_set(err, NU_EINVAL, "vm image: cannot extract "
                          "vmlinux: the kernel is not an x86 bzImage (no "
                          "boot flag 0xAA55 or \"HdrS\" magic)");
    version = nu__le16(bz + NU__BZ_VERSION);
    if (version < 0x0208)
        return nu_err_set(err, NU_EINVAL, "vm image: cannot extract "
                          "vmlinux: boot protocol %u.%02u has no payload "
                          "fields (2.08 or later needed)", version >> 8,
                          version & 0xff);

    setup_sects = bz[NU__BZ_SETUP_SECTS] != 0 ? bz[NU__BZ_SETUP_SECTS] : 4;
    pm_offset = ((uint64_t)setup_sects + 1) * 512;
    start = pm_offset + nu__le32(bz + NU__BZ_PAYLOAD_OFFSET);
    end = start + nu__le32(bz + NU__BZ_PAYLOAD_LENGTH);
    if (end <= start || end > len)
        return nu_err_set(err, NU_EINVAL, "vm image: cannot extract "
                          "vmlinux: payload bytes %llu..%llu lie outside "
                          "the %zu-byte kernel (corrupt or truncated "
                          "bzImage)", (unsigned long long)start,
                          (unsigned long long)end, len);
    *offset = (size_t)start;
    *length = (size_t)(end - start);
    return NU_OK;
}

static int nu__vmlinux_check_elf(const unsigned char *p, size_t len,
                                 nu_err_t *err)
{
    if (len < sizeof(Elf64_Ehdr) || memcmp(p, ELFMAG, SELFMAG) != 0 ||
        p[EI_CLASS] != ELFCLASS64 || p[EI_DATA] != ELFDATA2LSB ||
        nu__le16(p + offsetof(Elf64_Ehdr, e_machine)) != EM_X86_64)
        return nu_err_set(err, NU_EINVAL, "vm image: cannot extract "
                          "vmlinux: the decompressed payload is not an "
                          "ELF64 x86-64 file");
    return NU_OK;
}

int nu__vm_vmlinux_extract(const unsigned char *bz, size_t len,
                           unsigned char **out, size_t *out_len,
                           nu_err_t *err)
{
    nu__vmlinux_buf_t buf = { 0 };
    const unsigned char *payload;
    const char *format;
    size_t offset, length, hint;
    int rc;

    *out = NULL;
    *out_len = 0;
    rc = nu__vmlinux_payload(bz, len, &offset, &length, err);
    if (rc < 0)
        return rc;
    payload = bz + offset;

    /* The trailing size only sizes the first allocation, and the
     * decoders still bound every write by the buffer. */
    hint = length >= 4 ? nu__le32(payload + length - 4) : 0;
    if (hint > ((size_t)256 << 20))
        hint = (size_t)256 << 20;
    format = nu__vmlinux_format(payload, length);
    if (format == NULL)
        return nu_err_set(err, NU_ENOTSUP, "vm image: cannot extract "
                          "vmlinux: unknown payload format (first bytes "
                          "%02x %02x %02x %02x; xz, gzip and zstd are "
                          "supported)", payload[0],
                          length > 1 ? payload[1] : 0,
                          length > 2 ? payload[2] : 0,
                          length > 3 ? payload[3] : 0);
    if (strcmp(format, "xz") == 0)
        rc = nu__vmlinux_xz(payload, length, hint, &buf, err);
    else if (strcmp(format, "gzip") == 0)
        rc = nu__vmlinux_gzip(payload, length, hint, &buf, err);
    else if (strcmp(format, "zstd") == 0)
        rc = nu__vmlinux_zstd(payload, length, hint, &buf, err);
    else
        rc = nu_err_set(err, NU_ENOTSUP, "vm image: cannot extract "
                        "vmlinux: %s payloads are not supported (use a "
                        "kernel built with CONFIG_KERNEL_XZ, _GZIP or "
                        "_ZSTD)", format);
    if (rc == NU_OK)
        rc = nu__vmlinux_check_elf(buf.data, buf.len, err);
    if (rc < 0) {
        free(buf.data);
        return rc;
    }
    *out = buf.data;
    *out_len = buf.len;
    return NU_OK;
}
