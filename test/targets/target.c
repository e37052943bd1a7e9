/*
 * Processes in known states, for the thread-sampling tests and benchmarks.
 *
 *   target MODE [ARGS]
 *
 * Each mode puts itself in place, then prints one line on stdout,
 *   ready pid=<pid> key=value ...
 * naming the pids and tids it made, and stays that way until killed.
 *
 *   sleep              the main thread sleeps in clock_nanosleep
 *   fifo-reader PATH   opens the fifo PATH (a writer must have it open) and blocks in read
 *   deadlock           threads a and b each hold one mutex and wait for the other; main joins a
 *   spin               the main thread burns CPU in user space
 *   threads N [spin]   N extra threads sleeping in clock_nanosleep (the benchmark's target);
 *                      with spin, the main thread burns CPU instead of sleeping
 *   rename NAME        a thread renames itself NAME (prctl PR_SET_NAME), then sleeps
 *   vfork-parent       vfork; the child sleeps before _exit, so the parent waits uninterruptibly
 *   epoll-idle         an idle server in epoll_wait on a socket listening on 127.0.0.1:0
 *   poll-idle          the main thread in poll on the read end of an empty pipe
 *   zombie             forks a child that exits at once and is never reaped
 *   orphan-fifo-reader PATH
 *                      a worker opens the fifo PATH and blocks in read; the main thread
 *                      calls pthread_exit (so /proc/<pid>/fd is empty from then on)
 *   join-sleeper       the main thread joins a worker that sleeps in clock_nanosleep
 *   fifo-opener PATH   opens the fifo PATH for reading while nobody has it open: blocks in openat
 *   latin1-names       two threads named "caf\xe9" and "caf\xe8" (Latin-1, not UTF-8), and
 *                      one "a\\b" (a backslash)
 *   tick               the main thread wakes every 2 ms (it runs, briefly, all the time);
 *                      a worker (sleeper=TID) sleeps in clock_nanosleep
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static pid_t current_tid(void) { return (pid_t)syscall(SYS_gettid); }

static void die(const char *what) {
  fprintf(stderr, "target: %s: %s\n", what, strerror(errno));
  exit(2);
}

__attribute__((noreturn)) static void sleep_forever(void) {
  struct timespec day = {86400, 0};
  for (;;) clock_nanosleep(CLOCK_MONOTONIC, 0, &day, NULL);
}

static void ready(const char *extra) {
  printf("ready pid=%d%s%s\n", (int)getpid(), extra[0] ? " " : "", extra);
  fflush(stdout);
}

/* ---------------------------------------------------------------- deadlock */

static pthread_mutex_t lock_a = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t lock_b = PTHREAD_MUTEX_INITIALIZER;
static pthread_barrier_t both_hold_one;
static volatile pid_t deadlock_tids[2];

static void *take_in_order(void *arg) {
  const int first_is_a = arg != NULL;
  deadlock_tids[first_is_a ? 0 : 1] = current_tid();
  pthread_mutex_lock(first_is_a ? &lock_a : &lock_b);
  pthread_barrier_wait(&both_hold_one);
  pthread_mutex_lock(first_is_a ? &lock_b : &lock_a); /* never returns */
  return NULL;
}

static int run_deadlock(void) {
  pthread_t a, b;
  pthread_barrier_init(&both_hold_one, NULL, 3);
  if (pthread_create(&a, NULL, take_in_order, (void *)1) != 0) die("pthread_create");
  if (pthread_create(&b, NULL, take_in_order, NULL) != 0) die("pthread_create");
  pthread_barrier_wait(&both_hold_one);
  char extra[64];
  snprintf(extra, sizeof extra, "a=%d b=%d", (int)deadlock_tids[0], (int)deadlock_tids[1]);
  ready(extra);
  pthread_join(a, NULL);
  return 0;
}

/* ---------------------------------------------------------------- threads N, rename */

static pthread_barrier_t all_started;

static void *sleeper(void *arg) {
  (void)arg;
  pthread_barrier_wait(&all_started);
  sleep_forever();
}

static int run_threads(long count, int spin) {
  if (count < 0 || count > 100000) {
    fprintf(stderr, "target: threads N: N out of range\n");
    return 2;
  }
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 64 * 1024); /* 1,000 threads in ~64 MB of address space */
  pthread_barrier_init(&all_started, NULL, (unsigned)count + 1);
  for (long i = 0; i < count; i++) {
    pthread_t thread;
    if (pthread_create(&thread, &attr, sleeper, NULL) != 0) die("pthread_create");
  }
  pthread_barrier_wait(&all_started);
  char extra[32];
  snprintf(extra, sizeof extra, "threads=%ld", count + 1);
  ready(extra);
  if (spin) {
    volatile unsigned long counter = 0;
    for (;;) counter++;
  }
  sleep_forever();
}

static const char *new_name;
static volatile pid_t renamed_tid;

