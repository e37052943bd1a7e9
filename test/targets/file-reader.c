/*
 * Reads one file, to be caught waiting in the kernel (test/killable.test.ts).
 *
 *   file-reader read PATH    read(2) of the first 4 KiB of PATH
 *   file-reader mmap PATH    maps PATH and touches its first byte (a page fault)
 *
 * SIGUSR1 has a handler that does nothing (so the signal interrupts an interruptible
 * wait instead of being ignored or killing). It prints "ready pid=<pid>" before the
 * read or the touch, and "done <result>" after it returns.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static void on_usr1(int sig) { (void)sig; }

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: file-reader read|mmap PATH\n");
    return 2;
  }
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_handler = on_usr1;
  sigaction(SIGUSR1, &action, NULL);
  int fd = open(argv[2], O_RDONLY);
  if (fd < 0) {
    perror("file-reader: open");
    return 2;
  }
  printf("ready pid=%d\n", (int)getpid());
  fflush(stdout);
  long result;
  if (strcmp(argv[1], "mmap") == 0) {
    volatile char *map = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
      perror("file-reader: mmap");
      return 2;
    }
    result = map[0];
  } else {
    char buf[4096];
    result = read(fd, buf, sizeof buf);
  }
  printf("done %ld\n", result);
  fflush(stdout);
  for (;;) pause();
}
