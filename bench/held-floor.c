/*
 * The C floor for sampling processes' threads again and again: the reads a reused thread
 * sampler (createThreadSampler, what watch() and serve use) must make at full detail, and
 * nothing else, written the obvious way: every fd opened once and kept, every read a pread.
 *
 * Per process and sample: the leader's task/PID/stat (its thread count; the task directory is
 * listed again only when that count changes), then every thread's stat and schedstat (its
 * state and CPU time, read in every sample); a thread that has run since its last full read
 * (schedstat's CPU time or timeslice count moved), or whose state letter changed or is R,
 * also gets stat, status, syscall and wchan read again: the rule native/linux/threads.cc
 * follows, so both make the same reads.
 *
 *   held-floor --rounds N PID...        N samples back to back after one that opens the
 *                                       files; one line per sample: "ms=<ms> threads=<n> reads=<n>"
 *   held-floor --interval-ms N PID...   a sample every N ms until killed (as serve does at
 *                                       --interval); "ready" once the first sample is done
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

enum { STAT, SCHEDSTAT, STATUS, SYSCALL, WCHAN, FILES };
static const char *const kFile[FILES] = {"stat", "schedstat", "status", "syscall", "wchan"};

struct thread {
  long tid;
  int fd[FILES];
  int has_last;
  char last_state;
  unsigned long long last_cpu, last_slices;
  int seen;
};

struct process {
  long pid;
  int task;       /* /proc/PID/task, kept */
  int leader;     /* task/PID/stat, kept */
  struct thread *threads;
  size_t count, capacity;
};

static char buffer[16384];
static long reads;

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* pread the whole (small) file from offset 0; the length, or -1 when the thread is gone. */
static ssize_t read_kept(int fd) {
  reads++;
  const ssize_t n = pread(fd, buffer, sizeof buffer - 1, 0);
  if (n >= 0) buffer[n] = '\0';
  return n;
}

static int open_file(struct process *p, long tid, int file) {
  char path[64];
  snprintf(path, sizeof path, "%ld/%s", tid, kFile[file]);
  return openat(p->task, path, O_RDONLY | O_CLOEXEC);
}

/* Field `index` (1-based, as proc(5) numbers them) of a stat line, after the comm's ')'. */
static const char *stat_field(const char *text, int index) {
  const char *at = strrchr(text, ')');
  if (at == NULL) return NULL;
  at += 2; /* field 3, the state */
  for (int field = 3; field < index && at != NULL; field++) {
    at = strchr(at, ' ');
    if (at != NULL) at++;
  }
  return at;
}

static void relist(struct process *p) {
  for (size_t i = 0; i < p->count; i++) p->threads[i].seen = 0;
  lseek(p->task, 0, SEEK_SET);
  char entries[8192];
  for (;;) {
    const long n = syscall(SYS_getdents64, p->task, entries, sizeof entries);
    if (n <= 0) break;
    for (long at = 0; at < n;) {
      const struct dirent64 *entry = (const struct dirent64 *)(entries + at);
      at += entry->d_reclen;
      if (entry->d_name[0] < '0' || entry->d_name[0] > '9') continue;
      const long tid = strtol(entry->d_name, NULL, 10);
      size_t i = 0;
      while (i < p->count && p->threads[i].tid != tid) i++;
      if (i == p->count) {
        if (p->count == p->capacity) {
          p->capacity = p->capacity ? p->capacity * 2 : 64;
          p->threads = realloc(p->threads, p->capacity * sizeof *p->threads);
          if (p->threads == NULL) exit(2);
        }
        struct thread *t = &p->threads[p->count++];
        memset(t, 0, sizeof *t);
        t->tid = tid;
        for (int f = 0; f < FILES; f++) t->fd[f] = -1;
      }
      p->threads[i].seen = 1;
    }
  }
  /* Forget the threads not listed. */
  size_t kept = 0;
  for (size_t i = 0; i < p->count; i++) {
    if (p->threads[i].seen) {
      p->threads[kept++] = p->threads[i];
    } else {
      for (int f = 0; f < FILES; f++)
        if (p->threads[i].fd[f] >= 0) close(p->threads[i].fd[f]);
    }
  }
  p->count = kept;
}

