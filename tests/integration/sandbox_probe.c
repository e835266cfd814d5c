/* probe: one escape attempt per case; prints "RESULT <outcome>". */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/perf_event.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/if_ether.h>

static int result_errno(long rc)
{
    if (rc >= 0) { printf("RESULT ok\n"); return 0; }
    printf("RESULT %s\n", strerrorname_np(errno));
    return 0;
}

/* Run fn in a child and report how it ended: killed by a signal or the
 * errno it returned. */
static int in_child(long (*fn)(void))
{
    int status;
    pid_t pid = fork();
    if (pid == 0) {
        long rc = fn();
        _exit(rc >= 0 ? 0 : (errno & 0xff));
    }
    waitpid(pid, &status, 0);
    if (WIFSIGNALED(status))
        printf("RESULT %s\n", sigabbrev_np(WTERMSIG(status)));
    else if (WEXITSTATUS(status) == 0)
        printf("RESULT ok\n");
    else
        printf("RESULT %s\n", strerrorname_np(WEXITSTATUS(status)));
    return 0;
}

static long do_int80(void)
{
    long ret;
    /* i386 getpid (20) through the 32-bit entry point. */
    __asm__ volatile ("int $0x80" : "=a"(ret) : "a"(20) : "memory");
    if (ret < 0) { errno = (int)-ret; return -1; }
    return 0;
}

static long do_x32(void)
{
    return syscall(39 | 0x40000000);  /* x32 getpid */
}

static long do_clone_newuser(void)
{
    long rc = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, NULL, NULL, NULL, 0);
    if (rc == 0) _exit(0);
    if (rc > 0) { waitpid((pid_t)rc, NULL, 0); return 0; }
    return -1;
}

