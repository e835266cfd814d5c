/*
 * test_oci.c - config.json of the oci tier, parsed back and checked, and
 * oci pods run by crun and runc through the sandbox API.
 *
 * The test program links libnucleus, so it serves as the pod init.  The
 * pod tests need root (the runtimes run rootful here) and the runtime
 * binary; they skip with a message when either is missing.
 */
#include <dirent.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "nucleus/oci.h"
#include "nucleus/sandbox.h"

static char workspace[64];

static int make_workspace(void **state)
{
    FILE *fp;
    char path[128];

    (void)state;
    snprintf(workspace, sizeof workspace, "/tmp/nu-ocitest-XXXXXX");
    if (mkdtemp(workspace) == NULL)
        return -1;
    snprintf(path, sizeof path, "%s/secret", workspace);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/secret/key", workspace);
    fp = fopen(path, "w");
    if (fp == NULL)
        return -1;
    fputs("hidden\n", fp);
    fclose(fp);
    snprintf(path, sizeof path, "%s/.env", workspace);
    fp = fopen(path, "w");
    if (fp == NULL)
        return -1;
    fputs("TOKEN=1\n", fp);
    fclose(fp);
    snprintf(path, sizeof path, "%s/readme", workspace);
    fp = fopen(path, "w");
    if (fp == NULL)
        return -1;
    fputs("read only\n", fp);
    fclose(fp);
    return 0;
}

static int remove_workspace(void **state)
{
    char cmd[128];

    (void)state;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", workspace);
    return system(cmd) == 0 ? 0 : -1;
}

/* --- config.json ---------------------------------------------------- */

