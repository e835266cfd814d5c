/*
 * net.h - the guest side of a vm pod's network: configure the guest's
 * Ethernet interface when the host asks for it on the kernel command
 * line.
 *
 * The host adds "nucleus.net=ADDRESS/PREFIX,GATEWAY" (IPv4) to the
 * command line only for a pod with egress, together with one
 * virtio-net device on QEMU's user-mode (slirp) network.  Without the
 * parameter the guest has no network device and nothing is configured.
 * The value carries addresses only, never a secret.
 */
#ifndef NUCLEUS_VM_AGENT_NET_H
#define NUCLEUS_VM_AGENT_NET_H

#include <stddef.h>

/* The guest's interface configuration, parsed from the command line. */
typedef struct nu__agent_net_config {
    char address[16];    /* dotted IPv4 */
    int prefix;          /* 1 to 30 */
    char gateway[16];    /* dotted IPv4, inside address/prefix */
} nu__agent_net_config_t;

/* Parse the nucleus.net parameter out of cmdline (the text of
 * /proc/cmdline).  Returns 1 and fills *out when the parameter is there
 * and valid, 0 when it is absent, and -1 when it is malformed, with a
 * message in detail. */
int nu__agent_net_parse(const char *cmdline, nu__agent_net_config_t *out,
                        char *detail, size_t size);

/* Read /proc/cmdline and, when it has nucleus.net, bring up loopback and
 * the one Ethernet interface with that address, add the default route
 * through the gateway and disable IPv6.  Returns 0 when there is nothing
 * to do or all of it worked, -1 after printing the failure on the
 * console. */
int nu__agent_net_setup(void);

#endif