static void *renamer(void *arg) {
  (void)arg;
  if (prctl(PR_SET_NAME, new_name, 0, 0, 0) != 0) die("prctl");
  renamed_tid = current_tid();
  pthread_barrier_wait(&all_started);
  sleep_forever();
}

static int run_rename(const char *name) {
  pthread_t thread;
  new_name = name;
  pthread_barrier_init(&all_started, NULL, 2);
  if (pthread_create(&thread, NULL, renamer, NULL) != 0) die("pthread_create");
  pthread_barrier_wait(&all_started);
  char extra[32];
  snprintf(extra, sizeof extra, "tid=%d", (int)renamed_tid);
  ready(extra);
  sleep_forever();
}

/* ---------------------------------------------------------------- the others */

static int run_fifo_reader(const char *path) {
  const int fd = open(path, O_RDONLY); /* returns at once: the writer already has it open */
  if (fd < 0) die("open fifo");
  char extra[32];
  snprintf(extra, sizeof extra, "fd=%d", fd);
  ready(extra);
  char byte;
  for (;;) {
    const ssize_t n = read(fd, &byte, 1);
    if (n == 0) return 0; /* the writer closed */
    if (n < 0 && errno != EINTR) die("read");
  }
}

__attribute__((noreturn)) static void run_spin(void) {
  volatile unsigned long counter = 0;
  ready("");
  for (;;) counter++;
}

/* Writes "ready pid=<parent> child=<self>" with write(2) only: all a vfork child may do. */
static void vfork_child_ready(void) {
  char line[64] = "ready pid=";
  size_t at = strlen(line);
  long values[2] = {(long)getppid(), (long)getpid()};
  for (int v = 0; v < 2; v++) {
    if (v == 1) {
      memcpy(line + at, " child=", 7);
      at += 7;
    }
    char digits[24];
    int count = 0;
    long value = values[v];
    do {
      digits[count++] = (char)('0' + value % 10);
      value /= 10;
    } while (value != 0);
    while (count > 0) line[at++] = digits[--count];
  }
  line[at++] = '\n';
  ssize_t ignored = write(STDOUT_FILENO, line, at);
  (void)ignored;
}

static int run_vfork_parent(void) {
  const pid_t child = vfork();
  if (child < 0) die("vfork");
  if (child == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0); /* a syscall, as a vfork child may make */
    vfork_child_ready();
    /* Bounded, so an orphaned child does not outlive a crashed test by much. */
    struct timespec pause = {120, 0};
    while (clock_nanosleep(CLOCK_MONOTONIC, 0, &pause, &pause) == EINTR) {
    }
    _exit(0);
  }
  sleep_forever();
}

__attribute__((noreturn)) static void run_epoll_idle(void) {
  const int server = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (server < 0) die("socket");
  struct sockaddr_in address;
  memset(&address, 0, sizeof address);
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  if (bind(server, (struct sockaddr *)&address, sizeof address) != 0) die("bind");
  if (listen(server, 16) != 0) die("listen");
  socklen_t length = sizeof address;
  if (getsockname(server, (struct sockaddr *)&address, &length) != 0) die("getsockname");
  const int epoll = epoll_create1(EPOLL_CLOEXEC);
  if (epoll < 0) die("epoll_create1");
  struct epoll_event interest = {.events = EPOLLIN, .data = {.fd = server}};
  if (epoll_ctl(epoll, EPOLL_CTL_ADD, server, &interest) != 0) die("epoll_ctl");
  char extra[64];
  snprintf(extra, sizeof extra, "port=%d epfd=%d", (int)ntohs(address.sin_port), epoll);
  ready(extra);
  for (;;) {
    struct epoll_event events[8];
    const int n = epoll_wait(epoll, events, 8, -1);
    for (int i = 0; i < n; i++) {
      const int client = accept(server, NULL, NULL);
      if (client >= 0) close(client);
    }
  }
}

__attribute__((noreturn)) static void run_poll_idle(void) {
  int ends[2];
  if (pipe(ends) != 0) die("pipe");
  struct pollfd watch = {.fd = ends[0], .events = POLLIN};
  char extra[32];
  snprintf(extra, sizeof extra, "fd=%d", ends[0]);
  ready(extra);
  for (;;) poll(&watch, 1, -1);
}

static int run_zombie(void) {
  const pid_t child = fork();
  if (child < 0) die("fork");
  if (child == 0) _exit(0);
  /* Wait until it has exited, without reaping it. */
  siginfo_t info;
  memset(&info, 0, sizeof info);
  while (waitid(P_PID, (id_t)child, &info, WEXITED | WNOWAIT) != 0)
    if (errno != EINTR) die("waitid");
  char extra[32];
  snprintf(extra, sizeof extra, "zombie=%d", (int)child);
  ready(extra);
  sleep_forever();
}

/* ---------------------------------------------------------------- orphan-fifo-reader, join-sleeper */

