/*
 * test_vm_masks.c - the masks that the vm tier lays over the workspace
 * that QEMU's 9p server exports (sandbox_vm_masks.c), without QEMU: the
 * checks of the mask lists, and the masks themselves on a real
 * directory in a private mount namespace.  The mount tests skip with a
 * printed reason when the process cannot create a mount namespace (not
 * root).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "nucleus/sandbox.h"
#include "sandbox_vm_internal.h"

static struct {
    char ws[64];
    char empty[80];
    char skip_reason[256];
} g;

static void write_file(const char *rel, const char *text)
{
    char path[256];
    FILE *fp;

    snprintf(path, sizeof path, "%s/%s", g.ws, rel);
    fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static void make_dir(const char *rel)
{
    char path[256];

    snprintf(path, sizeof path, "%s/%s", g.ws, rel);
    assert_int_equal(mkdir(path, 0755), 0);
}

/* The masks go into a private mount namespace, on a tmpfs workspace, so
 * nothing leaks into the host's mounts. */
static int group_setup(void **state)
{
    (void)state;
    snprintf(g.ws, sizeof g.ws, "/tmp/nu-vmmasks-XXXXXX");
    if (mkdtemp(g.ws) == NULL)
        return -1;
    if (unshare(CLONE_NEWNS) != 0) {
        snprintf(g.skip_reason, sizeof g.skip_reason, "cannot create a "
                 "mount namespace (%s); the mask tests need root",
                 strerror(errno));
        return 0;
    }
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
        mount("tmpfs", g.ws, "tmpfs", 0, "size=1m") != 0)
        return -1;
    snprintf(g.empty, sizeof g.empty, "%s/.empty", g.ws);
    write_file(".empty", "");
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    umount2(g.ws, MNT_DETACH);
    return rmdir(g.ws) == 0 ? 0 : -1;
}

static void skip_unless_ready(void)
{
    if (g.skip_reason[0] != '\0') {
        printf("SKIP: %s\n", g.skip_reason);
        skip();
    }
}

/* Each bad entry is rejected with a message naming it. */
static void test_check_masks_rejects_escapes(void **state)
{
    static const char *const bad[] = { "/etc/passwd", "..", "../x", "a/../b",
                                       "a/..", "" };
    nu_sandbox_opts_t opts;

    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *block[] = { ".env", bad[i], NULL };
        nu_err_t err = { 0 };

        nu_sandbox_opts_init(&opts);
        opts.block_paths = block;
        assert_int_equal(nu__vm_check_masks(&opts, &err), NU_EINVAL);
        assert_non_null(strstr(err.msg, "blocked paths"));
        if (bad[i][0] != '\0')
            assert_non_null(strstr(err.msg, bad[i]));

        nu_sandbox_opts_init(&opts);
        opts.write_block_paths = block;
        assert_int_equal(nu__vm_check_masks(&opts, &err), NU_EINVAL);
        assert_non_null(strstr(err.msg, "write-blocked paths"));
    }
}

static void test_check_masks_accepts_relative(void **state)
{
    static const char *const block[] = { ".env", "sub/.env.local",
                                         "a..b", "..hidden", NULL };
    nu_sandbox_opts_t opts;
    nu_err_t err = { 0 };

    (void)state;
    nu_sandbox_opts_init(&opts);
    opts.block_paths = block;
    opts.write_block_paths = block;
    assert_int_equal(nu__vm_check_masks(&opts, &err), NU_OK);
    nu_sandbox_opts_init(&opts);
    assert_int_equal(nu__vm_check_masks(&opts, &err), NU_OK);
}

