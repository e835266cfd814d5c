/*
 * cmd_vm.c - nucleus vm: build the microVM guest image.
 *
 *   nucleus vm image build [--kernel PATH] [--modules DIR] [--agent PATH]
 *                          [--busybox PATH] [--out DIR] [--init-only]
 *                          [--vmlinux]
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "nucleus/vm.h"

static void nu__vm_usage(FILE *out)
{
    fprintf(out,
            "usage: nucleus vm image build [--kernel PATH] [--out DIR]\n"
            "                              [--modules DIR] [--agent PATH]\n"
            "                              [--busybox PATH] [--init-only]\n"
            "                              [--vmlinux]\n"
            "\n"
            "Build the guest image of isolation \"vm\": vmlinuz,\n"
            "initramfs.cpio and image.json in the output directory.\n"
            "\n"
            "  --kernel     kernel image vmlinuz-RELEASE (default: the newest\n"
            "               /boot/vmlinuz-* whose modules include 9p)\n"
            "  --modules    module directory with modules.dep\n"
            "               (default /lib/modules/RELEASE)\n"
            "  --agent      guest agent binary (default $NUCLEUS_VM_AGENT,\n"
            "               then the one of this build)\n"
            "  --busybox    static BusyBox (default /bin/busybox)\n"
            "  --out        output directory (default STATE_DIR/vm/image)\n"
            "  --init-only  only /init and /dev/console, for a bare-boot\n"
            "               baseline with --agent set to another program\n"
            "  --vmlinux    also write vmlinux, the ELF kernel decompressed\n"
            "               from vmlinuz, which Firecracker boots on x86_64\n");
}

static int nu__vm_image_build(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "kernel", required_argument, NULL, 'k' },
        { "modules", required_argument, NULL, 'm' },
        { "agent", required_argument, NULL, 'a' },
        { "busybox", required_argument, NULL, 'b' },
        { "out", required_argument, NULL, 'o' },
        { "init-only", no_argument, NULL, 'i' },
        { "vmlinux", no_argument, NULL, 'x' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    nu_vm_image_opts_t opts = { .progress = true };
    char out_dir[4096];
    nu_err_t err;
    int c;

    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'k': opts.kernel = optarg; break;
        case 'm': opts.modules_dir = optarg; break;
        case 'a': opts.agent = optarg; break;
        case 'b': opts.busybox = optarg; break;
        case 'o': opts.out_dir = optarg; break;
        case 'i': opts.init_only = true; break;
        case 'x': opts.vmlinux = true; break;
        case 'h': nu__vm_usage(stdout); return NU_EXIT_OK;
        default:
            fprintf(stderr, "nucleus vm: invalid option '%s' (run 'nucleus "
                    "vm --help')\n", argv[optind - 1]);
            return NU_EXIT_USAGE;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "nucleus vm: unexpected argument '%s'\n",
                argv[optind]);
        return NU_EXIT_USAGE;
    }

    if (opts.out_dir == NULL) {
        if (nu_vm_image_default_dir(out_dir, sizeof out_dir, &err) < 0) {
            fprintf(stderr, "nucleus: %s\n", err.msg);
            return NU_EXIT_FAIL;
        }
        opts.out_dir = out_dir;
    }
    if (nu_vm_image_build(&opts, &err) < 0) {
        fprintf(stderr, "nucleus: %s\n", err.msg);
        return NU_EXIT_FAIL;
    }
    printf("%s\n", opts.out_dir);
    return NU_EXIT_OK;
}

int nu_cmd_vm(int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 ||
                      strcmp(argv[1], "-h") == 0)) {
        nu__vm_usage(stdout);
        return NU_EXIT_OK;
    }
    if (argc < 3 || strcmp(argv[1], "image") != 0 ||
        strcmp(argv[2], "build") != 0) {
        fprintf(stderr, "nucleus vm: expected 'image build' (run 'nucleus vm "
                "--help')\n");
        return NU_EXIT_USAGE;
    }
    return nu__vm_image_build(argc - 2, argv + 2);
}
