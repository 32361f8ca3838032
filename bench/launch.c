/*
 * bench_launch — run one workload and measure it from outside: wall time and
 * the child's peak RSS.
 *
 *   bench_launch -o RESULT [-t SECONDS] [-g BTFILE] [-e VAR=VALUE]... -- PROGRAM ARGS...
 *
 * Writes one line to RESULT: "wall_ns=... maxrss_kb=... status=... signal=...".
 * The workload's stdout and stderr pass through.
 *
 * Why not measure from the Python runner directly: Linux carries the parent's
 * peak RSS over an exec (ru_maxrss of a child started from a 20 MB Python
 * process is at least 20 MB), which would swamp small workloads. This
 * launcher is a few hundred KB, less than any workload, so the child's
 * ru_maxrss from wait4 is the workload's own. The -e variables (LD_PRELOAD)
 * are set in the child only, so the preloaded allocator does not load into
 * the launcher. With -t the child is killed (SIGKILL) after SECONDS, so a
 * deadlocked allocator cannot hang the run. With -g, a run that times out is
 * first shown to gdb (`gdb -p PID -batch -ex 'thread apply all bt'`, output
 * in BTFILE, at most 60 s), so a hang leaves the backtrace of every thread.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static pid_t child;
static const char *btfile;
static volatile sig_atomic_t timed_out;

static void on_alarm(int sig) {
    (void)sig;
    timed_out = 1;
    if (child > 0 && !btfile) kill(child, SIGKILL);
}

/* The backtrace of every thread of the hung child, into btfile. */
static void backtrace_child(void) {
    char pid[32];
    snprintf(pid, sizeof pid, "%d", (int)child);
    pid_t g = fork();
    if (g == 0) {
        FILE *f = freopen(btfile, "w", stdout);
        if (!f) _exit(127);
        dup2(1, 2);
        alarm(60); /* SIGALRM's default action ends a gdb that hangs too */
        execlp("gdb", "gdb", "-p", pid, "-batch", "-ex", "info threads",
               "-ex", "thread apply all bt", (char *)NULL);
        printf("bench_launch: cannot run gdb: %s\n", strerror(errno));
        _exit(127);
    }
    if (g > 0)
        while (waitpid(g, NULL, 0) < 0 && errno == EINTR) {}
}

static void usage(void) {
    fprintf(stderr, "usage: bench_launch -o RESULT [-t SECONDS] [-g BTFILE] [-e VAR=VALUE]... -- PROGRAM ARGS...\n");
    exit(2);
}

int main(int argc, char **argv) {
    const char *out = NULL;
    unsigned timeout = 0;
    char **envs = calloc((size_t)argc, sizeof(char *));
    int nenv = 0, i;
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) { i++; break; }
        if (i + 1 >= argc) usage();
        if (strcmp(argv[i], "-o") == 0) out = argv[++i];
        else if (strcmp(argv[i], "-t") == 0) timeout = (unsigned)atoi(argv[++i]);
        else if (strcmp(argv[i], "-e") == 0) envs[nenv++] = argv[++i];
        else if (strcmp(argv[i], "-g") == 0) btfile = argv[++i];
        else usage();
    }
    if (!out || i >= argc) usage();

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    child = fork();
    if (child < 0) { perror("fork"); return 2; }
    if (child == 0) {
        for (int k = 0; k < nenv; k++) putenv(envs[k]);
        execvp(argv[i], argv + i);
        fprintf(stderr, "bench_launch: cannot run %s: %s\n", argv[i], strerror(errno));
        _exit(127);
    }
    if (timeout) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_alarm; /* no SA_RESTART: wait4 returns EINTR */
        sigemptyset(&sa.sa_mask);
        sigaction(SIGALRM, &sa, NULL);
        alarm(timeout);
    }
    int status;
    struct rusage ru;
    while (wait4(child, &status, 0, &ru) < 0) {
        if (errno != EINTR) { perror("wait4"); return 2; }
        if (timed_out && btfile) {
            backtrace_child();
            kill(child, SIGKILL);
            btfile = NULL;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long long ns = (t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec);

    FILE *f = fopen(out, "w");
    if (!f) { perror(out); return 2; }
    fprintf(f, "wall_ns=%lld maxrss_kb=%ld status=%d signal=%d user_us=%lld sys_us=%lld "
            "timed_out=%d\n",
            ns, ru.ru_maxrss,
            WIFEXITED(status) ? WEXITSTATUS(status) : -1,
            WIFSIGNALED(status) ? WTERMSIG(status) : 0,
            (long long)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec,
            (long long)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec,
            (int)timed_out);
    fclose(f);
    return 0;
}
