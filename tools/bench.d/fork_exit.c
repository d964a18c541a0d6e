// What one process costs the kernel on this machine: fork(), _exit() in the child, waitpid() in the
// parent, timed one by one. tools/bench compiles and runs it at the start of every run and reports the
// median next to its figures: a server that forks per connection pays at least this much per connection.
//
// Usage: fork_exit [ITERATIONS]; prints "median_us p10_us p90_us iterations" on one line.
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 2000;
  if (n < 10 || n > 1000000) {
    fprintf(stderr, "fork_exit: ITERATIONS must be from 10 to 1000000\n");
    return 2;
  }
  double *t = malloc(sizeof(double) * (size_t)n);
  if (!t) return 1;
  for (int i = -n / 10; i < n; i++) {  // the first tenth warms caches and is not counted
    double start = now_us();
    pid_t pid = fork();
    if (pid < 0) {
      perror("fork_exit: fork");
      return 1;
    }
    if (pid == 0) _exit(0);
    int status;
    if (waitpid(pid, &status, 0) != pid) {
      perror("fork_exit: waitpid");
      return 1;
    }
    if (i >= 0) t[i] = now_us() - start;
  }
  qsort(t, (size_t)n, sizeof(double), cmp);
  printf("%.1f %.1f %.1f %d\n", t[n / 2], t[n / 10], t[n - 1 - n / 10], n);
  free(t);
  return 0;
}
