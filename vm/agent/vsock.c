/*
 * vsock.c - the guest agent's vsock transport and block-device workspace
 * (see vsock.h).
 *
 * Host side: Firecracker maps the guest's vsock device to a unix socket
 * on the host.  The host connects to it and writes "CONNECT 1024\n";
 * Firecracker opens a stream to guest port 1024, replies "OK <port>\n"
 * and from then on relays bytes.  While nothing listens on the port,
 * Firecracker closes the host's connection and the host retries, so the
 * listening socket is the agent's ready signal.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <linux/vm_sockets.h>

#include "vsock.h"

#define NU__AGENT_VSOCK_PARAM "nucleus.transport=vsock"
#define NU__AGENT_VSOCK_DISK "/dev/vda"

/* How long to wait for the block device node after virtio_blk loads. */
#define NU__AGENT_DISK_WAIT_MS 2000

static void nu__vsock_say(const char *message, const char *detail)
{
    fprintf(stderr, "nucleus-agent: %s%s%s\n", message,
            detail != NULL ? ": " : "", detail != NULL ? detail : "");
}

/* Whether /proc/cmdline has the parameter as a whole word.  The kernel
 * keeps parameters with a '.' away from init's arguments and
 * environment, so /proc/cmdline is the only place to read it. */
static bool nu__vsock_selected(void)
{
    static int selected = -1;
    char line[4096];
    size_t len;
    FILE *f;

    if (selected >= 0)
        return selected == 1;
    selected = 0;
    f = fopen("/proc/cmdline", "re");
    if (f == NULL)
        return false;
    len = fread(line, 1, sizeof line - 1, f);
    fclose(f);
    line[len] = '\0';
    for (char *word = strtok(line, " \t\n"); word != NULL;
         word = strtok(NULL, " \t\n"))
        if (strcmp(word, NU__AGENT_VSOCK_PARAM) == 0)
            selected = 1;
    return selected == 1;
}

int nu__agent_vsock_open(void)
{
    struct sockaddr_vm addr = {
        .svm_family = AF_VSOCK,
        .svm_cid = VMADDR_CID_ANY,
        .svm_port = NU__AGENT_VSOCK_PORT,
    };
    int listener;
    int fd;

    if (!nu__vsock_selected())
        return NU__AGENT_VSOCK_UNUSED;
    listener = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listener < 0) {
        nu__vsock_say("cannot create a vsock socket (are the vsock modules "
                      "in the image?)", strerror(errno));
        return -1;
    }
    if (bind(listener, (struct sockaddr *)&addr, sizeof addr) != 0 ||
        listen(listener, 1) != 0) {
        nu__vsock_say("cannot listen on vsock port 1024", strerror(errno));
        close(listener);
        return -1;
    }
    /* One host connection per boot: the stream ends with the pod. */
    do
        fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0)
        nu__vsock_say("cannot accept the host's vsock connection",
                      strerror(errno));
    close(listener);
    return fd;
}

int nu__agent_vsock_workspace(void)
{
    struct stat st;
    int waited = 0;

    if (!nu__vsock_selected())
        return NU__AGENT_VSOCK_UNUSED;
    while (stat(NU__AGENT_VSOCK_DISK, &st) != 0 &&
           waited < NU__AGENT_DISK_WAIT_MS) {
        nanosleep(&(struct timespec){ .tv_nsec = 10000000 }, NULL);
        waited += 10;
    }
    /* The host attaches the image read-only, so the mount is read-only
     * too: writes fail with EROFS instead of being lost on close. */
    if (mount(NU__AGENT_VSOCK_DISK, "/workspace", "ext4",
              MS_RDONLY | MS_NOSUID | MS_NODEV, "") != 0) {
        nu__vsock_say("cannot mount the workspace disk " NU__AGENT_VSOCK_DISK,
                      strerror(errno));
        return -1;
    }
    return 0;
}
