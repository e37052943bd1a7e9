// sock_diag for unix sockets: one NETLINK_SOCK_DIAG dump of every unix socket of this network
// namespace with UDIAG_SHOW_PEER, filtered to the inodes asked for. Reads the kernel's socket
// tables only: no target process is touched, and nothing it can lock is taken.
#include "unix_peers.h"

#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "../backend.h"

namespace iokitsnap {
namespace linux_net {
namespace {

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

[[noreturn]] void Fail(const char* call, int error) {
  throw SnapError(error == EPERM || error == EACCES ? "EPERM" : "EIO",
                  std::string("asking the kernel for unix socket peers (sock_diag) failed: ") + call + ": " + std::strerror(error),
                  call, error);
}

}  // namespace

std::unordered_map<uint64_t, uint64_t> UnixSocketPeers(const std::unordered_set<uint64_t>& inodes) {
  std::unordered_map<uint64_t, uint64_t> peers;
  if (inodes.empty()) return peers;
  Fd sock(socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
  if (sock.get() < 0) Fail("socket", errno);
  // The kernel answers a dump at once; a bound on each receive keeps a wedged one from holding the probe.
  timeval timeout{2, 0};
  setsockopt(sock.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);

  struct {
    nlmsghdr header;
    unix_diag_req request;
  } message{};
  message.header.nlmsg_len = sizeof message;
  message.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  message.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  message.header.nlmsg_seq = 1;
  message.request.sdiag_family = AF_UNIX;
  message.request.udiag_states = ~0u;
  message.request.udiag_show = UDIAG_SHOW_PEER;
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (sendto(sock.get(), &message, sizeof message, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) < 0) Fail("sendto", errno);

  std::vector<char> buffer(64 * 1024);
  for (;;) {
    const ssize_t got = recv(sock.get(), buffer.data(), buffer.size(), 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      Fail("recv", errno);
    }
    if (got == 0) return peers;
    size_t left = static_cast<size_t>(got);
    for (auto* header = reinterpret_cast<nlmsghdr*>(buffer.data()); NLMSG_OK(header, left); header = NLMSG_NEXT(header, left)) {
      if (header->nlmsg_type == NLMSG_DONE) return peers;
      if (header->nlmsg_type == NLMSG_ERROR) {
        const auto* error = static_cast<const nlmsgerr*>(NLMSG_DATA(header));
        Fail("sock_diag", error->error < 0 ? -error->error : EIO);
      }
      if (header->nlmsg_type != SOCK_DIAG_BY_FAMILY) continue;
      const auto* diag = static_cast<const unix_diag_msg*>(NLMSG_DATA(header));
      if (inodes.count(diag->udiag_ino) == 0) continue;
      int attributesLength = static_cast<int>(header->nlmsg_len - NLMSG_LENGTH(sizeof *diag));
      for (auto* attribute = reinterpret_cast<rtattr*>(const_cast<unix_diag_msg*>(diag) + 1); RTA_OK(attribute, attributesLength);
           attribute = RTA_NEXT(attribute, attributesLength)) {
        if (attribute->rta_type == UNIX_DIAG_PEER && RTA_PAYLOAD(attribute) >= sizeof(uint32_t)) {
          uint32_t peer = 0;
          std::memcpy(&peer, RTA_DATA(attribute), sizeof peer);
          if (peer != 0) peers[diag->udiag_ino] = peer;
        }
      }
    }
  }
}

}  // namespace linux_net
}  // namespace iokitsnap
