/*
 * test_identity_rotation.c - SVID directories: atomic install, the reader
 * protocol and rotation at half-life.
 *
 * A rotator keeps a 4-second SVID fresh (so it rotates every 2 seconds)
 * while a reader thread reads the directory in a loop and checks that the
 * key always belongs to the certificate it read with it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "nucleus/identity.h"

#define POD "spiffe://nucleus.local/ns/default/pod/rot"

static char g_root[64];
static nu_ca_t *g_ca;

static int setup_ca(void **state)
{
    char dir[128];
    nu_err_t err;

    (void)state;
    snprintf(g_root, sizeof g_root, "/tmp/nu-test-rotation-XXXXXX");
    if (mkdtemp(g_root) == NULL)
        return -1;
    snprintf(dir, sizeof dir, "%s/ca", g_root);
    if (nu_ca_create(dir, NULL, 0, &err) != NU_OK ||
        nu_ca_load(dir, &g_ca, &err) != NU_OK) {
        print_error("%s\n", err.msg);
        return -1;
    }
    return 0;
}

static int teardown_ca(void **state)
{
    char cmd[128];

    (void)state;
    nu_ca_free(g_ca);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_root);
    return system(cmd) == 0 ? 0 : -1;
}

/* Read the directory once; returns 1 when key and certificate match, 0 when
 * they do not, -1 when reading or parsing failed. */
static int read_pair_matches(const char *path, char *serial, size_t size)
{
    char *cert = NULL, *key = NULL, *bundle = NULL;
    mbedtls_x509_crt chain;
    mbedtls_pk_context pk;
    int result = -1;

    mbedtls_x509_crt_init(&chain);
    mbedtls_pk_init(&pk);
    if (nu_svid_read_dir(path, &cert, &key, &bundle, NULL) == NU_OK &&
        nu_x509_parse_certs(cert, strlen(cert), &chain, NULL) == 1 &&
        nu_x509_parse_key(key, strlen(key), &pk, NULL) == NU_OK) {
        result = nu_svid_check_key(&chain, &pk, NULL) == NU_OK;
        if (serial != NULL)
            mbedtls_x509_serial_gets(serial, size, &chain.serial);
    }
    mbedtls_pk_free(&pk);
    mbedtls_x509_crt_free(&chain);
    free(cert);
    free(key);
    free(bundle);
    return result;
}

