/*
 * Both ends of a socket, for the tests of who is at the other end (test/peer.test.ts).
 *
 *   peers tcp-server ADDR        listens on ADDR (127.0.0.1 or ::1) port 0, accepts one
 *                                client and then sleeps, never writing
 *   peers tcp-listen ADDR        listens on ADDR port 0 and never accepts
 *   peers tcp-client ADDR PORT   connects and blocks reading (recv)
 *   peers unix-server PATH       listens on the unix socket PATH, accepts one client and
 *                                blocks reading from it
 *   peers unix-client PATH       connects to PATH and blocks reading
 *   peers poll-client PATH       connects to PATH and waits in poll(2) on the socket, as a
 *                                database client waits for its server's reply (poll names
 *                                no fd to /proc)
 *   peers unix-pair              socketpair; a forked child blocks reading one end, this
 *                                process holds the other and sleeps
 *
 * Each prints "ready pid=<pid> [port=<port>] [child=<pid>]" once in place (a server: once
 * listening), then stays until killed.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static void die(const char *what) {
  fprintf(stderr, "peers: %s: %s\n", what, strerror(errno));
  exit(2);
}

__attribute__((noreturn)) static void sleep_forever(void) {
  for (;;) pause();
}

__attribute__((noreturn)) static void read_forever(int fd) {
  char byte;
  for (;;)
    if (recv(fd, &byte, 1, 0) <= 0) sleep_forever();
}

static int inet_address(const char *text, int port, struct sockaddr_storage *out, socklen_t *length) {
  memset(out, 0, sizeof *out);
  struct sockaddr_in *v4 = (struct sockaddr_in *)out;
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;
  if (inet_pton(AF_INET, text, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons((unsigned short)port);
    *length = sizeof *v4;
    return AF_INET;
  }
  if (inet_pton(AF_INET6, text, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons((unsigned short)port);
    *length = sizeof *v6;
    return AF_INET6;
  }
  fprintf(stderr, "peers: not an address: %s\n", text);
  exit(2);
}

static int tcp_listen(const char *text) {
  struct sockaddr_storage address;
  socklen_t length;
  const int family = inet_address(text, 0, &address, &length);
  const int server = socket(family, SOCK_STREAM, 0);
  if (server < 0) die("socket");
  if (bind(server, (struct sockaddr *)&address, length) != 0) die("bind");
  if (listen(server, 4) != 0) die("listen");
  if (getsockname(server, (struct sockaddr *)&address, &length) != 0) die("getsockname");
  const int port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&address)->sin_port : ((struct sockaddr_in6 *)&address)->sin6_port);
  printf("ready pid=%d port=%d\n", (int)getpid(), port);
  fflush(stdout);
  return server;
}

static int unix_address(const char *path, struct sockaddr_un *out) {
  memset(out, 0, sizeof *out);
  out->sun_family = AF_UNIX;
  if (strlen(path) >= sizeof out->sun_path) {
    fprintf(stderr, "peers: path too long: %s\n", path);
    exit(2);
  }
  strcpy(out->sun_path, path);
  return socket(AF_UNIX, SOCK_STREAM, 0);
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "";
  if (strcmp(mode, "tcp-server") == 0 && argc > 2) {
    const int server = tcp_listen(argv[2]);
    if (accept(server, NULL, NULL) < 0) die("accept");
    sleep_forever();
  }
  if (strcmp(mode, "tcp-listen") == 0 && argc > 2) {
    tcp_listen(argv[2]);
    sleep_forever();
  }
  if (strcmp(mode, "tcp-client") == 0 && argc > 3) {
    struct sockaddr_storage address;
    socklen_t length;
    const int family = inet_address(argv[2], atoi(argv[3]), &address, &length);
    const int client = socket(family, SOCK_STREAM, 0);
    if (client < 0) die("socket");
    if (connect(client, (struct sockaddr *)&address, length) != 0) die("connect");
    printf("ready pid=%d\n", (int)getpid());
    fflush(stdout);
    read_forever(client);
  }
  if (strcmp(mode, "unix-server") == 0 && argc > 2) {
    struct sockaddr_un address;
    const int server = unix_address(argv[2], &address);
    if (server < 0) die("socket");
    if (bind(server, (struct sockaddr *)&address, sizeof address) != 0) die("bind");
    if (listen(server, 4) != 0) die("listen");
    printf("ready pid=%d\n", (int)getpid());
    fflush(stdout);
    const int client = accept(server, NULL, NULL);
    if (client < 0) die("accept");
    read_forever(client);
  }
  if (strcmp(mode, "unix-client") == 0 && argc > 2) {
    struct sockaddr_un address;
    const int client = unix_address(argv[2], &address);
    if (client < 0) die("socket");
    if (connect(client, (struct sockaddr *)&address, sizeof address) != 0) die("connect");
    printf("ready pid=%d\n", (int)getpid());
    fflush(stdout);
    read_forever(client);
  }
  if (strcmp(mode, "poll-client") == 0 && argc > 2) {
    struct sockaddr_un address;
    const int client = unix_address(argv[2], &address);
    if (client < 0) die("socket");
    if (connect(client, (struct sockaddr *)&address, sizeof address) != 0) die("connect");
    printf("ready pid=%d\n", (int)getpid());
    fflush(stdout);
    struct pollfd wait = {client, POLLIN, 0};
    for (;;)
      if (poll(&wait, 1, -1) > 0) sleep_forever();
  }
  if (strcmp(mode, "unix-pair") == 0) {
    int ends[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, ends) != 0) die("socketpair");
    const pid_t child = fork();
    if (child < 0) die("fork");
    if (child == 0) {
      close(ends[0]);
      read_forever(ends[1]);
    }
    close(ends[1]);
    printf("ready pid=%d child=%d\n", (int)getpid(), (int)child);
    fflush(stdout);
    sleep_forever();
  }
  fprintf(stderr, "usage: peers tcp-server|tcp-listen ADDR | tcp-client ADDR PORT | unix-server|unix-client PATH | unix-pair\n");
  return 2;
}
