/*
 * A small FUSE file system (libfuse3, high-level API, its default multi-threaded loop): one
 * read-only file, /data.
 *
 *   fuse MOUNTPOINT idle     answers every request; idle, its threads wait in read on /dev/fuse
 *   fuse MOUNTPOINT silent   answers lookups and opens, but a read never gets its answer: the
 *                            handler waits forever, so a reader of /data waits in the kernel
 *                            for a reply that never comes (through the page cache: in state D,
 *                            on the page lock, folio_wait_bit_common; SIGKILL still ends it)
 *
 * Runs in the foreground (-f). Stop it with SIGKILL, then unmount (fusermount3 -u -z).
 */
#define FUSE_USE_VERSION 31
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char content[] = "iokit-snap verdicts\n";
static int silent;
static pthread_mutex_t never_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t never = PTHREAD_COND_INITIALIZER;

static int fs_getattr(const char *path, struct stat *st, struct fuse_file_info *fi) {
  (void)fi;
  memset(st, 0, sizeof *st);
  if (strcmp(path, "/") == 0) {
    st->st_mode = S_IFDIR | 0755;
    st->st_nlink = 2;
    return 0;
  }
  if (strcmp(path, "/data") == 0) {
    st->st_mode = S_IFREG | 0444;
    st->st_nlink = 1;
    st->st_size = sizeof content - 1;
    return 0;
  }
  return -ENOENT;
}

static int fs_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t offset, struct fuse_file_info *fi,
                      enum fuse_readdir_flags flags) {
  (void)offset;
  (void)fi;
  (void)flags;
  if (strcmp(path, "/") != 0) return -ENOENT;
  fill(buf, ".", NULL, 0, 0);
  fill(buf, "..", NULL, 0, 0);
  fill(buf, "data", NULL, 0, 0);
  return 0;
}

static int fs_open(const char *path, struct fuse_file_info *fi) {
  if (strcmp(path, "/data") != 0) return -ENOENT;
  if ((fi->flags & O_ACCMODE) != O_RDONLY) return -EACCES;
  return 0;
}

static int fs_read(const char *path, char *buf, size_t size, off_t offset, struct fuse_file_info *fi) {
  (void)fi;
  if (strcmp(path, "/data") != 0) return -ENOENT;
  if (silent) {
    pthread_mutex_lock(&never_lock);
    for (;;) pthread_cond_wait(&never, &never_lock);
  }
  const size_t length = sizeof content - 1;
  if ((size_t)offset >= length) return 0;
  if (offset + size > length) size = length - (size_t)offset;
  memcpy(buf, content + offset, size);
  return (int)size;
}

static const struct fuse_operations operations = {
    .getattr = fs_getattr,
    .readdir = fs_readdir,
    .open = fs_open,
    .read = fs_read,
};

int main(int argc, char **argv) {
  if (argc != 3 || (strcmp(argv[2], "idle") != 0 && strcmp(argv[2], "silent") != 0)) {
    fprintf(stderr, "usage: fuse MOUNTPOINT idle|silent\n");
    return 2;
  }
  silent = strcmp(argv[2], "silent") == 0;
  char *args[] = {argv[0], "-f", "-o", "fsname=iokit-snap-verdicts,subtype=verdicts", argv[1], NULL};
  return fuse_main(5, args, &operations, NULL);
}
