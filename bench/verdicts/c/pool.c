/*
 * An idle worker pool in C, as servers and batch runners build them: 4 workers wait on a
 * condition variable for work (pthread_cond_wait), the main thread has handed out 8 tasks,
 * seen them done, and now joins the workers (which only return at shutdown).
 *
 *   pool      prints "ready pid=N workers=4" once every task is done and every worker waits
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define WORKERS 4
#define TASKS 8

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t work = PTHREAD_COND_INITIALIZER;
static pthread_cond_t done = PTHREAD_COND_INITIALIZER;
static int queued, finished, waiting;
static volatile double sink;

static void *worker(void *arg) {
  (void)arg;
  pthread_mutex_lock(&lock);
  for (;;) {
    while (queued == 0) {
      waiting++;
      pthread_cond_signal(&done);
      pthread_cond_wait(&work, &lock);
      waiting--;
    }
    queued--;
    pthread_mutex_unlock(&lock);
    double x = 0;
    for (int i = 1; i < 100000; i++) x += 1.0 / i;
    sink = x;
    pthread_mutex_lock(&lock);
    finished++;
    pthread_cond_signal(&done);
  }
  return NULL;
}

int main(void) {
  pthread_t threads[WORKERS];
  for (int i = 0; i < WORKERS; i++) {
    if (pthread_create(&threads[i], NULL, worker, NULL) != 0) {
      perror("pthread_create");
      return 2;
    }
  }
  pthread_mutex_lock(&lock);
  queued = TASKS;
  pthread_cond_broadcast(&work);
  while (finished < TASKS || waiting < WORKERS) pthread_cond_wait(&done, &lock);
  pthread_mutex_unlock(&lock);
  printf("ready pid=%d workers=%d\n", (int)getpid(), WORKERS);
  fflush(stdout);
  for (int i = 0; i < WORKERS; i++) pthread_join(threads[i], NULL);
  return 0;
}
