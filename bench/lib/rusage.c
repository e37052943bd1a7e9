/*
 * Runs a command once and prints what the kernel accounted for it: wall time from fork to
 * reap, and the user and system CPU time of the command and every child it reaped
 * (wait4's rusage, in microseconds, where /proc/<pid>/stat counts 10 ms ticks).
 *
 *   rusage COMMAND [ARG...]
 *
 * Output (stdout, one line): "wall_us=<n> user_us=<n> sys_us=<n> status=<exit status>".
 * The command's own stdout and stderr go to /dev/null. Exit status 0 unless the command
 * could not be started (127) or this program failed (2).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (long long)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

static long long us(struct timeval t) { return (long long)t.tv_sec * 1000000 + t.tv_usec; }

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: rusage COMMAND [ARG...]\n");
    return 2;
  }
  const long long start = now_us();
  const pid_t child = fork();
  if (child < 0) {
    perror("fork");
    return 2;
  }
  if (child == 0) {
    const int null = open("/dev/null", O_WRONLY);
    if (null >= 0) {
      dup2(null, 1);
      dup2(null, 2);
    }
    execvp(argv[1], argv + 1);
    _exit(127);
  }
  int status = 0;
  struct rusage usage;
  if (wait4(child, &status, 0, &usage) != child) {
    perror("wait4");
    return 2;
  }
  const long long wall = now_us() - start;
  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  printf("wall_us=%lld user_us=%lld sys_us=%lld status=%d\n", wall, us(usage.ru_utime), us(usage.ru_stime), code);
  return code == 127 ? 127 : 0;
}