static void *read_fifo_worker(void *arg) {
  const int fd = open((const char *)arg, O_RDONLY);
  if (fd < 0) die("open fifo");
  char extra[48];
  snprintf(extra, sizeof extra, "tid=%d fd=%d", (int)current_tid(), fd);
  ready(extra);
  char byte;
  for (;;) {
    const ssize_t n = read(fd, &byte, 1);
    if (n == 0) exit(0); /* the writer closed */
    if (n < 0 && errno != EINTR) die("read");
  }
}

static int run_orphan_fifo_reader(const char *path) {
  pthread_t worker;
  if (pthread_create(&worker, NULL, read_fifo_worker, (void *)path) != 0) die("pthread_create");
  pthread_exit(NULL); /* the process lives on in the worker; the leader stays a zombie */
}

static void *sleep_worker(void *arg) {
  (void)arg;
  renamed_tid = current_tid();
  pthread_barrier_wait(&all_started);
  sleep_forever();
}

static int run_join_sleeper(void) {
  pthread_t worker;
  pthread_barrier_init(&all_started, NULL, 2);
  if (pthread_create(&worker, NULL, sleep_worker, NULL) != 0) die("pthread_create");
  pthread_barrier_wait(&all_started);
  char extra[32];
  snprintf(extra, sizeof extra, "tid=%d", (int)renamed_tid);
  ready(extra);
  pthread_join(worker, NULL); /* glibc: futex wait on the worker's tid word, expecting its tid */
  return 0;
}

static int run_fifo_opener(const char *path) {
  ready("");
  const int fd = open(path, O_RDONLY); /* blocks until a writer opens it */
  if (fd < 0) die("open fifo");
  return 0;
}

static void *named_sleeper(void *arg) {
  if (prctl(PR_SET_NAME, (const char *)arg, 0, 0, 0) != 0) die("prctl");
  pthread_barrier_wait(&all_started);
  sleep_forever();
}

static int run_latin1_names(void) {
  static const char *names[] = {"caf\xe9", "caf\xe8", "a\\b"};
  pthread_barrier_init(&all_started, NULL, 4);
  for (int i = 0; i < 3; i++) {
    pthread_t thread;
    if (pthread_create(&thread, NULL, named_sleeper, (void *)names[i]) != 0) die("pthread_create");
  }
  pthread_barrier_wait(&all_started);
  ready("");
  sleep_forever();
}

/* ---------------------------------------------------------------- tick */

static void *lone_sleeper(void *arg) {
  *(volatile pid_t *)arg = current_tid();
  sleep_forever();
}

__attribute__((noreturn)) static void run_tick(void) {
  static volatile pid_t sleeper_tid;
  pthread_t thread;
  if (pthread_create(&thread, NULL, lone_sleeper, (void *)&sleeper_tid) != 0) die("pthread_create");
  struct timespec tick = {0, 2 * 1000 * 1000};
  while (sleeper_tid == 0) nanosleep(&tick, NULL);
  char extra[64];
  snprintf(extra, sizeof extra, "sleeper=%d", (int)sleeper_tid);
  ready(extra);
  for (;;) nanosleep(&tick, NULL);
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "";
  /* Die with the test (or benchmark) that started us, even if it crashes. */
  prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  if (strcmp(mode, "sleep") == 0) {
    ready("");
    sleep_forever();
  }
  if (strcmp(mode, "fifo-reader") == 0 && argc > 2) return run_fifo_reader(argv[2]);
  if (strcmp(mode, "deadlock") == 0) return run_deadlock();
  if (strcmp(mode, "spin") == 0) run_spin();
  if (strcmp(mode, "threads") == 0 && argc > 2)
    return run_threads(strtol(argv[2], NULL, 10), argc > 3 && strcmp(argv[3], "spin") == 0);
  if (strcmp(mode, "rename") == 0 && argc > 2) return run_rename(argv[2]);
  if (strcmp(mode, "vfork-parent") == 0) return run_vfork_parent();
  if (strcmp(mode, "epoll-idle") == 0) run_epoll_idle();
  if (strcmp(mode, "poll-idle") == 0) run_poll_idle();
  if (strcmp(mode, "zombie") == 0) return run_zombie();
  if (strcmp(mode, "orphan-fifo-reader") == 0 && argc > 2) return run_orphan_fifo_reader(argv[2]);
  if (strcmp(mode, "join-sleeper") == 0) return run_join_sleeper();
  if (strcmp(mode, "fifo-opener") == 0 && argc > 2) return run_fifo_opener(argv[2]);
  if (strcmp(mode, "latin1-names") == 0) return run_latin1_names();
  if (strcmp(mode, "tick") == 0) run_tick();
  fprintf(stderr,
          "usage: target sleep | fifo-reader PATH | deadlock | spin | threads N [spin] | rename NAME |\n"
          "              vfork-parent | epoll-idle | poll-idle | zombie | orphan-fifo-reader PATH |\n"
          "              join-sleeper | fifo-opener PATH | latin1-names | tick\n");
  return 2;
}
