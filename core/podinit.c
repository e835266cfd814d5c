/*
 * podinit.c - the pod init: PID 1 of a namespace pod.
 *
 * The init is not a fork of the host: the child of clone() executes a
 * sealed memfd copy of a program that links libnucleus (see sandbox.c),
 * with argv NU_PODINIT_ARGV0 NU_PODINIT_ARGV1.  The constructor below
 * recognizes that argv and runs nu__podinit_main before main(), so any
 * such program can serve as the init.
 *
 * The init:
 *   1. re-arms PR_SET_PDEATHSIG and exits if the host is already gone;
 *   2. reads the host's hello frame and negotiates the protocol version;
 *   3. hardens itself (sandbox_harden.c): no capabilities left,
 *      no_new_privs, not dumpable, Landlock, seccomp;
 *   4. replies with its own hello: version, Landlock ABI, warnings;
 *   5. serves requests with nu__serve_loop (sandbox_serve.c, shared with
 *      the vm guest agent) until the host closes the stream.
 * Any failure before step 4 is sent as an error frame; the init then
 * exits, which ends the pod.
 */
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "sandbox_internal.h"
#include "sandbox_serve.h"

extern char **environ;

/* Referenced by sandbox.c so that linking the sandbox links the init. */
const int nu__podinit_linked = 1;

typedef struct nu__podinit {
    int landlock_abi;
    char warning[256];
    nu__serve_t serve;
} nu__podinit_t;

/* Steps 2 and 3. */
static int nu__podinit_start(nu__podinit_t *pi, nu_err_t *err)
{
    nu_frame_t hello;
    json_t *config;
    bool require_landlock;
    int rc;

    rc = nu__serve_hello(&pi->serve, 10000, &hello, err);
    if (rc < 0)
        return rc;

    config = json_object_get(hello.json, "config");
    require_landlock = json_is_true(json_object_get(config,
                                                    "require_landlock"));
    rc = nu__harden(require_landlock, &pi->landlock_abi, pi->warning,
                    sizeof pi->warning, err);
    if (rc == NU_OK)
        rc = nu__serve_executor(&pi->serve, config,
                                (const char *const *)environ, err);

    nu_frame_free(&hello);
    return rc;
}

/* Step 4. */
static int nu__podinit_ready(nu__podinit_t *pi, nu_err_t *err)
{
    json_t *fields = json_pack("{s:i}", "landlock_abi", pi->landlock_abi);

    if (fields != NULL && pi->warning[0] != '\0')
        json_object_set_new(fields, "warning", json_string(pi->warning));
    return nu__serve_ready(&pi->serve, fields, err);
}

int nu__podinit_main(int fd)
{
    nu__podinit_t pi;
    nu_err_t err;
    int status;

    memset(&pi, 0, sizeof pi);
    nu__serve_init(&pi.serve, "podinit", fd);
    /* The oci tier sends the pod's environment this way, so that
     * credentials never rest in its bundle on disk. */
    pi.serve.accept_set_env = true;

    /* Step 1: the death signal survives this exec, and setting it again
     * makes the init independent of how it was started.  A host that died
     * before the signal was armed has closed its end of the stream. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);

    /* A session of its own: the pod has no controlling terminal, so no
     * command in it can open /dev/tty, read what the operator types or
     * move the operator's shell out of the foreground. */
    setsid();
    {
        struct pollfd p = { .fd = fd, .events = POLLRDHUP };
        if (poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLRDHUP)) != 0)
            return 1;
    }

    if (nu__podinit_start(&pi, &err) < 0 || nu__podinit_ready(&pi, &err) < 0) {
        nu__serve_error(fd, err.msg);
        return 1;
    }

    /* Step 5. */
    status = nu__serve_loop(&pi.serve);
    nu__serve_close(&pi.serve);
    return status;
}

__attribute__((constructor)) static void nu__podinit_entry(int argc,
                                                           char **argv,
                                                           char **envp)
{
    const char *name = argc > 0 ? strrchr(argv[0], '/') : NULL;

    (void)envp;
    /* OCI runtimes set argv[0] to the executable's path, so the oci tier
     * starts the init as ".../nucleus-podinit". */
    name = name != NULL ? name + 1 : argc > 0 ? argv[0] : "";
    if (argc == 2 && strcmp(name, NU_PODINIT_ARGV0) == 0 &&
        strcmp(argv[1], NU_PODINIT_ARGV1) == 0)
        _exit(nu__podinit_main(NU_PODINIT_FD));
}
