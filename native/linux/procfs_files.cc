#include "procfs_files.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>
#include <system_error>
#include <thread>

namespace iokitsnap {
namespace procfs {

void ScopedFd::reset(int fd) {
  if (fd_ >= 0) close(fd_);  // procfs close cannot fail in a way we could act on
  fd_ = fd;
}

const char* TaskFileName(TaskFile file) {
  switch (file) {
    case TaskFile::Schedstat: return "schedstat";
    case TaskFile::Stat: return "stat";
    case TaskFile::Status: return "status";
    case TaskFile::Syscall: return "syscall";
    case TaskFile::Wchan: return "wchan";
    case TaskFile::Stack: return "stack";
    case TaskFile::Sched: return "sched";
  }
  return "stat";
}

ReadOutcome OutcomeOf(int error) {
  switch (error) {
    case 0: return ReadOutcome::Ok;
    case ENOENT:
    case ESRCH: return ReadOutcome::Gone;
    case EACCES:
    case EPERM: return ReadOutcome::Denied;
    default: return ReadOutcome::Failed;
  }
}

char* FormatEntryPath(char* out, uint64_t number, const char* suffix) {
  char digits[24];
  size_t count = 0;
  do {
    digits[count++] = char('0' + number % 10);
    number /= 10;
  } while (number != 0);
  char* cursor = out;
  while (count > 0) *cursor++ = digits[--count];
  if (suffix != nullptr) {
    *cursor++ = '/';
    const size_t length = std::strlen(suffix);
    std::memcpy(cursor, suffix, length);
    cursor += length;
  }
  *cursor = '\0';
  return out;
}

namespace {

// procfs files here are single-record seq_files: one read returns all of a file
// that fits, so a short read is the whole file and needs no second read for EOF.
ReadResult ReadInto(int fd, ReadBuffer& buffer, bool positional) {
  ReadResult result;
  size_t total = 0;
  char* target = buffer.bytes;
  size_t capacity = sizeof buffer.bytes;
  for (;;) {
    const ssize_t n = positional ? pread(fd, target, capacity, static_cast<off_t>(total)) : read(fd, target, capacity);
    if (n < 0) {
      if (errno == EINTR) continue;
      result.error = errno;
      result.outcome = OutcomeOf(result.error);
      return result;
    }
    total += static_cast<size_t>(n);
    if (static_cast<size_t>(n) < capacity || n == 0) break;
    // Filled: the file is larger than the array; continue on the heap.
    if (target == buffer.bytes) buffer.overflow.assign(buffer.bytes, total);
    else buffer.overflow.resize(total);
    buffer.overflow.resize(total + 16384);
    target = &buffer.overflow[total];
    capacity = 16384;
  }
  if (target == buffer.bytes) {
    buffer.text = std::string_view(buffer.bytes, total);
  } else {
    buffer.overflow.resize(total);
    buffer.text = buffer.overflow;
  }
  result.outcome = ReadOutcome::Ok;
  return result;
}

int OpenAt(int dirFd, const char* path, int* error) {
  int fd;
  do {
    fd = openat(dirFd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0 && error != nullptr) *error = errno;
  return fd;
}

}  // namespace

int OpenFileAt(int dirFd, const char* name, int* error) { return OpenAt(dirFd, name, error); }

int OpenTaskFile(int taskDirFd, uint64_t tid, TaskFile file, int* error) {
  char path[48];
  return OpenAt(taskDirFd, FormatEntryPath(path, tid, TaskFileName(file)), error);
}

ReadResult ReadFileAt(int dirFd, const char* name, ReadBuffer& buffer) {
  int error = 0;
  ScopedFd fd(OpenAt(dirFd, name, &error));
  if (!fd) {
    ReadResult result;
    result.error = error;
    result.outcome = OutcomeOf(error);
    return result;
  }
  return ReadInto(fd.get(), buffer, false);
}

ReadResult ReadTaskFileOnce(int taskDirFd, uint64_t tid, TaskFile file, ReadBuffer& buffer) {
  char path[48];
  return ReadFileAt(taskDirFd, FormatEntryPath(path, tid, TaskFileName(file)), buffer);
}

ReadResult ReadKept(int fd, ReadBuffer& buffer) { return ReadInto(fd, buffer, true); }

int ListNumericEntries(int dirFd, std::vector<char>& scratch, std::vector<uint64_t>& out) {
  out.clear();
  if (scratch.size() < 32768) scratch.resize(32768);
  if (lseek(dirFd, 0, SEEK_SET) < 0) return errno;
  for (;;) {
    const long n = syscall(SYS_getdents64, dirFd, scratch.data(), scratch.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) return 0;
    for (long offset = 0; offset < n;) {
      // struct linux_dirent64 { u64 d_ino; s64 d_off; u16 d_reclen; u8 d_type; char d_name[]; }
      const char* record = scratch.data() + offset;
      unsigned short recordLength;
      std::memcpy(&recordLength, record + 16, sizeof recordLength);
      const char* name = record + 19;
      if (name[0] >= '1' && name[0] <= '9') {
        uint64_t value = 0;
        for (const char* c = name; *c >= '0' && *c <= '9'; ++c) value = value * 10 + uint64_t(*c - '0');
        out.push_back(value);
      }
      offset += recordLength;
    }
  }
}

bool ReadFdTarget(int taskDirFd, uint64_t tid, int64_t fd, std::string& target) {
  if (fd < 0) return false;
  char path[80];
  FormatEntryPath(path, tid, "fd/");
  FormatEntryPath(path + std::strlen(path), static_cast<uint64_t>(fd), nullptr);
  char link[4096];
  const ssize_t n = readlinkat(taskDirFd, path, link, sizeof link);
  if (n <= 0) return false;
  target.assign(link, static_cast<size_t>(n));
  return true;
}

int ReadWithDeadline(int dirFd, const char* name, size_t maxBytes, uint32_t timeoutMs, std::string* out) {
  const int dirCopy = fcntl(dirFd, F_DUPFD_CLOEXEC, 0);
  if (dirCopy < 0) return errno;
  auto dir = std::make_shared<ScopedFd>(dirCopy);  // the reading thread's own, closed by whoever leaves last
  struct Outcome {
    int error = 0;
    std::string bytes;
  };
  std::optional<Outcome> outcome;
  try {
    outcome = RunWithDeadline<Outcome>(
        [dir, path = std::string(name), maxBytes] {
          Outcome result;
          ScopedFd file(openat(dir->get(), path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
          if (!file) {
            result.error = errno;
            return result;
          }
          // procfs files like maps are generated per read call: read in order, never
          // pread at an offset of our own choosing.
          char chunk[16384];
          while (result.bytes.size() < maxBytes) {
            const ssize_t r = read(file.get(), chunk, std::min(sizeof chunk, maxBytes - result.bytes.size()));
            if (r < 0 && errno == EINTR) continue;
            if (r < 0) result.error = errno;
            if (r <= 0) break;
            result.bytes.append(chunk, static_cast<size_t>(r));
          }
          return result;
        },
        timeoutMs);
  } catch (const std::system_error& error) {
    return error.code().value() != 0 ? error.code().value() : EAGAIN;
  }
  if (!outcome) return ETIMEDOUT;
  if (outcome->error != 0) return outcome->error;
  *out = std::move(outcome->bytes);
  return 0;
}

int ReadHeadWithDeadline(int dirFd, const char* name, unsigned char* out, size_t size, size_t* got,
                         uint32_t timeoutMs) {
  std::string bytes;
  const int error = ReadWithDeadline(dirFd, name, size, timeoutMs, &bytes);
  if (error != 0) return error;
  std::memcpy(out, bytes.data(), bytes.size());
  *got = bytes.size();
  return 0;
}

}  // namespace procfs
}  // namespace iokitsnap
