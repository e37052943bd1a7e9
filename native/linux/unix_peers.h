// The peer of a unix socket: which socket is at the other end. /proc does not say (its
// net/unix lists each socket's inode and bound path only); sock_diag netlink does, with
// UNIX_DIAG_PEER, as `ss -xp` reads it.
#pragma once

#include <cstdint>
#include <unordered_map>
#include <unordered_set>

namespace iokitsnap {
namespace linux_net {

// For each of `inodes` that is a unix socket in this network namespace with a peer: the peer
// socket's inode. Sockets with no peer (listening, unconnected) and inodes that are no unix
// socket here are absent. Throws SnapError (EIO, EPERM) when netlink answers with an error.
std::unordered_map<uint64_t, uint64_t> UnixSocketPeers(const std::unordered_set<uint64_t>& inodes);

}  // namespace linux_net
}  // namespace iokitsnap