static json_t *config_for(const nu_sandbox_opts_t *opts, const char *cgroups)
{
    nu_oci_bundle_t bundle = { .init_source = "/proc/self/exe",
                               .cgroups_path = cgroups };
    nu_err_t err = { 0 };
    json_t *config = NULL;
    char *text;
    json_t *parsed;

    assert_int_equal(nu_oci_config(opts, &bundle, &config, &err), NU_OK);
    /* Parse the serialized form back, as the runtime reads it. */
    text = json_dumps(config, JSON_COMPACT);
    assert_non_null(text);
    json_decref(config);
    parsed = json_loads(text, 0, NULL);
    free(text);
    assert_non_null(parsed);
    return parsed;
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

static bool has_namespace(const json_t *config, const char *type)
{
    const json_t *ns = json_object_get(json_object_get(config, "linux"),
                                       "namespaces");
    size_t i;
    json_t *v;

    json_array_foreach(ns, i, v)
        if (strcmp(json_string_value(json_object_get(v, "type")), type) == 0)
            return true;
    return false;
}

static void test_config_namespaces(void **state)
{
    nu_sandbox_opts_t opts;
    json_t *config;

    (void)state;
    nu_sandbox_opts_init(&opts);
    opts.workspace = workspace;
    config = config_for(&opts, NULL);
    assert_string_equal(json_string_value(json_object_get(config,
                                                          "ociVersion")),
                        "1.0.2");
    assert_true(has_namespace(config, "pid"));
    assert_true(has_namespace(config, "network"));
    assert_true(has_namespace(config, "ipc"));
    assert_true(has_namespace(config, "uts"));
    assert_true(has_namespace(config, "mount"));
    assert_true(has_namespace(config, "cgroup"));
    assert_true(has_namespace(config, "user"));
    assert_non_null(json_object_get(json_object_get(config, "linux"),
                                    "uidMappings"));
    assert_string_equal(json_string_value(json_object_get(config,
                                                          "hostname")),
                        "nucleus");
    json_decref(config);

    if (geteuid() == 0) {
        opts.flags = NU_SANDBOX_NO_USERNS;
        config = config_for(&opts, NULL);
        assert_false(has_namespace(config, "user"));
        json_decref(config);
    }
}

static void test_config_mounts(void **state)
{
    const char *block[] = { ".env", "secret", "missing", NULL };
    const char *write_block[] = { "readme", NULL };
    nu_sandbox_opts_t opts;
    const json_t *m;
    json_t *config;
    char key[128];

    (void)state;
    nu_sandbox_opts_init(&opts);
    opts.workspace = workspace;
    opts.block_paths = block;
    opts.write_block_paths = write_block;
    config = config_for(&opts, NULL);

    assert_true(json_is_true(json_object_get(json_object_get(config, "root"),
                                             "readonly")));
    m = find_mount(config, "/workspace");
    assert_non_null(m);
    assert_string_equal(json_string_value(json_object_get(m, "source")),
                        workspace);
    assert_false(has_string(json_object_get(m, "options"), "ro"));

    m = find_mount(config, "/usr");
    assert_non_null(m);
    assert_true(has_string(json_object_get(m, "options"), "ro"));
    /* /bin is a symbolic link on merged-/usr systems: no mount then. */
    m = find_mount(config, "/bin");
    if (m != NULL)
        assert_true(has_string(json_object_get(m, "options"), "ro"));

    m = find_mount(config, "/workspace/.env");
    assert_non_null(m);
    assert_string_equal(json_string_value(json_object_get(m, "source")),
                        "/dev/null");
    m = find_mount(config, "/workspace/secret");
    assert_non_null(m);
    assert_string_equal(json_string_value(json_object_get(m, "type")),
                        "tmpfs");
    assert_true(has_string(json_object_get(m, "options"), "ro"));
    assert_null(find_mount(config, "/workspace/missing"));

    m = find_mount(config, "/workspace/readme");
    assert_non_null(m);
    snprintf(key, sizeof key, "%s/readme", workspace);
    assert_string_equal(json_string_value(json_object_get(m, "source")), key);
    assert_true(has_string(json_object_get(m, "options"), "ro"));

    m = find_mount(config, NU_OCI_INIT_PATH);
    assert_non_null(m);
    assert_false(has_string(json_object_get(m, "options"), "noexec"));
    assert_non_null(find_mount(config, "/tmp"));
    assert_non_null(find_mount(config, "/run"));
    assert_non_null(find_mount(config, "/run/nucleus"));
    assert_non_null(find_mount(config, "/proc"));
    assert_null(find_mount(config, "/sys"));
    assert_null(find_mount(config, "/etc/shadow"));
    json_decref(config);
}

static void test_config_process(void **state)
{
    nu_sandbox_opts_t opts;
    const json_t *process;
    const json_t *caps;
    const json_t *rlimits;
    json_t *config;
    const char *sets[] = { "bounding", "effective", "inheritable",
                           "permitted", "ambient" };
    bool nofile = false;
    bool fsize = false;
    bool nproc = false;
    size_t i;
    json_t *r;

    (void)state;
    nu_sandbox_opts_init(&opts);
    opts.workspace = workspace;
    opts.limits.open_files = 512;
    config = config_for(&opts, NULL);
    process = json_object_get(config, "process");

    assert_true(json_is_true(json_object_get(process, "noNewPrivileges")));
    assert_string_equal(json_string_value(json_array_get(
        json_object_get(process, "args"), 0)), NU_OCI_INIT_PATH);
    caps = json_object_get(process, "capabilities");
    assert_non_null(caps);
    for (i = 0; i < 5; i++) {
        assert_true(json_is_array(json_object_get(caps, sets[i])));
        assert_int_equal(json_array_size(json_object_get(caps, sets[i])), 0);
    }

    rlimits = json_object_get(process, "rlimits");
    json_array_foreach(rlimits, i, r) {
        const char *type = json_string_value(json_object_get(r, "type"));
        if (strcmp(type, "RLIMIT_NOFILE") == 0) {
            nofile = true;
            assert_int_equal(json_integer_value(json_object_get(r, "hard")),
                             512);
        }
        fsize |= strcmp(type, "RLIMIT_FSIZE") == 0;
        nproc |= strcmp(type, "RLIMIT_NPROC") == 0;
    }
    assert_true(nofile);
    assert_true(fsize);
    /* Without a cgroups path, RLIMIT_NPROC replaces pids.max. */
    assert_true(nproc);
    assert_null(json_object_get(json_object_get(config, "linux"),
                                "resources"));
    json_decref(config);
}

static void test_config_resources(void **state)
{
    nu_sandbox_opts_t opts;
    const json_t *res;
    json_t *config;

    (void)state;
    nu_sandbox_opts_init(&opts);
    opts.workspace = workspace;
    opts.limits.memory_bytes = 64 << 20;
    opts.limits.pids = 50;
    opts.limits.cpu_millis = 500;
    config = config_for(&opts, "/nucleus-oci/test");
    res = json_object_get(json_object_get(config, "linux"), "resources");
    assert_int_equal(json_integer_value(json_object_get(
        json_object_get(res, "memory"), "limit")), 64 << 20);
    assert_int_equal(json_integer_value(json_object_get(
        json_object_get(res, "pids"), "limit")), 50);
    assert_int_equal(json_integer_value(json_object_get(
        json_object_get(res, "cpu"), "quota")), 50000);
    assert_string_equal(json_string_value(json_object_get(
        json_object_get(config, "linux"), "cgroupsPath")),
        "/nucleus-oci/test");
    json_decref(config);
}

static void test_config_seccomp(void **state)
{
    nu_sandbox_opts_t opts;
    const json_t *seccomp;
    const json_t *rules;
    json_t *config;
    json_t *rule;
    bool mount_denied = false;
    bool clone3_enosys = false;
    size_t clone_rules = 0;
    size_t personality_rules = 0;
    size_t i;

    (void)state;
    nu_sandbox_opts_init(&opts);
    opts.workspace = workspace;
    config = config_for(&opts, NULL);
    seccomp = json_object_get(json_object_get(config, "linux"), "seccomp");
    assert_non_null(seccomp);
    assert_string_equal(json_string_value(json_object_get(seccomp,
                                                          "defaultAction")),
                        "SCMP_ACT_ALLOW");
    assert_int_equal(json_array_size(json_object_get(seccomp,
                                                     "architectures")), 1);

    rules = json_object_get(seccomp, "syscalls");
    json_array_foreach(rules, i, rule) {
        const json_t *names = json_object_get(rule, "names");
        int errnum = (int)json_integer_value(json_object_get(rule,
                                                             "errnoRet"));

        assert_string_equal(json_string_value(json_object_get(rule,
                                                              "action")),
                            "SCMP_ACT_ERRNO");
        mount_denied |= has_string(names, "mount") && errnum == 1;
        mount_denied &= !has_string(names, "read");
        clone3_enosys |= has_string(names, "clone3") && errnum == 38;
        clone_rules += has_string(names, "clone");
        personality_rules += has_string(names, "personality");
    }
    assert_true(mount_denied);
    assert_true(clone3_enosys);
    assert_int_equal(clone_rules, 8);
    assert_int_equal(personality_rules, 32);
    json_decref(config);
}

static void test_config_rejects_bad_options(void **state)
{
    const char *escape[] = { "../etc", NULL };
    nu_oci_bundle_t bundle = { .init_source = "/proc/self/exe" };
    nu_sandbox_opts_t opts;
    nu_err_t err = { 0 };
    json_t *config = NULL;

    (void)state;
    nu_sandbox_opts_init(&opts);
    opts.workspace = "relative/dir";
    assert_int_equal(nu_oci_config(&opts, &bundle, &config, &err),
                     NU_EINVAL);
    assert_null(config);
    assert_non_null(strstr(err.msg, "relative/dir"));

    opts.workspace = workspace;
    opts.block_paths = escape;
    assert_int_equal(nu_oci_config(&opts, &bundle, &config, &err),
                     NU_EINVAL);
    assert_non_null(strstr(err.msg, "'..'"));
}

static void test_runtime_path(void **state)
{
    char path[4096];
    nu_err_t err = { 0 };

    (void)state;
    assert_int_equal(nu_oci_runtime_path("crun", path, sizeof path, &err),
                     NU_EINVAL);
    assert_int_equal(nu_oci_runtime_path("oci:", path, sizeof path, &err),
                     NU_EINVAL);
    assert_int_equal(nu_oci_runtime_path("oci:bin/crun", path, sizeof path,
                                         &err), NU_EINVAL);
    assert_int_equal(nu_oci_runtime_path("oci:no-such-runtime-x", path,
                                         sizeof path, &err), NU_ENOTSUP);
    assert_non_null(strstr(err.msg, "no-such-runtime-x"));
    /* Every directory searched is named, and no package name is made up
     * from the runtime's name. */
    assert_non_null(strstr(err.msg, "/usr/sbin, /sbin or /usr/local/sbin"));
    assert_null(strstr(err.msg, "apt-get"));
    assert_non_null(strstr(err.msg, "oci:/path/to/runtime"));
    assert_int_equal(nu_oci_runtime_path("oci:/bin/sh", path, sizeof path,
                                         &err), NU_OK);
    assert_string_equal(path, "/bin/sh");
}

static void test_unknown_isolation(void **state)
{
    nu_sandbox_opts_t opts;
    nu_sandbox_t *sb = NULL;
    nu_err_t err = { 0 };

    (void)state;
    nu_sandbox_opts_init(&opts);
    opts.workspace = workspace;
    opts.isolation = "vmx";
    assert_int_equal(nu_sandbox_create(&opts, &sb, &err), NU_EINVAL);
    assert_null(sb);
    assert_non_null(strstr(err.msg, "vmx"));
}

/* --- pods ------------------------------------------------------------ */

/* Start a pod under runtime, or skip with the reason. */
static nu_sandbox_t *start_pod(const char *isolation,
                               const char *const *block)
{
    char path[4096];
    nu_sandbox_opts_t opts;
    nu_sandbox_t *sb = NULL;
    nu_err_t err = { 0 };
    int rc;

    if (geteuid() != 0) {
        print_message("skipped: the oci pod tests run the runtime as "
                      "root\n");
        return NULL;
    }
    if (nu_oci_runtime_path(isolation, path, sizeof path, &err) != NU_OK) {
        print_message("skipped: %s\n", err.msg);
        return NULL;
    }
    nu_sandbox_opts_init(&opts);
    opts.workspace = workspace;
    opts.isolation = isolation;
    opts.block_paths = block;
    rc = nu_sandbox_create(&opts, &sb, &err);
    if (rc != NU_OK)
        fail_msg("%s: %s", isolation, err.msg);
    return sb;
}

static json_t *tool(nu_sandbox_t *sb, const char *fmt, ...)
{
    json_error_t jerr;
    json_t *call;
    json_t *result = NULL;
    nu_err_t err = { 0 };
    va_list ap;

    va_start(ap, fmt);
    call = json_vpack_ex(&jerr, 0, fmt, ap);
    va_end(ap);
    assert_non_null(call);
    assert_int_equal(nu_sandbox_tool(sb, call, &result, &err), NU_OK);
    json_decref(call);
    return result;
}

static const char *field(const json_t *result, const char *name)
{
    const char *s = json_string_value(json_object_get(result, name));
    return s != NULL ? s : "";
}

static void run_pod_calls(const char *isolation)
{
    const char *block[] = { ".env", NULL };
    nu_err_t err = { 0 };
    json_t *ping;
    nu_sandbox_t *sb = start_pod(isolation, block);
    json_t *r;
    char host[128];
    FILE *fp;
    char line[64] = "";

    if (sb == NULL)
        skip();
    assert_int_equal(nu_sandbox_state(sb), NU_SANDBOX_READY);

    r = tool(sb, "{s:s,s:s,s:s}", "tool", "write", "path", "out.txt",
             "content", "from the pod\n");
    assert_true(json_is_true(json_object_get(r, "ok")));
    json_decref(r);
    snprintf(host, sizeof host, "%s/out.txt", workspace);
    fp = fopen(host, "r");
    assert_non_null(fp);
    assert_non_null(fgets(line, sizeof line, fp));
    fclose(fp);
    assert_string_equal(line, "from the pod\n");

    r = tool(sb, "{s:s,s:s}", "tool", "read", "path", "readme");
    assert_true(json_is_true(json_object_get(r, "ok")));
    assert_non_null(strstr(field(r, "content"), "read only"));
    json_decref(r);

    r = tool(sb, "{s:s,s:s}", "tool", "run", "command",
             "grep -E '^(CapEff|CapBnd|Seccomp|NoNewPrivs):' "
             "/proc/self/status; cat /workspace/.env; hostname; "
             "ls /etc/shadow 2>&1; echo pid=$$");
    assert_true(json_is_true(json_object_get(r, "ok")));
    assert_non_null(strstr(field(r, "stdout"), "CapEff:\t0000000000000000"));
    assert_non_null(strstr(field(r, "stdout"), "CapBnd:\t0000000000000000"));
    assert_non_null(strstr(field(r, "stdout"), "Seccomp:\t2"));
    assert_non_null(strstr(field(r, "stdout"), "NoNewPrivs:\t1"));
    assert_null(strstr(field(r, "stdout"), "TOKEN"));
    assert_non_null(strstr(field(r, "stdout"), "nucleus\n"));
    assert_non_null(strstr(field(r, "stdout"), "No such file"));
    json_decref(r);

    /* The seccomp profile: mount, unshare and odd personalities fail. */
    r = tool(sb, "{s:s,s:s}", "tool", "run", "command",
             "unshare -U true 2>&1; echo unshare=$?; "
             "setarch -R true 2>&1; echo setarch=$?");
    assert_true(json_is_true(json_object_get(r, "ok")));
    assert_non_null(strstr(field(r, "stdout"), "unshare=1"));
    assert_null(strstr(field(r, "stdout"), "setarch=0"));
    json_decref(r);

    /* Host-only files arrive below /run/nucleus, as in the ns tier. */
    if (nu_sandbox_put_file(sb, "svid/key.pem", "KEY\n", 4, 0600,
                            &err) != NU_OK)
        fail_msg("%s: put_file: %s", isolation, err.msg);
    r = tool(sb, "{s:s,s:s}", "tool", "run", "command",
             "cat /run/nucleus/svid/key.pem; stat -c %a "
             "/run/nucleus/svid/key.pem");
    assert_string_equal(field(r, "stdout"), "KEY\n600\n");
    json_decref(r);

    /* The init binary and /dev are read-only mounts. */
    r = tool(sb, "{s:s,s:s}", "tool", "run", "command",
             "grep -E ' /(dev|\\.nucleus/nucleus-podinit) ' "
             "/proc/self/mountinfo");
    assert_non_null(strstr(field(r, "stdout"), "/.nucleus/nucleus-podinit ro,"));
    assert_non_null(strstr(field(r, "stdout"), "/dev ro,"));
    json_decref(r);

    r = tool(sb, "{s:s,s:s}", "tool", "run", "command",
             "echo x > /usr/nucleus-oci-test 2>&1; echo usr=$?");
    assert_non_null(strstr(field(r, "stdout"), "usr="));
    assert_null(strstr(field(r, "stdout"), "usr=0"));
    json_decref(r);

    /* Killing the runtime ends the pod, and the sandbox notices. */
    assert_int_equal(nu_sandbox_kill(sb, SIGKILL), NU_OK);
    for (int i = 0; i < 100 && nu_sandbox_state(sb) == NU_SANDBOX_READY; i++)
        usleep(10000);
    assert_int_equal(nu_sandbox_state(sb), NU_SANDBOX_DEAD);
    ping = json_pack("{s:s}", "tool", "ping");
    assert_int_not_equal(nu_sandbox_tool(sb, ping, &r, &err), NU_OK);
    json_decref(ping);
    json_decref(r);

    nu_sandbox_close(sb);
    unlink(host);
}

static void test_crun_pod_calls(void **state)
{
    (void)state;
    run_pod_calls("oci:crun");
}

static void test_runc_pod_calls(void **state)
{
    (void)state;
    run_pod_calls("oci:runc");
}

/* A failing runtime reports its own message and leaves no bundle. */
static void test_runtime_failure_reported(void **state)
{
    nu_sandbox_opts_t opts;
    nu_sandbox_t *sb = NULL;
    nu_err_t err = { 0 };
    char cmd[128];

    (void)state;
    nu_sandbox_opts_init(&opts);
    opts.workspace = workspace;
    opts.isolation = "oci:/bin/false";
    assert_int_not_equal(nu_sandbox_create(&opts, &sb, &err), NU_OK);
    assert_null(sb);
    assert_non_null(strstr(err.msg, "pod"));
    /* As root the runtime runs, and the message gives its exit status. */
    if (geteuid() == 0)
        assert_non_null(strstr(err.msg, "runtime '/bin/false' exited with "
                                        "status 1"));
    /* Bundle names start with this process's id. */
    snprintf(cmd, sizeof cmd, "ls -d /tmp/nucleus-oci.%ld.* >/dev/null 2>&1",
             (long)getpid());
    assert_int_not_equal(system(cmd), 0);
}


/* An ns pod and an oci pod of one process live side by side: their ids,
 * and so their cgroups, differ. */
static void test_ns_and_oci_together(void **state)
{
    nu_sandbox_opts_t opts;
    nu_sandbox_t *ns = NULL;
    nu_sandbox_t *oci;
    nu_err_t err = { 0 };
    json_t *r;

    (void)state;
    oci = start_pod("oci:crun", NULL);
    if (oci == NULL)
        skip();
    nu_sandbox_opts_init(&opts);
    opts.workspace = workspace;
    if (nu_sandbox_create(&opts, &ns, &err) != NU_OK)
        fail_msg("ns pod: %s", err.msg);
    assert_string_not_equal(nu_sandbox_id(ns), nu_sandbox_id(oci));

    r = tool(ns, "{s:s}", "tool", "ping");
    assert_true(json_is_true(json_object_get(r, "ok")));
    json_decref(r);
    r = tool(oci, "{s:s}", "tool", "ping");
    assert_true(json_is_true(json_object_get(r, "ok")));
    json_decref(r);

    nu_sandbox_close(oci);
    nu_sandbox_close(ns);
}

/* The pod's environment reaches its commands but not the bundle on
 * disk, where config.json carries only the default one. */
static void test_env_not_in_bundle(void **state)
{
    const char *env[] = { "PATH=/usr/bin:/bin", "NU_OCI_SECRET=s3cr3t-7f1e9a",
                          NULL };
    char path[4096], cmd[256];
    nu_sandbox_opts_t opts;
    nu_sandbox_t *sb = NULL;
    nu_err_t err = { 0 };
    json_t *r;

    (void)state;
    if (geteuid() != 0 ||
        nu_oci_runtime_path("oci:crun", path, sizeof path, &err) != NU_OK) {
        print_message("skipped: needs root and crun\n");
        skip();
    }
    nu_sandbox_opts_init(&opts);
    opts.workspace = workspace;
    opts.isolation = "oci:crun";
    opts.env = env;
    assert_int_equal(nu_sandbox_create(&opts, &sb, &err), NU_OK);
    snprintf(cmd, sizeof cmd, "grep -rqs s3cr3t-7f1e9a /tmp/nucleus-oci.%ld.*",
             (long)getpid());
    assert_int_not_equal(system(cmd), 0);
    r = tool(sb, "{s:s,s:s}", "tool", "run", "command", "echo $NU_OCI_SECRET");
    assert_string_equal(field(r, "stdout"), "s3cr3t-7f1e9a\n");
    json_decref(r);
    nu_sandbox_close(sb);
}

/* The first process found whose parent is ppid, or 0. */
static pid_t child_of(pid_t ppid)
{
    DIR *proc = opendir("/proc");
    struct dirent *e;
    pid_t found = 0;

    while (proc != NULL && found == 0 && (e = readdir(proc)) != NULL) {
        char path[64], buf[512], *close_paren;
        long parent = 0;
        FILE *f;

        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof path, "/proc/%.20s/stat", e->d_name);
        f = fopen(path, "re");
        if (f == NULL)
            continue;
        if (fgets(buf, sizeof buf, f) != NULL &&
            (close_paren = strrchr(buf, ')')) != NULL &&
            sscanf(close_paren + 1, " %*c %ld", &parent) == 1 &&
            parent == (long)ppid)
            found = (pid_t)atol(e->d_name);
        fclose(f);
    }
    if (proc != NULL)
        closedir(proc);
    return found;
}

