/*
 * test_resolve.c - path resolution beneath the workspace root.
 *
 * Each kind of escape is its own case, and every attempt must fail with
 * NU_EDENIED.
 * Each case runs twice: with openat2 and with the openat(2) walk used on
 * kernels without it.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "executor_int.h"
#include "nucleus/executor.h"

typedef struct fixture {
    char top[64];     /* temporary directory holding root/ and outside/ */
    char root[96];
    int root_fd;
} fixture_t;

static void make_file(const char *dir, const char *rel, const char *content)
{
    char path[PATH_MAX];
    FILE *f;

    snprintf(path, sizeof path, "%s/%s", dir, rel);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(content, f);
    fclose(f);
}

static void make_link(const char *dir, const char *rel, const char *target)
{
    char path[PATH_MAX];

    snprintf(path, sizeof path, "%s/%s", dir, rel);
    assert_int_equal(symlink(target, path), 0);
}

static void make_dir(const char *dir, const char *rel)
{
    char path[PATH_MAX];

    snprintf(path, sizeof path, "%s/%s", dir, rel);
    assert_int_equal(mkdir(path, 0755), 0);
}

static int setup(void **state, int use_openat2)
{
    fixture_t *f = calloc(1, sizeof *f);
    char outside[128];

    assert_non_null(f);
    strcpy(f->top, "/tmp/nu-resolve-XXXXXX");
    assert_non_null(mkdtemp(f->top));
    snprintf(f->root, sizeof f->root, "%s/root", f->top);
    snprintf(outside, sizeof outside, "%s/outside", f->top);
    assert_int_equal(mkdir(f->root, 0755), 0);
    assert_int_equal(mkdir(outside, 0755), 0);
    make_file(outside, "secret", "outside secret\n");

    make_dir(f->root, "a");
    make_file(f->root, "a/b.txt", "b\n");
    make_file(f->root, ".env", "TOKEN=x\n");
    make_link(f->root, "notes.txt", ".env");
    make_link(f->root, "passwd", "/etc/passwd");
    make_link(f->root, "up", "../../..");
    make_link(f->root, "l1", "l2");
    make_link(f->root, "l2", "l3");
    make_link(f->root, "l3", "a/b.txt");
    make_link(f->root, "c1", "c2");
    make_link(f->root, "c2", "/etc/hostname");
    make_link(f->root, "loop1", "loop2");
    make_link(f->root, "loop2", "loop1");
    make_link(f->root, "self", "self");
    make_link(f->root, "proc", "/proc/self/root");
    make_link(f->root, "outdir", outside);
    make_link(f->root, "outrel", "../outside");
    make_link(f->root, "lnk", "a");
    make_link(f->root, "abs", "/workspace/a/b.txt");
    make_link(f->root, "dangling", "newfile.txt");

    f->root_fd = open(f->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    assert_true(f->root_fd >= 0);
    nu__resolve_use_openat2(use_openat2);
    *state = f;
    return 0;
}

static int setup_openat2(void **state)
{
    return setup(state, 1);
}

static int setup_fallback(void **state)
{
    return setup(state, 0);
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    char cmd[160];

    close(f->root_fd);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->top);
    assert_int_equal(system(cmd), 0);
    free(f);
    nu__resolve_use_openat2(1);
    return 0;
}

/* Resolve path with nu_resolve_path and compare the relative result. */
static void expect_rel(fixture_t *f, const char *path, const char *rel)
{
    nu_err_t err = { 0 };
    char *out = NULL;
    int rc = nu_resolve_path(f->root_fd, "/workspace", path, &out, &err);

    if (rc != NU_OK)
        fail_msg("resolving '%s' failed: %s", path, err.msg);
    assert_string_equal(out, rel);
    free(out);
}

static void expect_code(fixture_t *f, const char *path, int flags, int code)
{
    nu_err_t err = { 0 };
    nu_resolved_t r;
    int rc = nu_resolve(f->root_fd, "/workspace", path, flags, &r, &err);

    if (rc == NU_OK) {
        nu_resolved_free(&r);
        fail_msg("resolving '%s' succeeded, expected %s", path, nu_err_name(code));
    }
    assert_int_equal(rc, code);
    assert_int_equal(err.code, code);
    assert_true(strlen(err.msg) > 0);
}

static void expect_denied(fixture_t *f, const char *path)
{
    expect_code(f, path, NU_RESOLVE_FOLLOW_FINAL, NU_EDENIED);
    expect_code(f, path, NU_RESOLVE_FOLLOW_FINAL | NU_RESOLVE_MAY_NOT_EXIST, NU_EDENIED);
}

static void test_resolve_plain_paths(void **state)
{
    fixture_t *f = *state;

    expect_rel(f, "a/b.txt", "a/b.txt");
    expect_rel(f, "./a//b.txt", "a/b.txt");
    expect_rel(f, "a/../a/./b.txt", "a/b.txt");
    expect_rel(f, ".", ".");
    expect_rel(f, "a/..", ".");
    expect_rel(f, "a/", "a");
}

