/*
 * test_vm_vmlinux.c - extraction of vmlinux from a synthetic bzImage: a
 * boot protocol header around an xz, gzip or zstd payload holding a small
 * ELF file, and headers and payloads that must be rejected.
 */
#include <elf.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <lzma.h>
#include <zlib.h>
#include <zstd.h>

#include "sandbox_vm_internal.h"

#define SETUP_SECTS 1
#define PM_OFFSET ((SETUP_SECTS + 1) * 512)
#define PAYLOAD_OFFSET 0x40
#define ELF_LEN 4096

typedef enum { FMT_XZ, FMT_GZIP, FMT_ZSTD } fmt_t;

static void put16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* An ELF64 header of the given class and machine, then a pattern. */
static unsigned char *make_elf(unsigned char elf_class, uint16_t machine)
{
    unsigned char *elf = calloc(1, ELF_LEN);
    Elf64_Ehdr eh = { 0 };

    assert_non_null(elf);
    memcpy(eh.e_ident, ELFMAG, SELFMAG);
    eh.e_ident[EI_CLASS] = elf_class;
    eh.e_ident[EI_DATA] = ELFDATA2LSB;
    eh.e_ident[EI_VERSION] = EV_CURRENT;
    eh.e_type = ET_EXEC;
    eh.e_machine = machine;
    memcpy(elf, &eh, sizeof eh);
    for (size_t i = sizeof eh; i < ELF_LEN; i++)
        elf[i] = (unsigned char)(i * 7);
    return elf;
}

/* Compress in into a new buffer, with the 4-byte size the kernel build
 * appends. */
static unsigned char *compress_payload(fmt_t fmt, const unsigned char *in,
                               size_t len, size_t *out_len)
{
    size_t cap = len * 2 + 1024, n = 0;
    unsigned char *out = malloc(cap);

    assert_non_null(out);
    if (fmt == FMT_XZ) {
        assert_int_equal(lzma_easy_buffer_encode(6, LZMA_CHECK_CRC32, NULL,
                                                 in, len, out, &n, cap),
                         LZMA_OK);
    } else if (fmt == FMT_GZIP) {
        z_stream z = { 0 };

        assert_int_equal(deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 8,
                                      Z_DEFAULT_STRATEGY), Z_OK);
        z.next_in = (unsigned char *)in;
        z.avail_in = (uInt)len;
        z.next_out = out;
        z.avail_out = (uInt)cap;
        assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
        n = z.total_out;
        deflateEnd(&z);
    } else {
        n = ZSTD_compress(out, cap, in, len, 19);
        assert_false(ZSTD_isError(n));
    }
    put32(out + n, (uint32_t)len);
    *out_len = n + 4;
    return out;
}

/* A bzImage: setup sectors with a 2.15 header, then the payload at
 * PAYLOAD_OFFSET into the protected-mode code. */
static unsigned char *make_bzimage(const unsigned char *payload, size_t len,
                                   size_t *bz_len)
{
    size_t total = PM_OFFSET + PAYLOAD_OFFSET + len + 16;
    unsigned char *bz = calloc(1, total);

    assert_non_null(bz);
    bz[0x1f1] = SETUP_SECTS;
    put16(bz + 0x1fe, 0xAA55);
    memcpy(bz + 0x202, "HdrS", 4);
    put16(bz + 0x206, 0x020f);
    put32(bz + 0x248, PAYLOAD_OFFSET);
    put32(bz + 0x24c, (uint32_t)len);
    memcpy(bz + PM_OFFSET + PAYLOAD_OFFSET, payload, len);
    *bz_len = total;
    return bz;
}

static unsigned char *make_good(fmt_t fmt, unsigned char **elf,
                                size_t *bz_len)
{
    unsigned char *payload, *bz;
    size_t len;

    *elf = make_elf(ELFCLASS64, EM_X86_64);
    payload = compress_payload(fmt, *elf, ELF_LEN, &len);
    bz = make_bzimage(payload, len, bz_len);
    free(payload);
    return bz;
}

