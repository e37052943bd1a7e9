/*
 * A FUSE daemon whose read handler never answers, for the tests of D-state waits
 * (test/killable.test.ts). Built with `cc fuse-hang.c $(pkg-config --cflags --libs fuse3)`.
 *
 *   fuse-hang MOUNTPOINT
 *
 * Mounts a file system (libfuse3, high-level API, multithreaded) in which every name in
 * the root directory but those starting "new" is a 64 KiB file (so each test case can
 * use a file of its own, with nothing of it in the page cache yet):
 *   /direct*  opened with direct_io (each read(2) is one synchronous FUSE_READ request)
 *   /NAME     any other name: read through the page cache (the kernel reads it ahead,
 *             asynchronously)
 * Lookups, getattr, open and readdir are answered; read, write and create are not: the
 * handler prints
 *   read|write|create path=<path> pid=<the caller's pid>
 * on stdout and blocks for ever, so the request stays in the daemon (a create holds the
 * directory's inode lock in the kernel meanwhile, a direct write the file's). Once the file system
 * is mounted and the kernel's INIT is answered it prints
 *   ready pid=<pid>
 * Killing the daemon closes /dev/fuse, which aborts the connection and ends every
 * waiting request with ENOTCONN; the mount stays until `umount -l MOUNTPOINT`.
 */
#define FUSE_USE_VERSION 31
#include <errno.h>
#include <fuse.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FILE_SIZE (64 * 1024)

static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

static void say(const char *line) {
  pthread_mutex_lock(&out_lock);
  fputs(line, stdout);
  fflush(stdout);
  pthread_mutex_unlock(&out_lock);
}

/* Every name in the root exists, except those starting "new" (to be created). */
static int is_file(const char *path) {
  return path[0] == '/' && path[1] != '\0' && strchr(path + 1, '/') == NULL && strncmp(path, "/new", 4) != 0;
}

static void *hang_init(struct fuse_conn_info *conn, struct fuse_config *cfg) {
  (void)conn;
  cfg->kernel_cache = 0;
  char line[64];
  snprintf(line, sizeof line, "ready pid=%d\n", (int)getpid());
  say(line);
  return NULL;
}

static int hang_getattr(const char *path, struct stat *st, struct fuse_file_info *fi) {
  (void)fi;
  memset(st, 0, sizeof *st);
  if (strcmp(path, "/") == 0) {
    st->st_mode = S_IFDIR | 0755;
    st->st_nlink = 2;
    return 0;
  }
  if (!is_file(path)) return -ENOENT;
  st->st_mode = S_IFREG | 0644;
  st->st_nlink = 1;
  st->st_size = FILE_SIZE;
  return 0;
}

static int hang_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t offset, struct fuse_file_info *fi,
                        enum fuse_readdir_flags flags) {
  (void)offset;
  (void)fi;
  (void)flags;
  if (strcmp(path, "/") != 0) return -ENOENT;
  fill(buf, ".", NULL, 0, 0);
  fill(buf, "..", NULL, 0, 0);
  return 0;
}

static int hang_open(const char *path, struct fuse_file_info *fi) {
  if (!is_file(path)) return -ENOENT;
  if (strncmp(path, "/direct", 7) == 0) fi->direct_io = 1;
  return 0;
}

__attribute__((noreturn)) static void hang(void) {
  for (;;) pause(); /* never answers: the request stays here */
}

__attribute__((noreturn)) static void announce_and_hang(const char *what, const char *path) {
  char line[320];
  snprintf(line, sizeof line, "%s path=%s pid=%d\n", what, path, (int)fuse_get_context()->pid);
  say(line);
  hang();
}

static int hang_read(const char *path, char *buf, size_t size, off_t offset, struct fuse_file_info *fi) {
  (void)buf;
  (void)size;
  (void)offset;
  (void)fi;
  announce_and_hang("read", path);
}

static int hang_write(const char *path, const char *buf, size_t size, off_t offset, struct fuse_file_info *fi) {
  (void)buf;
  (void)size;
  (void)offset;
  (void)fi;
  announce_and_hang("write", path);
}

static int hang_create(const char *path, mode_t mode, struct fuse_file_info *fi) {
  (void)mode;
  (void)fi;
  announce_and_hang("create", path);
}

static const struct fuse_operations operations = {
    .init = hang_init,
    .getattr = hang_getattr,
    .readdir = hang_readdir,
    .open = hang_open,
    .read = hang_read,
    .write = hang_write,
    .create = hang_create,
};

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: fuse-hang MOUNTPOINT\n");
    return 2;
  }
  /* Foreground, so the test's kill of this pid ends the daemon. (libfuse 3.14 prints a
   * harmless "Ignoring invalid max threads value" on stderr.) */
  char *args[] = {argv[0], "-f", argv[1], NULL};
  return fuse_main(3, args, &operations, NULL);
}
