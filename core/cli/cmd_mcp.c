/*
 * cmd_mcp.c - nucleus mcp: serve one pod's tools to an MCP client over
 * stdio (newline-delimited JSON-RPC 2.0).
 *
 * stdout carries protocol messages only; logs go to stderr.  Approval
 * requests go to --approval-command when given: it runs with the request
 * JSON on stdin and approves with exit status 0, denies with 1, and leaves
 * the call pending with anything else.  Without it, gated calls stay
 * pending; the agent is never offered a way to approve them itself.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/commands.h"
#include "nucleus/audit.h"
#include "nucleus/jsonrpc.h"
#include "nucleus/log.h"
#include "nucleus/mcp.h"

static const char *nu__approval_command;

static void nu__mcp_usage(FILE *out)
{
    fprintf(out,
        "usage: nucleus mcp --profile P --workspace DIR [--approval-command CMD]\n"
        "                   [--no-audit] [--home DIR] [--isolation TIER]\n\n"
        "Serve the pod's tools to an MCP client on stdin/stdout.\n"
        "  --profile P             built-in profile name or profile file\n"
        "  --workspace DIR         directory mounted at /workspace in the pod\n"
        "  --approval-command CMD  run CMD (sh -c) with each approval request on\n"
        "                          stdin: exit 0 approves, 1 denies, else pending\n"
        "  --no-audit              do not write the audit log (testing only)\n"
        "  --home DIR              state directory (default $NUCLEUS_HOME)\n"
        "  --isolation TIER        ns (default), oci:crun, oci:runc or vm\n");
}

/* Run the approval command with the request on its stdin. */
static nu_approve_t nu__run_approval_command(nu_pod_t *pod, const json_t *request,
                                             void *userdata)
{
    char *text = json_dumps(request, JSON_COMPACT);
    int in[2], status = 0;
    pid_t pid;

    (void)pod;
    (void)userdata;
    if (text == NULL || nu__approval_command == NULL || pipe2(in, O_CLOEXEC) != 0) {
        free(text);
        return NU_APPROVE_ASK;
    }

    pid = fork();
    if (pid == 0) {
        dup2(in[0], STDIN_FILENO);
        dup2(STDERR_FILENO, STDOUT_FILENO);   /* stdout is the protocol */
        execl("/bin/sh", "sh", "-c", nu__approval_command, (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    if (pid > 0) {
        size_t len = strlen(text);
        signal(SIGPIPE, SIG_IGN);
        if (write(in[1], text, len) != (ssize_t)len)
            nu_log(NU_LOG_WARN, "mcp", "approval command did not read the request");
    }
    close(in[1]);
    free(text);
    if (pid < 0 || waitpid(pid, &status, 0) < 0)
        return NU_APPROVE_ASK;

    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return NU_APPROVE_APPROVE;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 1)
        return NU_APPROVE_DENY;
    return NU_APPROVE_ASK;
}

static int nu__serve(nu_mcp_t *m)
{
    char *line = NULL, *reply;
    size_t cap = 0;
    ssize_t len;

    while ((len = getline(&line, &cap, stdin)) >= 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (len == 0)
            continue;
        reply = nu_rpc_handle_line(line, (size_t)len, 0, nu_mcp_dispatch, m);
        if (reply != NULL) {
            fputs(reply, stdout);
            fputc('\n', stdout);
            fflush(stdout);
            free(reply);
        }
    }
    free(line);
    return NU_EXIT_OK;
}

int nu_cmd_mcp(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "profile", required_argument, NULL, 'p' },
        { "workspace", required_argument, NULL, 'w' },
        { "approval-command", required_argument, NULL, 'a' },
        { "no-audit", no_argument, NULL, 'n' },
        { "home", required_argument, NULL, 'H' },
        { "isolation", required_argument, NULL, 'i' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *profile = NULL, *workspace = NULL, *home = NULL;
    const char *isolation = NULL;
    bool audit = true;
    nu_audit_t *log = NULL;
    nu_pod_options_t opts;
    nu_pod_t *pod = NULL;
    nu_mcp_t *m = NULL;
    nu_err_t err;
    int c, code;

    optind = 1;
    while ((c = getopt_long(argc, argv, "p:w:a:nH:i:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'p': profile = optarg; break;
        case 'w': workspace = optarg; break;
        case 'a': nu__approval_command = optarg; break;
        case 'n': audit = false; break;
        case 'H': home = optarg; break;
        case 'i': isolation = optarg; break;
        case 'h': nu__mcp_usage(stdout); return NU_EXIT_OK;
        default: nu__mcp_usage(stderr); return NU_EXIT_USAGE;
        }
    }
    if (profile == NULL || workspace == NULL || optind != argc) {
        nu__mcp_usage(stderr);
        return NU_EXIT_USAGE;
    }

    if (audit) {
        nu_audit_options_t aopts = { .home = home };
        if (nu_audit_open(&aopts, &log, &err) != NU_OK) {
            fprintf(stderr, "nucleus: mcp: %s\n", err.msg);
            return NU_EXIT_FAIL;
        }
    }

    nu_pod_options_init(&opts);
    opts.profile_name = profile;
    opts.workspace = workspace;
    opts.audit = log;
    opts.namespace_ = "mcp";
    opts.isolation = isolation;
    opts.home = home;
    if (nu__approval_command != NULL)
        opts.approve = nu__run_approval_command;
    if (nu_pod_create(&opts, &pod, &err) != NU_OK) {
        fprintf(stderr, "nucleus: mcp: %s\n", err.msg);
        nu_audit_close(log);
        return NU_EXIT_FAIL;
    }
    nu_log(NU_LOG_INFO, "mcp", "serving pod %s (profile %s) on stdio",
           nu_pod_id(pod), profile);

    if (nu_mcp_new(pod, &m) != NU_OK) {
        fprintf(stderr, "nucleus: mcp: out of memory\n");
        code = NU_EXIT_FAIL;
    } else {
        code = nu__serve(m);
    }

    nu_mcp_free(m);
    nu_pod_close(pod);
    nu_audit_close(log);
    return code;
}