static void test_resolve_absolute_inside(void **state)
{
    fixture_t *f = *state;

    expect_rel(f, "/workspace/a/b.txt", "a/b.txt");
    expect_rel(f, "/workspace", ".");
    expect_rel(f, "/workspace/", ".");
}

static void test_resolve_follows_inside_links(void **state)
{
    fixture_t *f = *state;

    expect_rel(f, "notes.txt", ".env");
    expect_rel(f, "lnk/b.txt", "a/b.txt");
    expect_rel(f, "l1", "a/b.txt");
    expect_rel(f, "abs", "a/b.txt");
    expect_rel(f, "lnk/../.env", ".env");
}

static void test_resolve_missing_final(void **state)
{
    fixture_t *f = *state;
    nu_err_t err;
    nu_resolved_t r;

    expect_rel(f, "new.txt", "new.txt");
    expect_rel(f, "a/new.txt", "a/new.txt");
    expect_rel(f, "dangling", "newfile.txt");
    expect_code(f, "new.txt", NU_RESOLVE_FOLLOW_FINAL, NU_ENOENT);
    expect_code(f, "missing/new.txt", NU_RESOLVE_MAY_NOT_EXIST, NU_ENOENT);
    expect_code(f, "a/b.txt/c", NU_RESOLVE_MAY_NOT_EXIST, NU_ENOENT);
    expect_code(f, "a/b.txt/", NU_RESOLVE_FOLLOW_FINAL, NU_ENOENT);

    assert_int_equal(nu_resolve(f->root_fd, "/workspace", "new.txt",
                                NU_RESOLVE_MAY_NOT_EXIST, &r, &err), NU_OK);
    assert_false(r.exists);
    assert_string_equal(r.name, "new.txt");
    nu_resolved_free(&r);
}

static void test_resolve_final_link_unfollowed(void **state)
{
    fixture_t *f = *state;
    nu_err_t err;
    nu_resolved_t r;
    struct stat st;

    assert_int_equal(nu_resolve(f->root_fd, "/workspace", "passwd", 0, &r, &err), NU_OK);
    assert_string_equal(r.rel, "passwd");
    assert_int_equal(fstatat(r.dir_fd, r.name, &st, AT_SYMLINK_NOFOLLOW), 0);
    assert_true(S_ISLNK(st.st_mode));
    nu_resolved_free(&r);
}

static void test_resolve_mkdirs(void **state)
{
    fixture_t *f = *state;
    nu_err_t err;
    nu_resolved_t r;
    struct stat st;

    assert_int_equal(nu_resolve(f->root_fd, "/workspace", "x/y/z.txt",
                                NU_RESOLVE_MAY_NOT_EXIST | NU_RESOLVE_MKDIRS, &r, &err),
                     NU_OK);
    assert_string_equal(r.rel, "x/y/z.txt");
    assert_int_equal(fstatat(f->root_fd, "x/y", &st, 0), 0);
    assert_true(S_ISDIR(st.st_mode));
    nu_resolved_free(&r);

    /* Creating directories must not follow a link out of the root. */
    expect_code(f, "outdir/new/z.txt", NU_RESOLVE_MAY_NOT_EXIST | NU_RESOLVE_MKDIRS,
                NU_EDENIED);
}

static void test_resolve_dotdot_escape(void **state)
{
    expect_denied(*state, "..");
    expect_denied(*state, "../outside/secret");
    expect_denied(*state, "a/../../outside/secret");
    expect_denied(*state, "a/../..");
}

static void test_resolve_absolute_outside(void **state)
{
    expect_denied(*state, "/etc/passwd");
    expect_denied(*state, "/workspacex/a/b.txt");
    expect_denied(*state, "/");
    expect_denied(*state, "/workspace/../etc/passwd");
}

static void test_resolve_link_to_etc_passwd(void **state)
{
    expect_denied(*state, "passwd");
}

static void test_resolve_relative_link_escape(void **state)
{
    expect_denied(*state, "up");
    expect_denied(*state, "up/etc/passwd");
    expect_denied(*state, "outrel/secret");
}

static void test_resolve_link_chain_escape(void **state)
{
    expect_denied(*state, "c1");
}

static void test_resolve_link_loop(void **state)
{
    expect_denied(*state, "loop1");
    expect_denied(*state, "self");
    expect_denied(*state, "loop1/x");
}

static void test_resolve_proc_self_root(void **state)
{
    expect_denied(*state, "/proc/self/root/etc/passwd");
    expect_denied(*state, "proc/etc/passwd");
    expect_denied(*state, "proc");
}

static void test_resolve_dir_link_mid_path(void **state)
{
    expect_denied(*state, "outdir/secret");
    expect_denied(*state, "a/../outdir/secret");
    expect_denied(*state, "outdir/../outdir/secret");
}