static void test_check_masks_limits_count(void **state)
{
    const char **block = calloc(NU__VM_MAX_MASKS + 2, sizeof *block);
    nu_sandbox_opts_t opts;
    nu_err_t err = { 0 };

    (void)state;
    assert_non_null(block);
    for (size_t i = 0; i <= NU__VM_MAX_MASKS; i++)
        block[i] = "x";
    nu_sandbox_opts_init(&opts);
    opts.block_paths = block;
    assert_int_equal(nu__vm_check_masks(&opts, &err), NU_ELIMIT);
    block[NU__VM_MAX_MASKS] = NULL;
    assert_int_equal(nu__vm_check_masks(&opts, &err), NU_OK);
    free(block);
}

/* Read rel below the workspace into out; returns the errno of the open,
 * or 0. */
static int read_rel(const char *rel, char *out, size_t size)
{
    char path[256];
    ssize_t n;
    int fd;

    snprintf(path, sizeof path, "%s/%s", g.ws, rel);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    n = read(fd, out, size - 1);
    close(fd);
    out[n > 0 ? n : 0] = '\0';
    return 0;
}

/* Open rel below the workspace for appending; returns the errno, or 0. */
static int append_rel(const char *rel)
{
    char path[256];
    int fd;

    snprintf(path, sizeof path, "%s/%s", g.ws, rel);
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return errno;
    close(fd);
    return 0;
}

static void test_lay_masks_covers_paths(void **state)
{
    static const char *const block[] = { ".env", "keys", "sub/.env.local",
                                         "missing", "link", NULL };
    static const char *const write_block[] = { ".bashrc", "hooks", NULL };
    const char *failed = "unset";
    char text[64];
    char path[256];
    int ws_fd, empty_fd;
    DIR *dir;

    (void)state;
    skip_unless_ready();
    write_file(".env", "API_KEY=secret\n");
    make_dir("keys");
    write_file("keys/id_rsa", "key\n");
    make_dir("sub");
    write_file("sub/.env.local", "deep\n");
    write_file(".bashrc", "# rc\n");
    make_dir("hooks");
    write_file("target", "reachable\n");
    snprintf(path, sizeof path, "%s/link", g.ws);
    assert_int_equal(symlink("target", path), 0);

    ws_fd = open(g.ws, O_PATH | O_DIRECTORY | O_CLOEXEC);
    empty_fd = open(g.empty, O_PATH | O_CLOEXEC);
    assert_true(ws_fd >= 0);
    assert_true(empty_fd >= 0);
    assert_int_equal(nu__vm_lay_masks(ws_fd, empty_fd, block, write_block,
                                      &failed), 0);
    assert_null(failed);
    close(ws_fd);
    close(empty_fd);

    assert_int_equal(read_rel(".env", text, sizeof text), 0);
    assert_string_equal(text, "");
    assert_int_equal(append_rel(".env"), EROFS);
    assert_int_equal(read_rel("sub/.env.local", text, sizeof text), 0);
    assert_string_equal(text, "");
    assert_int_equal(read_rel("keys/id_rsa", text, sizeof text), ENOENT);
    assert_int_equal(append_rel("keys/new"), EROFS);

    assert_int_equal(read_rel(".bashrc", text, sizeof text), 0);
    assert_string_equal(text, "# rc\n");
    assert_int_equal(append_rel(".bashrc"), EROFS);
    assert_int_equal(append_rel("hooks/pre-commit"), EROFS);

    /* A blocked symbolic link is covered itself, and its target keeps
     * its contents under its own name. */
    assert_int_equal(read_rel("link", text, sizeof text), 0);
    assert_string_equal(text, "");
    assert_int_equal(read_rel("target", text, sizeof text), 0);
    assert_string_equal(text, "reachable\n");
    assert_int_equal(append_rel("other.txt"), 0);

    snprintf(path, sizeof path, "%s/keys", g.ws);
    dir = opendir(path);
    assert_non_null(dir);
    closedir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_masks_rejects_escapes),
        cmocka_unit_test(test_check_masks_accepts_relative),
        cmocka_unit_test(test_check_masks_limits_count),
        cmocka_unit_test(test_lay_masks_covers_paths),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