/* One read through the thread's kept fd (opened on first use); -1 when it is gone. */
static ssize_t read_thread(struct process *p, struct thread *t, int file) {
  if (t->fd[file] < 0) t->fd[file] = open_file(p, t->tid, file);
  if (t->fd[file] < 0) return -1;
  return read_kept(t->fd[file]);
}

static size_t sample(struct process *p) {
  if (read_kept(p->leader) > 0) {
    const char *threads = stat_field(buffer, 20);
    if (threads == NULL || (size_t)strtol(threads, NULL, 10) != p->count) relist(p);
  } else {
    relist(p);
  }
  size_t sampled = 0;
  for (size_t i = 0; i < p->count; i++) {
    struct thread *t = &p->threads[i];
    if (read_thread(p, t, STAT) <= 0) continue;
    const char *state = stat_field(buffer, 3);
    const char letter = state != NULL ? *state : '?';
    if (read_thread(p, t, SCHEDSTAT) <= 0) continue;
    unsigned long long cpu = 0, delay = 0, slices = 0;
    sscanf(buffer, "%llu %llu %llu", &cpu, &delay, &slices);
    sampled++;
    if (t->has_last && cpu != 0 && cpu == t->last_cpu && slices == t->last_slices && letter == t->last_state && letter != 'R') continue;
    /* A full read: the thread ran, or its state says its other files may have changed. */
    read_thread(p, t, STAT);
    read_thread(p, t, STATUS);
    read_thread(p, t, SYSCALL);
    read_thread(p, t, WCHAN);
    t->has_last = 1;
    t->last_state = letter;
    t->last_cpu = cpu;
    t->last_slices = slices;
  }
  return sampled;
}

int main(int argc, char **argv) {
  long rounds = -1, interval_ms = -1;
  int first = 1;
  for (; first + 1 < argc && argv[first][0] == '-'; first += 2) {
    if (strcmp(argv[first], "--rounds") == 0) rounds = strtol(argv[first + 1], NULL, 10);
    else if (strcmp(argv[first], "--interval-ms") == 0) interval_ms = strtol(argv[first + 1], NULL, 10);
  }
  const int count = argc - first;
  if (count < 1 || (rounds < 0) == (interval_ms < 0)) {
    fprintf(stderr, "usage: held-floor --rounds N PID... | held-floor --interval-ms N PID...\n");
    return 2;
  }
  struct process *processes = calloc((size_t)count, sizeof *processes);
  for (int i = 0; i < count; i++) {
    struct process *p = &processes[i];
    p->pid = strtol(argv[first + i], NULL, 10);
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/task", p->pid);
    p->task = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    snprintf(path, sizeof path, "%ld/stat", p->pid);
    p->leader = p->task < 0 ? -1 : openat(p->task, path, O_RDONLY | O_CLOEXEC);
    if (p->task < 0 || p->leader < 0) {
      fprintf(stderr, "held-floor: pid %ld: %s\n", p->pid, strerror(errno));
      return 1;
    }
    relist(p);
  }
  size_t threads = 0;
  for (int i = 0; i < count; i++) threads += sample(&processes[i]); /* opens and keeps the files */
  if (rounds >= 0) {
    for (long round = 0; round < rounds; round++) {
      const double start = now_ms();
      const long before = reads;
      threads = 0;
      for (int i = 0; i < count; i++) threads += sample(&processes[i]);
      printf("ms=%.3f threads=%zu reads=%ld\n", now_ms() - start, threads, reads - before);
    }
    return 0;
  }
  printf("ready threads=%zu\n", threads);
  fflush(stdout);
  struct timespec next;
  clock_gettime(CLOCK_MONOTONIC, &next);
  for (;;) {
    next.tv_nsec += interval_ms * 1000000L;
    while (next.tv_nsec >= 1000000000L) {
      next.tv_nsec -= 1000000000L;
      next.tv_sec++;
    }
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR) {
    }
    for (int i = 0; i < count; i++) sample(&processes[i]);
  }
}