static void check_format(fmt_t fmt)
{
    unsigned char *elf, *out = NULL;
    size_t bz_len, out_len = 0;
    unsigned char *bz = make_good(fmt, &elf, &bz_len);
    nu_err_t err;

    assert_int_equal(nu__vm_vmlinux_extract(bz, bz_len, &out, &out_len,
                                            &err), NU_OK);
    assert_int_equal(out_len, ELF_LEN);
    assert_memory_equal(out, elf, ELF_LEN);
    free(out);
    free(bz);
    free(elf);
}

static void test_xz_payload(void **state)
{
    (void)state;
    check_format(FMT_XZ);
}

static void test_gzip_payload(void **state)
{
    (void)state;
    check_format(FMT_GZIP);
}

static void test_zstd_payload(void **state)
{
    (void)state;
    check_format(FMT_ZSTD);
}

/* Extraction of bz must fail with rc and a message containing want. */
static void expect_reject(const unsigned char *bz, size_t len, int rc,
                          const char *want)
{
    unsigned char *out = (unsigned char *)"not reset";
    size_t out_len = 1;
    nu_err_t err;

    assert_int_equal(nu__vm_vmlinux_extract(bz, len, &out, &out_len, &err),
                     rc);
    assert_null(out);
    assert_int_equal(out_len, 0);
    if (strstr(err.msg, want) == NULL)
        fail_msg("message '%s' lacks '%s'", err.msg, want);
}

static void test_setup_sects_zero_means_four(void **state)
{
    unsigned char *elf, *out = NULL;
    size_t bz_len, out_len = 0, shifted_len;
    unsigned char *bz = make_good(FMT_XZ, &elf, &bz_len);
    unsigned char *shifted;
    nu_err_t err;

    (void)state;
    /* Move the protected-mode code from sector 2 to sector 5. */
    shifted_len = bz_len + 3 * 512;
    shifted = calloc(1, shifted_len);
    assert_non_null(shifted);
    memcpy(shifted, bz, PM_OFFSET);
    memcpy(shifted + 5 * 512, bz + PM_OFFSET, bz_len - PM_OFFSET);
    shifted[0x1f1] = 0;
    assert_int_equal(nu__vm_vmlinux_extract(shifted, shifted_len, &out,
                                            &out_len, &err), NU_OK);
    assert_memory_equal(out, elf, ELF_LEN);
    free(out);
    free(shifted);
    free(bz);
    free(elf);
}

static void test_bad_headers_rejected(void **state)
{
    unsigned char *elf;
    size_t bz_len;
    unsigned char *bz = make_good(FMT_XZ, &elf, &bz_len);

    (void)state;
    expect_reject(bz, 0x24f, NU_EINVAL, "too short");

    bz[0x1fe] = 0;
    expect_reject(bz, bz_len, NU_EINVAL, "not an x86 bzImage");
    bz[0x1fe] = 0x55;

    bz[0x202] = 'X';
    expect_reject(bz, bz_len, NU_EINVAL, "not an x86 bzImage");
    bz[0x202] = 'H';

    put16(bz + 0x206, 0x0207);
    expect_reject(bz, bz_len, NU_EINVAL, "boot protocol 2.07");
    put16(bz + 0x206, 0x020f);

    put32(bz + 0x248, 0xfffffff0u);
    expect_reject(bz, bz_len, NU_EINVAL, "outside");
    put32(bz + 0x248, PAYLOAD_OFFSET);

    put32(bz + 0x24c, 0xffffffffu);
    expect_reject(bz, bz_len, NU_EINVAL, "outside");
    put32(bz + 0x24c, 0);
    expect_reject(bz, bz_len, NU_EINVAL, "outside");

    /* The file cut inside the payload. */
    expect_reject(bz, PM_OFFSET + PAYLOAD_OFFSET + 10, NU_EINVAL, "outside");
    free(bz);
    free(elf);
}

