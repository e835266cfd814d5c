/*
 * test_net_drift.c - the IPv6 sysctls under the drift check, and the
 * owner and index names that keep sweepers in other namespaces away from
 * a live owner.  Pods here are plain processes in a fresh network
 * namespace (no sandbox), so each case takes well under a second.
 * Needs root; skips otherwise.
 */
#include <errno.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "net_internal.h"
#include "nucleus/lattice.h"
#include "nucleus/net.h"

static void require_root(void)
{
    if (geteuid() != 0) {
        print_message("skipped: needs root (CAP_NET_ADMIN)\n");
        skip();
    }
}

/* A child that waits in a new network namespace, as a pod init would. */
static pid_t netns_child(void)
{
    int fds[2];
    pid_t pid;
    char c;

    if (pipe(fds) != 0)
        return -1;
    pid = fork();
    if (pid == 0) {
        close(fds[0]);
        if (unshare(CLONE_NEWNET) != 0 || write(fds[1], "x", 1) != 1)
            _exit(1);
        pause();
        _exit(0);
    }
    close(fds[1]);
    if (pid < 0 || read(fds[0], &c, 1) != 1)
        pid = -1;
    close(fds[0]);
    return pid;
}

static void perm_egress(nu_perm_t *perm)
{
    nu_perm_init_top(perm);
    nu_strset_free(&perm->network.allow);
    nu_strset_init_empty(&perm->network.allow);
    assert_int_equal(nu_strset_add(&perm->network.allow, "192.0.2.0/24:443"),
                     NU_OK);
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int sh(const char *fmt, ...)
{
    char cmd[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    return system(cmd);
}

/* Is name bound as an abstract AF_UNIX socket (listed as "@name")? */
static bool abstract_bound(const char *name)
{
    char line[512];
    char want[128];
    bool found = false;
    FILE *fp = fopen("/proc/net/unix", "re");

    assert_non_null(fp);
    snprintf(want, sizeof want, " @%s\n", name);
    while (!found && fgets(line, sizeof line, fp) != NULL) {
        size_t len = strlen(line);
        size_t wlen = strlen(want);
        found = len >= wlen && strcmp(line + len - wlen, want) == 0;
    }
    fclose(fp);
    return found;
}

static int abstract_bind(const char *name)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    size_t len = strlen(name);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    memcpy(sa.sun_path + 1, name, len);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa,
                          (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
                                      1 + len)), 0);
    return fd;
}

static void test_net_ipv6_sysctl_drift(void **state)
{
    nu_net_opts_t opts;
    nu_net_t *net = NULL;
    nu_err_t err = { 0 };
    nu_perm_t perm;
    pid_t child;
    int status = 0;
    pid_t reaped = 0;

    (void)state;
    require_root();
    perm_egress(&perm);
    nu_net_opts_init(&opts);
    opts.check_interval_ms = 100;
    child = netns_child();
    assert_true(child > 0);
    if (nu_net_prepare(&perm, &opts, &net, &err) != NU_OK ||
        nu_net_attach(net, child, &err) != NU_OK) {
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
        fail_msg("setup failed: %s", err.msg);
    }
    assert_int_equal(nu_net_check(net, &err), NU_OK);

    /* Turning IPv6 back on in the pod is drift, like changing a rule. */
    assert_int_equal(sh("nsenter -t %d -n sh -c 'echo 0 > "
                        "/proc/sys/net/ipv6/conf/default/disable_ipv6'",
                        (int)child), 0);
    assert_int_equal(nu_net_check(net, &err), NU_EPOLICY);
    assert_non_null(strstr(err.msg, "net.ipv6.conf.default.disable_ipv6"));

    for (int i = 0; i < 100 && reaped == 0; i++) {
        reaped = waitpid(child, &status, WNOHANG);
        if (reaped == 0)
            usleep(20000);
    }
    assert_int_equal(reaped, child);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);
    assert_true(nu_net_drifted(net));

    nu_net_close(net);
    nu_perm_free(&perm);
}

/* The host rules of all of an owner's pods carry the same tag; each
 * pod's read-back must count only its own. */
static void test_net_two_pods_one_owner(void **state)
{
    nu_net_t *nets[2] = { NULL, NULL };
    pid_t children[2] = { -1, -1 };
    nu_err_t err = { 0 };
    nu_perm_t perm;

    (void)state;
    require_root();
    perm_egress(&perm);
    for (int i = 0; i < 2; i++) {
        children[i] = netns_child();
        assert_true(children[i] > 0);
        if (nu_net_prepare(&perm, NULL, &nets[i], &err) != NU_OK ||
            nu_net_attach(nets[i], children[i], &err) != NU_OK)
            print_error("pod %d: %s\n", i, err.msg);
    }

    for (int i = 0; i < 2; i++) {
        assert_non_null(nets[i]);
        assert_int_equal(nu_net_check(nets[i], &err), NU_OK);
    }
    nu_net_close(nets[0]);
    assert_int_equal(nu_net_check(nets[1], &err), NU_OK);

    nu_net_close(nets[1]);
    for (int i = 0; i < 2; i++) {
        kill(children[i], SIGKILL);
        waitpid(children[i], NULL, 0);
    }
    nu_perm_free(&perm);
}

static void test_net_reservation_names(void **state)
{
    nu_net_t *net = NULL;
    nu_err_t err = { 0 };
    nu_perm_t perm;
    char index_name[64];

    (void)state;
    require_root();
    perm_egress(&perm);
    if (nu_net_prepare(&perm, NULL, &net, &err) != NU_OK)
        fail_msg("prepare failed: %s", err.msg);

    snprintf(index_name, sizeof index_name, "nucleus-net-%s",
             nu_net_host_ifname(net) + 3);
    assert_true(abstract_bound(index_name));
    assert_true(abstract_bound(net->owner_tag));

    nu_net_close(net);
    assert_false(abstract_bound(index_name));
    nu_perm_free(&perm);
}

/* A sweeper whose /proc shows another start time for our pid (a time
 * namespace shifts it) must still see that the owner is alive. */
static void test_net_owner_alive_by_name(void **state)
{
    char tag[64];
    int fd;

    (void)state;
    require_root();
    snprintf(tag, sizeof tag, "nucleus-%d-1", (int)getpid());
    assert_false(nu__net_owner_alive(tag));

    fd = abstract_bind(tag);
    assert_true(nu__net_owner_alive(tag));
    close(fd);
    assert_false(nu__net_owner_alive(tag));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_net_ipv6_sysctl_drift),
        cmocka_unit_test(test_net_two_pods_one_owner),
        cmocka_unit_test(test_net_reservation_names),
        cmocka_unit_test(test_net_owner_alive_by_name),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
