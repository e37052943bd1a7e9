/*
 * A process whose threads wait in known functions, for the user-stack tests.
 *
 *   stacks FIFO
 *
 * The main thread calls stacks_outer_caller → stacks_wait_in_read, which reads
 * lines from FIFO (opened read-write, so it never sees end-of-file) and answers
 * each with "got <line>" on stdout; a read that fails with EINTR prints "eintr"
 * and reads again, so a test sees what a stop did to the call. A worker spins in
 * stacks_spin (on a CPU: only ptrace can stop it), another sleeps in
 * stacks_sleep_in_nanosleep. A fourth waits in poll for its stdout's reader to go away,
 * and ends the process then. Once all are in place it prints
 *   ready pid=<pid> spinner=<tid> sleeper=<tid>
 * The tests build it with and without frame pointers and unwind tables.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static volatile unsigned long spins;
static volatile pid_t spinner_tid;
static volatile pid_t sleeper_tid;

__attribute__((noinline)) void stacks_spin(void) {
  for (;;) {
    spins++;
    __asm__ volatile("" ::: "memory");
  }
}

static void *spinner(void *unused) {
  (void)unused;
  spinner_tid = (pid_t)syscall(SYS_gettid);
  stacks_spin();
  return NULL;
}

__attribute__((noinline)) void stacks_sleep_in_nanosleep(void) {
  struct timespec day = {86400, 0};
  for (;;) nanosleep(&day, NULL);
}

/* Ends the process once whoever reads its stdout is gone (POLLERR on the pipe), so a test
   run killed outright leaves no spinning target behind. */
static void *watchdog(void *unused) {
  (void)unused;
  struct pollfd out = {STDOUT_FILENO, 0, 0};
  while (poll(&out, 1, -1) < 0 && errno == EINTR) {
  }
  _exit(0);
}

static void *sleeper(void *unused) {
  (void)unused;
  sleeper_tid = (pid_t)syscall(SYS_gettid);
  stacks_sleep_in_nanosleep();
  return NULL;
}

__attribute__((noinline)) int stacks_wait_in_read(int fd) {
  char line[256];
  for (;;) {
    const ssize_t n = read(fd, line, sizeof line - 1);
    if (n < 0 && errno == EINTR) {
      fputs("eintr\n", stdout);
      fflush(stdout);
      continue;
    }
    if (n <= 0) return 1;
    line[n] = '\0';
    printf("got %s", line);
    fflush(stdout);
  }
}

__attribute__((noinline)) int stacks_outer_caller(int fd) {
  const int result = stacks_wait_in_read(fd);
  __asm__ volatile("" ::: "memory");  // not a tail call: this frame stays on the stack
  return result + 1;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: stacks FIFO\n");
    return 2;
  }
  const int fd = open(argv[1], O_RDWR);
  if (fd < 0) {
    fprintf(stderr, "stacks: open %s: %s\n", argv[1], strerror(errno));
    return 2;
  }
  pthread_t a, b, c;
  if (pthread_create(&a, NULL, spinner, NULL) != 0 || pthread_create(&b, NULL, sleeper, NULL) != 0 ||
      pthread_create(&c, NULL, watchdog, NULL) != 0)
    return 2;
  while (spinner_tid == 0 || sleeper_tid == 0) {
    struct timespec ms = {0, 1000000};
    nanosleep(&ms, NULL);
  }
  printf("ready pid=%d spinner=%d sleeper=%d\n", (int)getpid(), (int)spinner_tid, (int)sleeper_tid);
  fflush(stdout);
  return stacks_outer_caller(fd);
}