int main(int argc, char **argv)
{
    const char *c = argc > 1 ? argv[1] : "";
    const char *arg = argc > 2 ? argv[2] : "";
    char buf[4096];

    setvbuf(stdout, NULL, _IONBF, 0);
    if (!strcmp(c, "open")) return result_errno(open(arg, O_RDONLY));
    if (!strcmp(c, "opendir")) { DIR *d = opendir(arg); return result_errno(d ? 0 : -1); }
    if (!strcmp(c, "stat")) { struct stat st; return result_errno(stat(arg, &st)); }
    if (!strcmp(c, "write")) return result_errno(open(arg, O_WRONLY));
    if (!strcmp(c, "create")) return result_errno(open(arg, O_WRONLY | O_CREAT, 0644));
    if (!strcmp(c, "mkdir")) return result_errno(mkdir(arg, 0755));
    if (!strcmp(c, "cat")) {
        int fd = open(arg, O_RDONLY);
        if (fd < 0) return result_errno(-1);
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0) return result_errno(-1);
        printf("RESULT %s\n", n == 0 ? "empty" : "content");
        return 0;
    }
    if (!strcmp(c, "symlink_proc_root")) {
        symlink("/proc/1/root", "/tmp/r");
        return result_errno(open("/tmp/r/etc/passwd", O_RDONLY));
    }
    if (!strcmp(c, "hardlink")) return result_errno(link(arg, "/workspace/hardlink"));
    if (!strcmp(c, "remount")) return result_errno(mount(NULL, "/usr", NULL, MS_REMOUNT | MS_BIND, NULL));
    if (!strcmp(c, "mount_tmpfs")) return result_errno(mount("tmpfs", "/tmp", "tmpfs", 0, NULL));
    if (!strcmp(c, "umount")) return result_errno(umount2("/workspace", MNT_DETACH));
    if (!strcmp(c, "open_tree")) return result_errno(syscall(SYS_open_tree, AT_FDCWD, "/", 1));
    if (!strcmp(c, "fsopen")) return result_errno(syscall(SYS_fsopen, "tmpfs", 0));
    if (!strcmp(c, "unshare_user")) return result_errno(unshare(CLONE_NEWUSER));
    if (!strcmp(c, "unshare_mount")) return result_errno(unshare(CLONE_NEWNS));
    if (!strcmp(c, "unshare_net")) return result_errno(unshare(CLONE_NEWNET));
    if (!strcmp(c, "clone_newuser")) return result_errno(do_clone_newuser());
    if (!strcmp(c, "clone3")) { char a[88] = {0}; return result_errno(syscall(SYS_clone3, a, sizeof a)); }
    if (!strcmp(c, "setns")) {
        int fd = open("/proc/self/ns/user", O_RDONLY);
        return result_errno(setns(fd, 0));
    }
    if (!strcmp(c, "pivot_root")) return result_errno(syscall(SYS_pivot_root, "/tmp", "/tmp"));
    if (!strcmp(c, "chroot")) return result_errno(chroot("/tmp"));
    if (!strcmp(c, "ptrace_init")) return result_errno(ptrace(PTRACE_ATTACH, 1, NULL, NULL));
    if (!strcmp(c, "ptrace_traceme")) return result_errno(ptrace(PTRACE_TRACEME, 0, NULL, NULL));
    if (!strcmp(c, "process_vm_readv")) {
        struct iovec l = { buf, 16 }, r = { (void *)0x400000, 16 };
        return result_errno(process_vm_readv(1, &l, 1, &r, 1, 0));
    }
    if (!strcmp(c, "init_module")) return result_errno(syscall(SYS_init_module, buf, 16, ""));
    if (!strcmp(c, "finit_module")) return result_errno(syscall(SYS_finit_module, 0, "", 0));
    if (!strcmp(c, "delete_module")) return result_errno(syscall(SYS_delete_module, "loop", 0));
    if (!strcmp(c, "kexec_load")) return result_errno(syscall(SYS_kexec_load, 0, 0, NULL, 0));
    if (!strcmp(c, "reboot")) return result_errno(syscall(SYS_reboot, 0xfee1dead, 672274793, 0x4321fedc, NULL));
    if (!strcmp(c, "bpf")) { union bpf_attr a; memset(&a, 0, sizeof a); return result_errno(syscall(SYS_bpf, BPF_PROG_LOAD, &a, sizeof a)); }
    if (!strcmp(c, "perf_event_open")) {
        struct perf_event_attr a; memset(&a, 0, sizeof a); a.size = sizeof a;
        return result_errno(syscall(SYS_perf_event_open, &a, 0, -1, -1, 0));
    }
    if (!strcmp(c, "userfaultfd")) return result_errno(syscall(SYS_userfaultfd, 0));
    if (!strcmp(c, "keyctl")) return result_errno(syscall(SYS_keyctl, 0, 0, 0, 0, 0));
    if (!strcmp(c, "add_key")) return result_errno(syscall(SYS_add_key, "user", "x", "y", 1, -2));
    if (!strcmp(c, "io_uring_setup")) { char p[120] = {0}; return result_errno(syscall(SYS_io_uring_setup, 1, p)); }
    if (!strcmp(c, "open_by_handle_at")) { char h[16] = {0}; return result_errno(syscall(SYS_open_by_handle_at, AT_FDCWD, h, 0)); }
    if (!strcmp(c, "personality_exec")) return result_errno(personality(READ_IMPLIES_EXEC));
    if (!strcmp(c, "personality_query")) return result_errno(personality(0xffffffff));
    if (!strcmp(c, "iopl")) return result_errno(syscall(SYS_iopl, 3));
    if (!strcmp(c, "swapon")) return result_errno(syscall(SYS_swapon, "/tmp/swap", 0));
    if (!strcmp(c, "acct")) return result_errno(syscall(SYS_acct, "/tmp/acct"));
    if (!strcmp(c, "raw_socket")) return result_errno(socket(AF_INET, SOCK_RAW, IPPROTO_ICMP));
    if (!strcmp(c, "packet_socket")) return result_errno(socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL)));
    if (!strcmp(c, "egress")) {
        /* 192.0.2.1 is TEST-NET-1 (RFC 5737); the pod has no route to it. */
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(80) };
        a.sin_addr.s_addr = htonl(0xc0000201);
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        return result_errno(connect(fd, (struct sockaddr *)&a, sizeof a));
    }
    if (!strcmp(c, "loopback")) {
        struct sockaddr_in a = { .sin_family = AF_INET };
        socklen_t len = sizeof a;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int s = socket(AF_INET, SOCK_STREAM, 0);
        if (bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 1) ||
            getsockname(s, (struct sockaddr *)&a, &len))
            return result_errno(-1);
        int c2 = socket(AF_INET, SOCK_STREAM, 0);
        return result_errno(connect(c2, (struct sockaddr *)&a, sizeof a));
    }
    if (!strcmp(c, "mknod")) return result_errno(mknod(arg, S_IFCHR | 0666, makedev(1, 3)));
    if (!strcmp(c, "chmod_suid")) {
        int fd = open(arg, O_WRONLY | O_CREAT | O_TRUNC, 0755);
        if (fd < 0)
            return result_errno(-1);
        close(fd);
        return result_errno(chmod(arg, 04755));
    }
    if (!strcmp(c, "fchmod_sgid")) {
        int fd = open(arg, O_WRONLY | O_CREAT | O_TRUNC, 0755);
        if (fd < 0)
            return result_errno(-1);
        return result_errno(fchmod(fd, 02755));
    }
    if (!strcmp(c, "mknod_suid")) return result_errno(mknod(arg, S_IFREG | 04755, 0));
    if (!strcmp(c, "creat_suid")) return result_errno(open(arg, O_WRONLY | O_CREAT | O_EXCL, 04755));
    if (!strcmp(c, "capeff")) {
        FILE *f = fopen("/proc/self/status", "r");
        while (fgets(buf, sizeof buf, f))
            if (!strncmp(buf, "CapEff:", 7)) { printf("RESULT %s", buf + 8); return 0; }
        return 1;
    }
    if (!strcmp(c, "fork_bomb")) {
        int count = 0;
        for (;;) {
            pid_t p = fork();
            if (p == 0) { pause(); _exit(0); }
            if (p < 0) break;
            count++;
        }
        printf("RESULT %s %d\n", strerrorname_np(errno), count);
        kill(0, SIGKILL);
        return 0;
    }
    if (!strcmp(c, "memory_bomb")) {
        /* Allocate in a child: RLIMIT_DATA makes malloc fail (exit 1), the
         * memory cgroup's OOM killer ends it with SIGKILL (sanitizer builds
         * of the init skip RLIMIT_DATA); exit 2 means nothing stopped it. */
        int status;
        pid_t pid = fork();
        if (pid == 0) {
            size_t total = 0;
            for (;;) {
                char *p = malloc(16 << 20);
                if (p == NULL) _exit(1);
                memset(p, 1, 16 << 20);
                total += 16 << 20;
                if (total > (8ULL << 30)) _exit(2);
            }
        }
        waitpid(pid, &status, 0);
        if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
            printf("RESULT bounded KILL\n");
        else if (WIFEXITED(status) && WEXITSTATUS(status) == 1)
            printf("RESULT bounded ENOMEM\n");
        else
            printf("RESULT unbounded\n");
        return 0;
    }
    if (!strcmp(c, "fill")) {
        signal(SIGXFSZ, SIG_IGN);
        int fd = open(arg, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        memset(buf, 'x', sizeof buf);
        long long total = 0;
        for (;;) {
            ssize_t n = write(fd, buf, sizeof buf);
            if (n <= 0) break;
            total += n;
            if (total > (8LL << 30)) break;
        }
        printf("RESULT %s %lld\n", strerrorname_np(errno), total >> 20);
        unlink(arg);
        return 0;
    }
    if (!strcmp(c, "spin")) { for (;;) ; }
    if (!strcmp(c, "fds")) {
        DIR *d = opendir("/proc/self/fd");
        struct dirent *e;
        int extra = 0;
        while ((e = readdir(d)) != NULL) {
            int fd = atoi(e->d_name);
            if (e->d_name[0] != '.' && fd > 2 && fd != dirfd(d)) {
                printf("leaked fd %d\n", fd);
                extra++;
            }
        }
        printf("RESULT %s\n", extra ? "leak" : "clean");
        return 0;
    }
    if (!strcmp(c, "kill")) return result_errno(kill(atoi(arg), SIGTERM));
    if (!strcmp(c, "kill_init")) {
        kill(1, SIGKILL);
        usleep(100000);
        return result_errno(kill(1, 0));
    }
    if (!strcmp(c, "tiocsti")) { char ch = 'x'; return result_errno(ioctl(0, TIOCSTI, &ch)); }
    if (!strcmp(c, "tioclinux")) { char sub = 6; return result_errno(ioctl(0, TIOCLINUX, &sub)); }
    if (!strcmp(c, "int80")) return in_child(do_int80);
    if (!strcmp(c, "x32")) return in_child(do_x32);
    if (!strcmp(c, "sethostname")) return result_errno(sethostname("evil", 4));
    if (!strcmp(c, "setuid")) return result_errno(setuid(12345));
    if (!strcmp(c, "exec")) { execv(arg, argv + 2); return result_errno(-1); }
    printf("RESULT unknown-case\n");
    return 2;
}
