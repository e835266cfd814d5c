/*
 * poweroff.c - an init that only powers the machine off.  The vm
 * benchmark boots it as the bare baseline: the same kernel and QEMU
 * machine as a vm pod, with no agent, modules or devices to set up.
 */
#include <sys/reboot.h>
#include <unistd.h>

int main(void)
{
    reboot(RB_POWER_OFF);
    /* Without ACPI power-off returns; QEMU runs with -no-reboot. */
    reboot(RB_AUTOBOOT);
    return 1;
}