static void test_rotation_install_swaps_generations(void **state)
{
    char path[128], link[64], old_dir[160];
    struct stat st;
    nu_svid_t svid;
    ssize_t n;

    (void)state;
    snprintf(path, sizeof path, "%s/install/svid", g_root);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(nu_ca_issue(g_ca, POD, 60, &svid, NULL), NU_OK);
        assert_int_equal(nu_svid_install(path, &svid, NULL), NU_OK);
        nu_svid_free(&svid);
        assert_int_equal(read_pair_matches(path, NULL, 0), 1);
    }

    n = readlink(path, link, sizeof link - 1);
    assert_true(n > 0);
    link[n] = '\0';
    assert_string_equal(link, ".svid.3");

    /* Generation 2 stays for readers that opened it; 1 is gone. */
    snprintf(old_dir, sizeof old_dir, "%s/install/.svid.2", g_root);
    assert_int_equal(stat(old_dir, &st), 0);
    snprintf(old_dir, sizeof old_dir, "%s/install/.svid.1", g_root);
    assert_int_not_equal(stat(old_dir, &st), 0);

    snprintf(old_dir, sizeof old_dir, "%s/svid.key", path);
    assert_int_equal(stat(old_dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
}

static void test_rotation_install_rejects_real_directory(void **state)
{
    char path[128];
    nu_svid_t svid;
    nu_err_t err;

    (void)state;
    snprintf(path, sizeof path, "%s/plain", g_root);
    assert_int_equal(mkdir(path, 0700), 0);
    assert_int_equal(nu_ca_issue(g_ca, POD, 60, &svid, NULL), NU_OK);
    assert_int_equal(nu_svid_install(path, &svid, &err), NU_EEXIST);
    assert_non_null(strstr(err.msg, "not a link made by nucleus"));

    /* A plain directory is what nu_svid_write_dir is for. */
    assert_int_equal(nu_svid_write_dir(path, &svid, &err), NU_OK);
    assert_int_equal(read_pair_matches(path, NULL, 0), 1);
    nu_svid_free(&svid);
}

typedef struct reader {
    const char *path;
    volatile int stop;
    long reads;
    long mismatches;
    long failures;
    char first_serial[64];
    int serials_seen;
    char last_serial[64];
} reader_t;

static void *reader_main(void *arg)
{
    reader_t *r = arg;

    while (!r->stop) {
        char serial[64] = "";
        int ok = read_pair_matches(r->path, serial, sizeof serial);

        r->reads++;
        if (ok == 0)
            r->mismatches++;
        if (ok < 0)
            r->failures++;
        if (ok == 1 && strcmp(serial, r->last_serial) != 0) {
            r->serials_seen++;
            snprintf(r->last_serial, sizeof r->last_serial, "%s", serial);
        }
    }
    return NULL;
}

static void test_rotation_thread_keeps_pairs_consistent(void **state)
{
    char path[128];
    nu_svid_rotator_t *rot = NULL;
    reader_t reader = { 0 };
    pthread_t thread;
    nu_err_t err;

    (void)state;
    snprintf(path, sizeof path, "%s/rotate/svid", g_root);
    assert_int_equal(nu_svid_rotator_new(g_ca, POD, 4, path, &rot, &err), NU_OK);
    assert_int_equal(nu_svid_rotator_start_thread(rot, &err), NU_OK);
    assert_int_equal(nu_svid_rotator_generation(rot), 1);

    /* Due at half of the 4 s lifetime. */
    assert_true(nu_svid_rotator_delay_ms(rot) <= 2000);
    assert_true(nu_svid_rotator_delay_ms(rot) >= 1000);

    reader.path = path;
    pthread_create(&thread, NULL, reader_main, &reader);
    usleep(5500 * 1000);
    reader.stop = 1;
    pthread_join(thread, NULL);

    print_message("rotations %llu, reads %ld, serials seen %d\n",
                  (unsigned long long)nu_svid_rotator_generation(rot),
                  reader.reads, reader.serials_seen);
    assert_true(nu_svid_rotator_generation(rot) >= 3);
    assert_true(reader.reads > 50);
    assert_int_equal(reader.mismatches, 0);
    assert_int_equal(reader.failures, 0);
    assert_true(reader.serials_seen >= 3);
    nu_svid_rotator_free(rot);
}

static void stop_loop(uv_timer_t *timer)
{
    uv_stop(timer->loop);
}

static void test_rotation_runs_on_libuv_loop(void **state)
{
    char path[128];
    nu_svid_rotator_t *rot = NULL;
    uv_timer_t stopper;
    uv_loop_t loop;
    nu_err_t err;

    (void)state;
    snprintf(path, sizeof path, "%s/uv/svid", g_root);
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(nu_svid_rotator_new(g_ca, POD, 2, path, &rot, &err), NU_OK);
    assert_int_equal(nu_svid_rotator_start_uv(rot, &loop, &err), NU_OK);

    uv_timer_init(&loop, &stopper);
    uv_timer_start(&stopper, stop_loop, 2600, 0);
    uv_run(&loop, UV_RUN_DEFAULT);

    /* 2 s lifetime: rotations at start, ~1 s and ~2 s. */
    assert_true(nu_svid_rotator_generation(rot) >= 3);
    assert_int_equal(read_pair_matches(path, NULL, 0), 1);

    nu_svid_rotator_free(rot);
    uv_close((uv_handle_t *)&stopper, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rotation_install_swaps_generations),
        cmocka_unit_test(test_rotation_install_rejects_real_directory),
        cmocka_unit_test(test_rotation_thread_keeps_pairs_consistent),
        cmocka_unit_test(test_rotation_runs_on_libuv_loop),
    };

    return cmocka_run_group_tests(tests, setup_ca, teardown_ca);
}