static void test_resolve_invalid_paths(void **state)
{
    fixture_t *f = *state;
    char *long_path = malloc(5000);
    char long_name[300];

    assert_non_null(long_path);
    memset(long_path, 'a', 4999);
    long_path[4999] = '\0';
    memset(long_name, 'b', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';

    expect_code(f, "", NU_RESOLVE_MAY_NOT_EXIST, NU_EINVAL);
    expect_code(f, long_path, NU_RESOLVE_MAY_NOT_EXIST, NU_EINVAL);
    expect_code(f, long_name, NU_RESOLVE_MAY_NOT_EXIST, NU_EINVAL);
    free(long_path);
}

static void test_resolve_other_prefix(void **state)
{
    fixture_t *f = *state;
    nu_err_t err;
    char *out = NULL;

    assert_int_equal(nu_resolve_path(f->root_fd, "/home/agent/", "/home/agent/a/b.txt",
                                     &out, &err), NU_OK);
    assert_string_equal(out, "a/b.txt");
    free(out);
    assert_int_equal(nu_resolve_path(f->root_fd, "/home/agent", "/workspace/a/b.txt",
                                     &out, &err), NU_EDENIED);
    assert_null(out);
}

/* Property check: random paths built from ordinary names, "..", ".",
 * absolute prefixes and the links of the fixture either fail or resolve
 * to a directory inside the root, and their relative form has no "."
 * or ".." component. */
static void test_resolve_random_stays_inside(void **state)
{
    static const char *const parts[] = {
        "a", "b.txt", "..", ".", "", "lnk", "up", "outdir", "outrel", "notes.txt",
        "l1", "loop1", "proc", "abs", "passwd", "dangling", "missing", "/workspace",
        "/etc", "/proc/self/root",
    };
    fixture_t *f = *state;
    char root_real[PATH_MAX];
    unsigned int seed = 12345;

    assert_non_null(realpath(f->root, root_real));
    for (int i = 0; i < 5000; i++) {
        char path[256] = "", dir_real[PATH_MAX], fd_link[64];
        int n = 1 + (int)(rand_r(&seed) % 6);
        nu_resolved_t r;
        nu_err_t err;
        ssize_t len;

        for (int k = 0; k < n; k++) {
            const char *part = parts[rand_r(&seed) % (sizeof parts / sizeof parts[0])];
            if (k > 0 && part[0] != '/')
                strcat(path, "/");
            if (k == 0 || part[0] != '/')
                strcat(path, part);
        }
        if (path[0] == '\0')
            continue;

        if (nu_resolve(f->root_fd, "/workspace", path,
                       NU_RESOLVE_FOLLOW_FINAL | NU_RESOLVE_MAY_NOT_EXIST, &r, &err) != NU_OK)
            continue;

        snprintf(fd_link, sizeof fd_link, "/proc/self/fd/%d", r.dir_fd);
        len = readlink(fd_link, dir_real, sizeof dir_real - 1);
        assert_true(len > 0);
        dir_real[len] = '\0';
        if (strncmp(dir_real, root_real, strlen(root_real)) != 0 ||
            (dir_real[strlen(root_real)] != '\0' && dir_real[strlen(root_real)] != '/'))
            fail_msg("'%s' resolved into '%s', outside '%s'", path, dir_real, root_real);
        if (strcmp(r.rel, ".") != 0 &&
            (strstr(r.rel, "..") == r.rel || strstr(r.rel, "/../") != NULL ||
             strstr(r.rel, "./") == r.rel || strstr(r.rel, "/./") != NULL))
            fail_msg("'%s' resolved to unnormalized '%s'", path, r.rel);
        nu_resolved_free(&r);
    }
}

#define BOTH(t)                                                         \
    cmocka_unit_test_setup_teardown(t, setup_openat2, teardown),        \
    cmocka_unit_test_setup_teardown(t, setup_fallback, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        BOTH(test_resolve_plain_paths),
        BOTH(test_resolve_absolute_inside),
        BOTH(test_resolve_follows_inside_links),
        BOTH(test_resolve_missing_final),
        BOTH(test_resolve_final_link_unfollowed),
        BOTH(test_resolve_mkdirs),
        BOTH(test_resolve_dotdot_escape),
        BOTH(test_resolve_absolute_outside),
        BOTH(test_resolve_link_to_etc_passwd),
        BOTH(test_resolve_relative_link_escape),
        BOTH(test_resolve_link_chain_escape),
        BOTH(test_resolve_link_loop),
        BOTH(test_resolve_proc_self_root),
        BOTH(test_resolve_dir_link_mid_path),
        BOTH(test_resolve_invalid_paths),
        BOTH(test_resolve_other_prefix),
        BOTH(test_resolve_random_stays_inside),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