static void test_other_formats_named(void **state)
{
    static const struct {
        const char *magic;
        size_t len;
        int rc;
        const char *want;
    } cases[] = {
        { "BZh91AY&SY", 10, NU_ENOTSUP, "bzip2 payloads" },
        { "\x89LZO\0\r\n\x1a\n", 9, NU_ENOTSUP, "lzo payloads" },
        { "\x02\x21\x4c\x18\0\0\0\0", 8, NU_ENOTSUP, "lz4 payloads" },
        { "\x5d\0\0\x80\0\xff\xff\xff", 8, NU_ENOTSUP, "lzma payloads" },
        { "\xde\xad\xbe\xef\0\0\0\0", 8, NU_ENOTSUP, "de ad be ef" },
    };

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t bz_len;
        unsigned char *bz = make_bzimage((const unsigned char *)
                                         cases[i].magic, cases[i].len,
                                         &bz_len);

        expect_reject(bz, bz_len, cases[i].rc, cases[i].want);
        free(bz);
    }
}

static void test_truncated_payload_rejected(void **state)
{
    static const struct {
        fmt_t fmt;
        const char *want;
    } cases[] = {
        { FMT_XZ, "xz payload is corrupt" },
        { FMT_GZIP, "gzip payload is corrupt" },
        { FMT_ZSTD, "zstd payload is corrupt" },
    };

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        unsigned char *elf = make_elf(ELFCLASS64, EM_X86_64);
        size_t len, bz_len;
        unsigned char *payload = compress_payload(cases[i].fmt, elf,
                                                  ELF_LEN, &len);
        /* payload_length covers only the first half of the stream. */
        unsigned char *bz = make_bzimage(payload, len / 2, &bz_len);

        expect_reject(bz, bz_len, NU_EINVAL, cases[i].want);
        free(bz);
        free(payload);
        free(elf);
    }
}

static void test_corrupt_payload_rejected(void **state)
{
    unsigned char *elf;
    size_t bz_len;
    unsigned char *bz = make_good(FMT_GZIP, &elf, &bz_len);

    (void)state;
    /* Flip bytes in the deflate data so the CRC or the codes fail. */
    for (size_t i = 20; i < 40; i++)
        bz[PM_OFFSET + PAYLOAD_OFFSET + i] ^= 0x5a;
    expect_reject(bz, bz_len, NU_EINVAL, "gzip payload is corrupt");
    free(bz);
    free(elf);
}

static void test_non_x86_64_elf_rejected(void **state)
{
    static const struct {
        unsigned char elf_class;
        uint16_t machine;
    } cases[] = {
        { ELFCLASS32, EM_X86_64 },
        { ELFCLASS64, EM_AARCH64 },
        { 0, 0 },   /* not ELF: the magic is cleared below */
    };

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        unsigned char *elf = make_elf(cases[i].elf_class, cases[i].machine);
        size_t len, bz_len;
        unsigned char *payload, *bz;

        if (cases[i].elf_class == 0)
            elf[0] = 'M';
        payload = compress_payload(FMT_XZ, elf, ELF_LEN, &len);
        bz = make_bzimage(payload, len, &bz_len);
        expect_reject(bz, bz_len, NU_EINVAL, "not an ELF64 x86-64 file");
        free(bz);
        free(payload);
        free(elf);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_xz_payload),
        cmocka_unit_test(test_gzip_payload),
        cmocka_unit_test(test_zstd_payload),
        cmocka_unit_test(test_setup_sects_zero_means_four),
        cmocka_unit_test(test_bad_headers_rejected),
        cmocka_unit_test(test_other_formats_named),
        cmocka_unit_test(test_truncated_payload_rejected),
        cmocka_unit_test(test_corrupt_payload_rejected),
        cmocka_unit_test(test_non_x86_64_elf_rejected),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
