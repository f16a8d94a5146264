/*
 * coldstart: exec -> first HTTP 200, measured from the parent.
 *
 *   coldstart -n RUNS -p PORT -r REQUEST_FILE [-f FRESH_DIR] [-t TIMEOUT_MS] -- CMD ARGS...
 *
 * For each run: optionally removes FRESH_DIR (untimed), takes a monotonic
 * timestamp, fork+execs CMD (stdout/stderr to /dev/null), then polls
 * 127.0.0.1:PORT with minimal delay (a failed connect is retried after 50 us)
 * sending the raw bytes of REQUEST_FILE until a response starts with
 * "HTTP/1.1 200". It prints one line per run (milliseconds), SIGTERMs the
 * child, reaps it, and finally prints a JSON summary line:
 *   {"runs":N,"median_ms":...,"min_ms":...,"max_ms":...,"samples_ms":[...]}
 * Loopback only; every run is bounded by TIMEOUT_MS (default 10000).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void usage(void) {
    fprintf(stderr, "usage: coldstart -n RUNS -p PORT -r REQUEST_FILE [-f FRESH_DIR] [-t TIMEOUT_MS] -- CMD ARGS...\n");
    exit(2);
}

/* One attempt: 1 = got a 200, 0 = not yet (refused, closed, other status). */
static int try_once(int port, const char *req, size_t req_len) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return 0;
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct timeval tv = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return 0;
    }
    size_t off = 0;
    while (off < req_len) {
        ssize_t w = write(fd, req + off, req_len - off);
        if (w <= 0) { close(fd); return 0; }
        off += (size_t)w;
    }
    char buf[64];
    size_t got = 0;
    while (got < 12) {
        ssize_t r = read(fd, buf + got, sizeof buf - 1 - got);
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    buf[got] = 0;
    return got >= 12 && strncmp(buf, "HTTP/1.1 200", 12) == 0;
}

int main(int argc, char **argv) {
    int runs = 20, port = 0, opt;
    long timeout_ms = 10000;
    const char *req_file = NULL, *fresh = NULL;
    while ((opt = getopt(argc, argv, "+n:p:r:f:t:")) != -1) {
        switch (opt) {
        case 'n': runs = atoi(optarg); break;
        case 'p': port = atoi(optarg); break;
        case 'r': req_file = optarg; break;
        case 'f': fresh = optarg; break;
        case 't': timeout_ms = atol(optarg); break;
        default: usage();
        }
    }
    if (optind >= argc || !port || !req_file || runs < 1 || runs > 1000) usage();
    char **cmd = argv + optind;

    FILE *rf = fopen(req_file, "rb");
    if (!rf) { perror(req_file); return 2; }
    char req[8192];
    size_t req_len = fread(req, 1, sizeof req, rf);
    fclose(rf);

    double *samples = calloc((size_t)runs, sizeof *samples);
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    for (int i = 0; i < runs; i++) {
        if (fresh) {
            char rm[4096];
            snprintf(rm, sizeof rm, "rm -rf -- '%s'", fresh);
            if (system(rm) != 0) { fprintf(stderr, "cannot remove %s\n", fresh); return 1; }
        }
        if (try_once(port, req, req_len)) {
            fprintf(stderr, "port %d already answers; is an old server still running?\n", port);
            return 1;
        }
        double t0 = now_ms();
        pid_t pid = fork();
        if (pid < 0) { perror("fork"); return 1; }
        if (pid == 0) {
            dup2(devnull, 0);
            dup2(devnull, 1);
            dup2(devnull, 2);
            execvp(cmd[0], cmd);
            _exit(127);
        }
        double t1 = 0;
        for (;;) {
            if (try_once(port, req, req_len)) { t1 = now_ms(); break; }
            int status;
            if (waitpid(pid, &status, WNOHANG) == pid) {
                fprintf(stderr, "run %d: the server exited before answering 200 (status %d)\n", i, status);
                return 1;
            }
            if (now_ms() - t0 > timeout_ms) {
                fprintf(stderr, "run %d: no 200 within %ld ms\n", i, timeout_ms);
                kill(pid, SIGKILL);
                waitpid(pid, NULL, 0);
                return 1;
            }
            struct timespec d = {0, 50 * 1000};
            nanosleep(&d, NULL);
        }
        samples[i] = t1 - t0;
        printf("%.3f\n", samples[i]);
        fflush(stdout);
        kill(pid, SIGTERM);
        double k0 = now_ms();
        int status;
        while (waitpid(pid, &status, WNOHANG) == 0) {
            if (now_ms() - k0 > 5000) { kill(pid, SIGKILL); waitpid(pid, &status, 0); break; }
            struct timespec d = {0, 1000 * 1000};
            nanosleep(&d, NULL);
        }
    }
    double *sorted = malloc((size_t)runs * sizeof *sorted);
    memcpy(sorted, samples, (size_t)runs * sizeof *sorted);
    qsort(sorted, (size_t)runs, sizeof *sorted, cmp);
    double median = runs % 2 ? sorted[runs / 2] : (sorted[runs / 2 - 1] + sorted[runs / 2]) / 2;
    printf("{\"runs\":%d,\"median_ms\":%.3f,\"min_ms\":%.3f,\"max_ms\":%.3f,\"samples_ms\":[", runs, median, sorted[0], sorted[runs - 1]);
    for (int i = 0; i < runs; i++) printf("%s%.3f", i ? "," : "", samples[i]);
    printf("]}\n");
    return 0;
}
