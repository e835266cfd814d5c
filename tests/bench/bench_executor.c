/*
 * bench_executor.c - executor-only time per tool call, beside the plain
 * system calls that do the same work.
 *
 *   read 1 KiB   nu_exec_tool read   vs  open + fstat + pread + close
 *   write 1 KiB  nu_exec_tool write  vs  open(O_TRUNC) + write + close
 *   run true     nu_exec_tool run    vs  fork + execve + waitpid
 *
 * The executor's figure includes JSON argument parsing, resolution
 * beneath the root and result building.  The baseline is the cost of the
 * kernel work alone.  Usage: bench_executor [iterations] (default 20000;
 * run uses a tenth of it).  Each figure is the best of three rounds.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "nucleus/executor.h"

extern char **environ;

static double now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* Run call n times; return the mean wall time per call and the mean
 * last_exec_ns in microseconds. */
static int bench_tool(nu_executor_t *ex, json_t *call, int n, double *wall_us,
                      double *exec_us)
{
    double start = now_us(), exec_total = 0;
    nu_err_t err;

    for (int i = 0; i < n; i++) {
        json_t *result = NULL;
        if (nu_exec_tool(ex, call, &result, NULL, &err) != NU_OK) {
            fprintf(stderr, "bench_executor: call failed: %s\n", err.msg);
            json_decref(result);
            return -1;
        }
        exec_total += (double)ex->last_exec_ns / 1e3;
        json_decref(result);
    }
    *wall_us = (now_us() - start) / n;
    *exec_us = exec_total / n;
    return 0;
}

static double baseline_read(int dir, int n)
{
    char buf[1024];
    double start = now_us();

    for (int i = 0; i < n; i++) {
        struct stat st;
        int fd = openat(dir, "file.txt", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0 || fstat(fd, &st) < 0 || pread(fd, buf, sizeof buf, 0) < 0)
            abort();
        close(fd);
    }
    return (now_us() - start) / n;
}

static double baseline_write(int dir, int n, const char *data)
{
    double start = now_us();

    for (int i = 0; i < n; i++) {
        int fd = openat(dir, "out.txt", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0 || write(fd, data, 1024) != 1024)
            abort();
        close(fd);
    }
    return (now_us() - start) / n;
}

static double baseline_spawn(int n)
{
    char *argv[] = { "/bin/true", NULL };
    double start = now_us();

    for (int i = 0; i < n; i++) {
        pid_t pid = fork();
        int status;
        if (pid == 0) {
            execve(argv[0], argv, environ);
            _exit(127);
        }
        waitpid(pid, &status, 0);
    }
    return (now_us() - start) / n;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 20000;
    char top[] = "/tmp/nu-bench-XXXXXX", cmd[64], data[1025];
    nu_executor_t ex;
    nu_err_t err;
    double wall, exec, base;
    json_t *call = NULL;
    int dir, rc = 1;

    if (n <= 0 || mkdtemp(top) == NULL)
        return 2;
    memset(data, 'x', 1024);
    data[1024] = '\0';
    dir = open(top, O_PATH | O_DIRECTORY | O_CLOEXEC);
    baseline_write(dir, 1, data);
    renameat(dir, "out.txt", dir, "file.txt");
    if (nu_executor_init(&ex, top, NULL, &err) != NU_OK) {
        fprintf(stderr, "bench_executor: %s\n", err.msg);
        return 1;
    }

    printf("%-12s %12s %14s %12s\n", "tool", "call (us)", "executor (us)", "baseline (us)");

    for (int tool = 0; tool < 3; tool++) {
        static const char *const names[] = { "read 1 KiB", "write 1 KiB", "run true" };
        double best_wall = 1e12, best_exec = 1e12, best_base = 1e12;
        int iterations = tool == 2 ? n / 10 + 1 : n;

        json_decref(call);
        if (tool == 0)
            call = json_pack("{s:s, s:s}", "tool", "read", "path", "file.txt");
        else if (tool == 1)
            call = json_pack("{s:s, s:s, s:s}", "tool", "write", "path", "w.txt",
                             "content", data);
        else
            call = json_pack("{s:s, s:[s]}", "tool", "run", "argv", "/bin/true");

        /* Alternate the two measurements and keep the best of three
         * rounds, so that load from other processes affects both alike. */
        for (int round = 0; round < 3; round++) {
            if (bench_tool(&ex, call, iterations, &wall, &exec) < 0)
                goto out;
            base = tool == 0 ? baseline_read(dir, iterations)
                 : tool == 1 ? baseline_write(dir, iterations, data)
                             : baseline_spawn(iterations);
            best_wall = wall < best_wall ? wall : best_wall;
            best_exec = exec < best_exec ? exec : best_exec;
            best_base = base < best_base ? base : best_base;
        }
        printf("%-12s %12.2f %14.2f %12.2f\n", names[tool], best_wall, best_exec, best_base);
    }
    rc = 0;

out:
    json_decref(call);
    nu_executor_close(&ex);
    close(dir);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", top);
    if (system(cmd) != 0)
        rc = 1;
    return rc;
}
