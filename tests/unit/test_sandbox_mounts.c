/*
 * test_sandbox_mounts.c - the table of a pod's file systems
 * (sandbox_mounts.c) and the oci tier's config.json derived from it.  The
 * ns tier mounts the same table; tests/integration/sandbox_escape.sh and
 * test_oci_escape.c check both pods from the inside.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "nucleus/oci.h"
#include "sandbox_mounts.h"

static char workspace[64];

static int make_workspace(void **state)
{
    char path[128];

    (void)state;
    snprintf(workspace, sizeof workspace, "/tmp/nu-mountstest-XXXXXX");
    if (mkdtemp(workspace) == NULL)
        return -1;
    snprintf(path, sizeof path, "%s/secret", workspace);
    return mkdir(path, 0755);
}

static int remove_workspace(void **state)
{
    char cmd[128];

    (void)state;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", workspace);
    return system(cmd) == 0 ? 0 : -1;
}

static json_t *oci_config(void)
{
    static const char *block[] = { "secret", NULL };
    nu_oci_bundle_t bundle = { .init_source = "/proc/self/exe" };
    nu_sandbox_opts_t opts;
    nu_err_t err = { 0 };
    json_t *config = NULL;

    nu_sandbox_opts_init(&opts);
    opts.workspace = workspace;
    opts.block_paths = block;
    opts.limits.tmp_bytes = 1 << 20;
    opts.limits.run_bytes = 1 << 19;
    assert_int_equal(nu_oci_config(&opts, &bundle, &config, &err), NU_OK);
    return config;
}

static const json_t *find_mount(const json_t *config, const char *dest)
{
    const json_t *mounts = json_object_get(config, "mounts");
    size_t i;
    json_t *m;

    json_array_foreach(mounts, i, m)
        if (strcmp(json_string_value(json_object_get(m, "destination")),
                   dest) == 0)
            return m;
    return NULL;
}

static bool has_string(const json_t *array, const char *value)
{
    size_t i;
    json_t *v;

    json_array_foreach(array, i, v)
        if (json_is_string(v) && strcmp(json_string_value(v), value) == 0)
            return true;
    return false;
}

/* Check that the config's mount at dest is file system m with the pod's
 * limits. */
static void assert_mount_is(const json_t *config, const char *dest,
                            const nu__mount_t *m)
{
    const nu_sandbox_limits_t limits = { .tmp_bytes = 1 << 20,
                                         .run_bytes = 1 << 19 };
    const json_t *mount = find_mount(config, dest);
    const json_t *options;
    char data[160];
    char *save = NULL;

    assert_non_null(mount);
    options = json_object_get(mount, "options");
    assert_string_equal(json_string_value(json_object_get(mount, "type")),
                        m->type);
    assert_int_equal(has_string(options, "ro"), (m->flags & MS_RDONLY) != 0);
    assert_int_equal(has_string(options, "nosuid"),
                     (m->flags & MS_NOSUID) != 0);
    assert_int_equal(has_string(options, "nodev"),
                     (m->flags & MS_NODEV) != 0);
    assert_int_equal(has_string(options, "noexec"),
                     (m->flags & MS_NOEXEC) != 0);
    assert_int_equal(nu__mount_data(m, &limits, data, sizeof data), 0);
    for (char *opt = strtok_r(data, ",", &save); opt != NULL;
         opt = strtok_r(NULL, ",", &save))
        assert_true(has_string(options, opt));
}