/* An owner killed with SIGKILL takes its pod along (the runtime's death
 * signal), and the next create removes the bundle it left. */
static void check_owner_death(const char *isolation)
{
    char mark[64];
    char env_mark[80];
    const char *env[] = { "PATH=/usr/bin:/bin", env_mark, NULL };
    char cmd[128];
    int ready[2];
    pid_t owner, runtime, init;
    char byte;
    nu_sandbox_t *sb;

    sb = start_pod(isolation, NULL);
    if (sb == NULL)
        skip();
    nu_sandbox_close(sb);

    snprintf(mark, sizeof mark, "NU_OCI_OWNER_MARK_%ld_%s", (long)getpid(),
             isolation + 4);
    snprintf(env_mark, sizeof env_mark, "%s=1", mark);
    assert_int_equal(pipe(ready), 0);
    owner = fork();
    if (owner == 0) {
        nu_sandbox_opts_t opts;
        nu_err_t err = { 0 };

        nu_sandbox_opts_init(&opts);
        opts.workspace = workspace;
        opts.isolation = isolation;
        opts.env = env;
        if (nu_sandbox_create(&opts, &sb, &err) != NU_OK)
            _exit(1);
        if (write(ready[1], "r", 1) != 1)
            _exit(1);
        pause();
        _exit(0);
    }
    close(ready[1]);
    assert_int_equal(read(ready[0], &byte, 1), 1);
    close(ready[0]);
    /* The owner's runtime and, below it, the pod's init. */
    runtime = child_of(owner);
    assert_int_not_equal(runtime, 0);
    init = child_of(runtime);
    assert_int_not_equal(init, 0);

    kill(owner, SIGKILL);
    waitpid(owner, NULL, 0);
    for (int i = 0; i < 100 && (kill(runtime, 0) == 0 || kill(init, 0) == 0);
         i++)
        usleep(20000);
    assert_int_not_equal(kill(runtime, 0), 0);
    assert_int_not_equal(kill(init, 0), 0);

    /* The dead owner's bundle is still there until the next create. */
    snprintf(cmd, sizeof cmd, "ls -d /tmp/nucleus-oci.%ld.* >/dev/null "
             "2>&1", (long)owner);
    assert_int_equal(system(cmd), 0);
    sb = start_pod(isolation, NULL);
    assert_non_null(sb);
    nu_sandbox_close(sb);
    assert_int_not_equal(system(cmd), 0);
}

static void test_crun_owner_death(void **state)
{
    (void)state;
    check_owner_death("oci:crun");
}

static void test_runc_owner_death(void **state)
{
    (void)state;
    check_owner_death("oci:runc");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_namespaces),
        cmocka_unit_test(test_config_mounts),
        cmocka_unit_test(test_config_process),
        cmocka_unit_test(test_config_resources),
        cmocka_unit_test(test_config_seccomp),
        cmocka_unit_test(test_config_rejects_bad_options),
        cmocka_unit_test(test_runtime_path),
        cmocka_unit_test(test_unknown_isolation),
        cmocka_unit_test(test_crun_pod_calls),
        cmocka_unit_test(test_runc_pod_calls),
        cmocka_unit_test(test_runtime_failure_reported),
        cmocka_unit_test(test_ns_and_oci_together),
        cmocka_unit_test(test_env_not_in_bundle),
        cmocka_unit_test(test_crun_owner_death),
        cmocka_unit_test(test_runc_owner_death),
    };

    return cmocka_run_group_tests(tests, make_workspace, remove_workspace);
}
