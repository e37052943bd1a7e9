/*
 * The C floor for sampling a process's threads from procfs: the least a
 * program can do to read the same files, written the obvious way. For each
 * round it lists /proc/PID/task, then for every thread opens, reads and closes
 * /proc/PID/task/TID/FILE for each FILE given, and prints the round's time. With
 * `sched` among the files it first reads /proc/thread-self/sched once, as the
 * sampler does for the clock its offCpuNs is measured against.
 *
 *   floor PID ROUNDS FILE...        e.g. floor 1234 3 stat schedstat status syscall wchan
 *
 * Output: one line per round, "ms=<milliseconds> threads=<n> bytes=<total read>".
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: floor PID ROUNDS FILE...\n");
    return 2;
  }
  const long pid = strtol(argv[1], NULL, 10);
  const long rounds = strtol(argv[2], NULL, 10);
  char path[256];
  char buffer[8192];
  for (long round = 0; round < rounds; round++) {
    const double start = now_ms();
    long threads = 0, bytes = 0;
    for (int f = 3; f < argc; f++) {
      if (strcmp(argv[f], "sched") != 0) continue;
      const int fd = open("/proc/thread-self/sched", O_RDONLY);
      if (fd >= 0) {
        const ssize_t n = read(fd, buffer, sizeof buffer);
        if (n > 0) bytes += n;
        close(fd);
      }
    }
    snprintf(path, sizeof path, "/proc/%ld/task", pid);
    DIR *task = opendir(path);
    if (task == NULL) {
      perror(path);
      return 1;
    }
    struct dirent *entry;
    while ((entry = readdir(task)) != NULL) {
      if (entry->d_name[0] < '0' || entry->d_name[0] > '9') continue;
      threads++;
      for (int f = 3; f < argc; f++) {
        snprintf(path, sizeof path, "/proc/%ld/task/%s/%s", pid, entry->d_name, argv[f]);
        const int fd = open(path, O_RDONLY);
        if (fd < 0) continue;
        const ssize_t n = read(fd, buffer, sizeof buffer);
        if (n > 0) bytes += n;
        close(fd);
      }
    }
    closedir(task);
    printf("ms=%.3f threads=%ld bytes=%ld\n", now_ms() - start, threads, bytes);
  }
  return 0;
}