static void test_mount_data_sizes(void **state)
{
    const nu_sandbox_limits_t limits = { .tmp_bytes = 4096,
                                         .run_bytes = 2048 };
    const nu__mount_t tmp = { "/tmp", "tmpfs", 0, "mode=1777",
                              NU__MOUNT_SIZE_TMP };
    const nu__mount_t run = { "/run", "tmpfs", 0, "", NU__MOUNT_SIZE_RUN };
    const nu__mount_t dev = { "/dev", "tmpfs", 0, "size=64k,mode=0755",
                              NU__MOUNT_SIZE_NONE };
    char out[64];
    char tiny[8];

    (void)state;
    assert_int_equal(nu__mount_data(&tmp, &limits, out, sizeof out), 0);
    assert_string_equal(out, "mode=1777,size=4096");
    assert_int_equal(nu__mount_data(&run, &limits, out, sizeof out), 0);
    assert_string_equal(out, "size=2048");
    assert_int_equal(nu__mount_data(&dev, NULL, out, sizeof out), 0);
    assert_string_equal(out, "size=64k,mode=0755");
    assert_int_equal(nu__mount_data(&tmp, &limits, tiny, sizeof tiny), -1);
}

static void test_table_parents_first(void **state)
{
    (void)state;
    for (size_t i = 0; nu__pod_mounts[i].target != NULL; i++)
        for (size_t j = i + 1; nu__pod_mounts[j].target != NULL; j++) {
            size_t len = strlen(nu__pod_mounts[j].target);

            /* A later entry is never the parent of an earlier one. */
            assert_false(strncmp(nu__pod_mounts[i].target,
                                 nu__pod_mounts[j].target, len) == 0 &&
                         nu__pod_mounts[i].target[len] == '/');
        }
}

static void test_oci_mounts_follow_table(void **state)
{
    json_t *config = oci_config();
    const nu__mount_t *run = NULL;

    (void)state;
    for (const nu__mount_t *m = nu__pod_mounts; m->target != NULL; m++) {
        assert_mount_is(config, m->target, m);
        if (strcmp(m->target, "/run") == 0)
            run = m;
    }
    assert_non_null(run);
    assert_mount_is(config, "/run/nucleus", run);
    json_decref(config);
}

static void test_oci_hidden_dir_follows_table(void **state)
{
    json_t *config = oci_config();
    char dest[128];

    (void)state;
    snprintf(dest, sizeof dest, "/workspace/secret");
    assert_mount_is(config, dest, &nu__pod_hidden_dir);
    assert_true(has_string(json_object_get(find_mount(config, dest),
                                           "options"), "mode=000"));
    json_decref(config);
}

static void test_oci_proc_masks_follow_table(void **state)
{
    json_t *config = oci_config();
    const json_t *linux_obj = json_object_get(config, "linux");
    const json_t *masked = json_object_get(linux_obj, "maskedPaths");
    const json_t *readonly = json_object_get(linux_obj, "readonlyPaths");
    char path[64];

    (void)state;
    for (size_t i = 0; nu__pod_proc_masks[i].name != NULL; i++) {
        const nu__proc_mask_t *mask = &nu__pod_proc_masks[i];

        snprintf(path, sizeof path, "/proc/%s", mask->name);
        /* Runtimes mask with a writable /dev/null, so an entry that must
         * reject writes is read-only instead. */
        assert_int_equal(has_string(readonly, path),
                         (mask->cover & NU__PROC_READONLY) != 0);
        assert_int_equal(has_string(masked, path),
                         mask->cover == NU__PROC_HIDDEN);
    }
    assert_true(has_string(readonly, "/proc/sysrq-trigger"));
    assert_true(has_string(masked, "/proc/kcore"));
    json_decref(config);
}

/* Every device node of the table is one that runtimes create by default,
 * so config.json lists no extra devices. */
static void test_oci_default_devices(void **state)
{
    json_t *config = oci_config();

    (void)state;
    assert_null(json_object_get(json_object_get(config, "linux"),
                                "devices"));
    json_decref(config);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mount_data_sizes),
        cmocka_unit_test(test_table_parents_first),
        cmocka_unit_test(test_oci_mounts_follow_table),
        cmocka_unit_test(test_oci_hidden_dir_follows_table),
        cmocka_unit_test(test_oci_proc_masks_follow_table),
        cmocka_unit_test(test_oci_default_devices),
    };

    return cmocka_run_group_tests(tests, make_workspace, remove_workspace);
}
