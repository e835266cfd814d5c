/*
 * net.h - the guest side of a vm pod's network: configure the guest's
 * Ethernet interface when the kernel command line requests it.
 *
 * The host adds "nucleus.net=ADDRESS/PREFIX,GATEWAY" (IPv4) to the
 * command line only for a pod with egress, together with one
 * virtio-net device on QEMU's user-mode (slirp) network.  Without the
 * parameter the guest has no network device and only loopback is up.
 * The value carries addresses only, never a secret.
 */
#ifndef NUCLEUS_VM_AGENT_NET_H
#define NUCLEUS_VM_AGENT_NET_H

/* Bring up loopback, then read /proc/cmdline and, when it has
 * nucleus.net, bring up the one Ethernet interface with that address,
 * add the default route through the gateway and disable IPv6.  Returns 0 when there is nothing
 * to do or all of it worked, -1 after printing the failure on the
 * console. */
int nu__agent_net_setup(void);

#endif
