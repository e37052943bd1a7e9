/*
 * Thread churn: a process whose threads come and go all the time, for the
 * reusable sampler's ownership of per-thread state (a thread that vanishes
 * between two samples, a tid listed once and gone the next time, a new thread
 * in the slot of an old one).
 *
 *   churn [THREADS]    default 16
 *
 * Forever: start THREADS threads; each renames itself ("churn-<round>-<i>", so
 * names change under the sampler too) and sleeps a random 0–199 µs; join them
 * all; again. Prints "ready pid=<pid>" once the first round has run. Ends on
 * SIGKILL / SIGTERM, or when its parent dies.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

struct worker {
  pthread_t thread;
  unsigned round;
  unsigned index;
  unsigned seed;
};

static void *churn(void *arg) {
  struct worker *w = arg;
  char name[16];
  snprintf(name, sizeof name, "churn-%u-%u", w->round % 1000, w->index);
  prctl(PR_SET_NAME, name, 0, 0, 0);
  struct timespec pause = {0, (long)(rand_r(&w->seed) % 200) * 1000};
  nanosleep(&pause, NULL);
  return NULL;
}

int main(int argc, char **argv) {
  /* Never outlive the test that started it, even when that test crashed. */
  prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  if (getppid() == 1) return 1;
  const int count = argc > 1 ? atoi(argv[1]) : 16;
  if (count < 1 || count > 1024) {
    fprintf(stderr, "usage: churn [THREADS 1..1024]\n");
    return 2;
  }
  struct worker *workers = calloc((size_t)count, sizeof *workers);
  if (workers == NULL) return 1;
  for (unsigned round = 0;; ++round) {
    for (int i = 0; i < count; ++i) {
      workers[i].round = round;
      workers[i].index = (unsigned)i;
      workers[i].seed = round * 7919u + (unsigned)i;
      if (pthread_create(&workers[i].thread, NULL, churn, &workers[i]) != 0) {
        perror("pthread_create");
        return 1;
      }
    }
    for (int i = 0; i < count; ++i) pthread_join(workers[i].thread, NULL);
    if (round == 0) {
      printf("ready pid=%d\n", (int)getpid());
      fflush(stdout);
    }
  }
}
