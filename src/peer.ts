/**
 * Linux: who is at the other end of the pipe or socket a thread is blocked on. A reader of
 * an empty pipe waits for the processes that hold its write end, a writer of a full one
 * for the readers; a client of a TCP connection waits for the process that owns the peer
 * socket when that is on this host. findPeers() fills `blockedIn.peer` for the threads of
 * a snapshot's processes that are blocked on `pipe:[N]`, `socket:[N]` or a fifo.
 *
 * What it reads, and only that: /proc/<pid>/fd (the links), /proc/<pid>/fdinfo/<fd> (the
 * access mode of a matching pipe end), /proc/<pid>/comm, /proc/<pid>/ns/net and
 * /proc/<pid>/net/{tcp,tcp6,unix}. Never cmdline, environ or maps: those take the target's
 * memory-map lock, which a hung process may hold. The sampled processes' fds are read
 * first; only for an end not found among them does it read the other processes it may,
 * nearest pid first, until every end has a holder (bounded by maxProcesses, maxFds and
 * budgetMs, with a limit when a bound cut it short). So `pids` names the holders among the
 * sampled processes, or else the first ones found: a pipe end inherited by more processes
 * may have holders it does not list.
 *
 * The peer of a unix socket is not in /proc (net/unix lists each socket's inode and bound
 * path only): the kernel gives it through sock_diag netlink (UNIX_DIAG_PEER, what `ss -xp`
 * reads), which the native addon asks (unixSocketPeers) for the inodes wanted. A TCP peer in
 * another network namespace or on another host is an address only.
 *
 * A thread in poll or select names no fd. When its process is a client (no listening
 * socket) with one connection besides its stdin, stdout and stderr, that connection is what
 * it waits on (psql waiting for its server's reply polls its one socket): the peer is that
 * connection's.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { binding } from './native';
import type { BlockedIn, Limitation, Peer, PeerProcess, ProcessSample } from './types';

export interface PeerOptions {
  /** Read this tree instead of /proc. */
  procRoot?: string;
  /** Processes whose fds the search of the whole system may read (default 8192). */
  maxProcesses?: number;
  /** Fd links it may read in all (default 200000). */
  maxFds?: number;
  /** Time the search of the whole system may take, ms (default 500): about 15,000 fd links on a loaded 2-core machine. */
  budgetMs?: number;
}

export interface PeerSearch {
  /** Threads whose blockedIn.peer was set. */
  found: number;
  limits: Limitation[];
  /** What the search read: processes and fd links examined, ms spent, and whether it went past the sampled processes. */
  cost: { processes: number; fds: number; ms: number; wholeSystem: boolean };
}

const DEFAULTS = { maxProcesses: 8192, maxFds: 200000, budgetMs: 500 };

const PIPE = /^pipe:\[(\d+)\]$/;
const SOCKET = /^socket:\[(\d+)\]$/;
/** The wait channels of a pipe or fifo read or write (pipe_wait before 5.6, anon_pipe_* since 6.16). */
const PIPE_WAIT = /^(?:anon_)?pipe_(?:read|write|wait\w*)$/;

const TCP_LISTEN = 0x0a;
/** Waits that name no fd: a client waiting in one of these on its only connection waits on that connection. */
const FDLESS_WAITS = new Set(['poll', 'ppoll', 'ppoll_time64', 'select', 'pselect6', 'pselect6_time64', '_newselect']);

/** The peer inode of each unix socket inode (0: none known), from the kernel (sock_diag); null where it cannot be asked. */
function unixSocketPeers(inodes: number[]): number[] | null {
  try {
    const native = binding() as unknown as { unixSocketPeers?: (inodes: number[]) => number[] };
    return native.unixSocketPeers === undefined ? null : native.unixSocketPeers(inodes);
  } catch {
    return null;
  }
}

interface TcpEntry {
  local: string;
  remote: string;
  state: number;
  inode: number;
}

interface Holder {
  pid: number;
  fd: number;
  /** O_ACCMODE of the open file: 0 read, 1 write, 2 both; -1 when fdinfo could not be read. */
  mode: number;
}

/** One blocked thread's search. */
interface Want {
  blocked: BlockedIn;
  pid: number;
  kind: 'pipe' | 'tcp' | 'unix';
  /** The fd link text to look for: the pipe itself, or the peer socket. */
  link: string;
  /** pipe: the access mode the other end has (0 read, 1 write), or -1 for any other holder. */
  otherMode: number;
  local?: string;
  remote?: string;
  /** tcp: the holders found own the listening socket; the connection waits in its accept queue. */
  queued?: boolean;
  /** The thread waits in poll or select (no fd named): the connection is its client process's only one. */
  inferred?: boolean;
}

/** An IPv4 or IPv6 address as /proc/net/tcp prints it (u32 words in host byte order) → text; v4-mapped IPv6 → dotted IPv4. */
export function procNetAddress(hex: string, littleEndian = os.endianness() === 'LE'): string {
  const [addressHex, portHex] = hex.split(':');
  const bytes: number[] = [];
  for (let word = 0; word < addressHex.length; word += 8) {
    const pairs: number[] = [];
    for (let i = word; i < word + 8; i += 2) pairs.push(Number.parseInt(addressHex.slice(i, i + 2), 16));
    bytes.push(...(littleEndian ? pairs.reverse() : pairs));
  }
  const port = Number.parseInt(portHex, 16);
  const mapped = bytes.length === 16 && bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff;
  if (bytes.length === 4 || mapped) return `${bytes.slice(-4).join('.')}:${port}`;
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i] << 8) | bytes[i + 1]);
  // The longest run of two or more zero groups becomes "::" (RFC 5952).
  let bestAt = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestAt = i;
      bestLength = j - i;
    }
    i = j === i ? i + 1 : j;
  }
  const text = (from: number, to: number): string => groups.slice(from, to).map((g) => g.toString(16)).join(':');
  const address = bestAt < 0 ? text(0, 8) : `${text(0, bestAt)}::${text(bestAt + bestLength, 8)}`;
  return `[${address}]:${port}`;
}

function parseTcp(text: string): TcpEntry[] {
  const entries: TcpEntry[] = [];
  for (const line of text.split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 10) continue;
    entries.push({ local: procNetAddress(fields[1]), remote: procNetAddress(fields[2]), state: Number.parseInt(fields[3], 16), inode: Number(fields[9]) });
  }
  return entries;
}

/** inode → bound path ('' when unbound; an abstract name starts with '@'). */
function parseUnix(text: string): Map<number, string> {
  const sockets = new Map<number, string>();
  for (const line of text.split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 7) continue;
    sockets.set(Number(fields[6]), fields.slice(7).join(' '));
  }
  return sockets;
}

function readText(file: string): string | null {
  try {
    return fs.readFileSync(file, 'latin1');
  } catch {
    return null;
  }
}

function portOf(address: string): string {
  return address.slice(address.lastIndexOf(':') + 1);
}

function isWildcard(address: string): boolean {
  return address.startsWith('0.0.0.0:') || address.startsWith('[::]:');
}

/**
 * Set `blockedIn.peer` on the threads of `processes` blocked on a pipe, fifo or socket,
 * and return what it found, what it could not, and what it cost. A snapshot without such
 * threads costs nothing.
 */
export function findPeers(processes: ProcessSample[], options: PeerOptions = {}): PeerSearch {
  const started = Date.now();
  const procRoot = options.procRoot ?? '/proc';
  const maxProcesses = options.maxProcesses ?? DEFAULTS.maxProcesses;
  const maxFds = options.maxFds ?? DEFAULTS.maxFds;
  const budgetMs = options.budgetMs ?? DEFAULTS.budgetMs;
  const deadline = started + budgetMs;
  const limits: Limitation[] = [];
  const cost = { processes: 0, fds: 0, ms: 0, wholeSystem: false };
  let found = 0;
  const names = new Map<number, string>(processes.map((p) => [p.pid, p.name]));
  const sampled = new Set(processes.map((p) => p.pid));
  const wants: Want[] = [];
  const unixPeers: Array<{ blocked: BlockedIn; pid: number; inode: number; local?: string; inferred?: boolean }> = [];
  const tables = new Map<string, { tcp: TcpEntry[]; unix: Map<number, string> }>();

  const fdMode = (pid: number, fd: number): number => {
    const flags = /^flags:\s*([0-7]+)$/m.exec(readText(path.join(procRoot, String(pid), 'fdinfo', String(fd))) ?? '');
    return flags === null ? -1 : Number.parseInt(flags[1], 8) & 3;
  };
  const netTables = (pid: number): { tcp: TcpEntry[]; unix: Map<number, string> } => {
    let namespace: string;
    try {
      namespace = fs.readlinkSync(path.join(procRoot, String(pid), 'ns', 'net'));
    } catch {
      namespace = `pid ${pid}`;
    }
    let cached = tables.get(namespace);
    if (cached === undefined) {
      const net = path.join(procRoot, String(pid), 'net');
      cached = {
        tcp: [...parseTcp(readText(path.join(net, 'tcp')) ?? ''), ...parseTcp(readText(path.join(net, 'tcp6')) ?? '')],
        unix: parseUnix(readText(path.join(net, 'unix')) ?? ''),
      };
      tables.set(namespace, cached);
    }
    return cached;
  };

  /** The socket inodes a client process holds, when it holds no listening socket and few connections (else null). */
  const clientSockets = (pid: number): number[] | null => {
    let fds: string[];
    try {
      fds = fs.readdirSync(path.join(procRoot, String(pid), 'fd'));
    } catch {
      return null;
    }
    const inodes: number[] = [];
    for (const fd of fds.slice(0, 256)) {
      // Its stdin, stdout and stderr are where it talks to its caller (a terminal, a pipe, a
      // socketpair from Node or journald), not the connection it waits on.
      if (fd === '0' || fd === '1' || fd === '2') continue;
      let link: string;
      try {
        link = fs.readlinkSync(path.join(procRoot, String(pid), 'fd', fd));
      } catch {
        continue;
      }
      const socket = SOCKET.exec(link);
      if (socket !== null) inodes.push(Number(socket[1]));
    }
    const net = netTables(pid);
    const connected = inodes.filter((inode) => {
      const tcp = net.tcp.find((e) => e.inode === inode);
      return tcp === undefined ? net.unix.has(inode) : tcp.state !== TCP_LISTEN;
    });
    if (inodes.some((inode) => net.tcp.find((e) => e.inode === inode)?.state === TCP_LISTEN)) return null; // a server
    return connected.length > 0 && connected.length <= 4 ? connected : null;
  };

  for (const process of processes) {
    for (const thread of process.threads) {
      const blocked = thread.blockedIn;
      if (blocked === null) continue;
      let target = blocked.target;
      let inferred = false;
      if (target === undefined && blocked.fd === undefined && FDLESS_WAITS.has(blocked.call) && thread.tid === process.pid) {
        // A client's main thread in poll/select, which names no fd, with one connection: it waits on that.
        const sockets = clientSockets(process.pid);
        if (sockets !== null && sockets.length === 1) {
          target = `socket:[${sockets[0]}]`;
          inferred = true;
        }
      }
      if (target === undefined || (blocked.fd === undefined && !inferred)) continue;
      const socket = SOCKET.exec(target);
      if (blocked.fd !== undefined && (PIPE.test(target) || (socket === null && target.startsWith('/') && PIPE_WAIT.test(thread.wchan ?? '')))) {
        const mode = fdMode(process.pid, blocked.fd);
        wants.push({ blocked, pid: process.pid, kind: 'pipe', link: target, otherMode: mode === 0 ? 1 : mode === 1 ? 0 : -1 });
        continue;
      }
      if (socket === null) continue;
      const inode = Number(socket[1]);
      const net = netTables(process.pid);
      const entry = net.tcp.find((e) => e.inode === inode);
      if (entry !== undefined) {
        if (entry.state === TCP_LISTEN) {
          // A listening socket (accept) waits for a client, not for a peer.
          blocked.peer = { kind: 'tcp', local: entry.local };
          found++;
          continue;
        }
        const want: Want = { blocked, pid: process.pid, kind: 'tcp', link: '', otherMode: -1, local: entry.local, remote: entry.remote, ...(inferred ? { inferred } : {}) };
        const other = net.tcp.find((e) => e.local === entry.remote && e.remote === entry.local);
        // A peer socket not yet accepted has no file (inode 0): the listener's owner is who must act.
        const listener =
          other !== undefined && other.inode === 0
            ? net.tcp.find((e) => e.state === TCP_LISTEN && portOf(e.local) === portOf(entry.remote) && (e.local === entry.remote || isWildcard(e.local)))
            : undefined;
        if (other !== undefined && other.inode !== 0) want.link = `socket:[${other.inode}]`;
        else if (listener !== undefined) {
          want.link = `socket:[${listener.inode}]`;
          want.queued = true;
        }
        if (want.link === '') {
          // The peer is on another host or in another network namespace (or gone): its address is all there is.
          blocked.peer = { kind: 'tcp', local: entry.local, remote: entry.remote, ...(inferred ? { inferred } : {}) };
          found++;
        } else wants.push(want);
        continue;
      }
      const unixPath = net.unix.get(inode);
      if (unixPath !== undefined) unixPeers.push({ blocked, pid: process.pid, inode, ...(unixPath !== '' ? { local: unixPath } : {}), ...(inferred ? { inferred } : {}) });
    }
  }
  // Unix sockets: the kernel names each one's peer socket; whoever holds that is the peer.
  // (Not for a fixture tree: its inodes are not this kernel's sockets.)
  const unixAnswers = unixPeers.length > 0 && procRoot === '/proc' ? unixSocketPeers(unixPeers.map((u) => u.inode)) : null;
  const unknownUnix: typeof unixPeers = [];
  unixPeers.forEach((u, i) => {
    const peerInode = unixAnswers?.[i] ?? 0;
    if (peerInode === 0) unknownUnix.push(u);
    else wants.push({ blocked: u.blocked, pid: u.pid, kind: 'unix', link: `socket:[${peerInode}]`, otherMode: -1, ...(u.local !== undefined ? { local: u.local } : {}), ...(u.inferred === true ? { inferred: true } : {}) });
  });

  const holders = new Map<string, Holder[]>();
  for (const want of wants) holders.set(want.link, []);
  const unreadable: number[] = [];
  // Set inside scan() too, so never narrowed to null by the compiler.
  let cut = null as string | null;

  const scan = (pid: number): void => {
    const fdDir = path.join(procRoot, String(pid), 'fd');
    let fds: string[];
    try {
      fds = fs.readdirSync(fdDir);
    } catch (error) {
      // Another user's process (ptrace access mode read); ENOENT: it exited, or has no fd table.
      if ((error as NodeJS.ErrnoException).code === 'EACCES') unreadable.push(pid);
      return;
    }
    cost.processes++;
    for (const fd of fds) {
      if (cost.fds >= maxFds) {
        cut = `${maxFds} fd links (maxFds)`;
        return;
      }
      cost.fds++;
      let link: string;
      try {
        link = fs.readlinkSync(path.join(fdDir, fd));
      } catch {
        continue;
      }
      const list = holders.get(link);
      if (list !== undefined) {
        list.push({ pid, fd: Number(fd), mode: link.startsWith('socket:') ? -1 : fdMode(pid, Number(fd)) });
        matched = true;
      }
    }
  };
  let matched = false;
  const unresolved = (): boolean => wants.some((want) => endsOf(want).every((h) => h.pid === want.pid));
  const endsOf = (want: Want): Holder[] =>
    (holders.get(want.link) as Holder[]).filter(
      (h) => !(h.pid === want.pid && h.fd === want.blocked.fd) && (want.otherMode < 0 || h.mode < 0 || h.mode === want.otherMode || h.mode === 2),
    );

  if (wants.length > 0) {
    for (const pid of sampled) if (cut === null) scan(pid);
    // Its own process holding the other end (a fifo opened read-write, a pipe end not closed
    // after fork) does not stop the search: another process may hold it too.
    if (cut === null && unresolved()) {
      cost.wholeSystem = true;
      let entries: string[] = [];
      try {
        entries = fs.readdirSync(procRoot);
      } catch {
        /* no /proc: nothing more to read */
      }
      // Nearest pids first: the other end of a pipe is most often a sibling of the same
      // pipeline or a parent, forked just before or after; a bound then cuts the far ones.
      const searching = wants.filter((want) => endsOf(want).every((h) => h.pid === want.pid)).map((want) => want.pid);
      // It stops at the first process that completes the answer: every end has a holder
      // outside the blocked thread's process. Reading every fd of a busy host costs ~30 µs
      // a link (26,000 links took 0.8 s here); the nearest holder is the one that matters.
      const distance = (pid: number): number => Math.min(...searching.map((near) => Math.abs(pid - near)));
      const pids = entries.filter((entry) => /^\d+$/.test(entry) && !sampled.has(Number(entry))).map(Number);
      pids.sort((a, b) => distance(a) - distance(b) || a - b);
      let examined = 0;
      for (const pid of pids) {
        if (examined >= maxProcesses) cut = `${maxProcesses} processes (maxProcesses)`;
        else if (Date.now() > deadline) cut = `${budgetMs} ms (budgetMs)`;
        if (cut !== null) break;
        examined++;
        matched = false;
        scan(pid);
        if (cut !== null || (matched && !unresolved())) break;
      }
    }
  }

  for (const want of wants) {
    const ends = endsOf(want);
    const peer: Peer = { kind: want.kind };
    if (want.local !== undefined) peer.local = want.local;
    if (want.remote !== undefined) peer.remote = want.remote;
    if (want.inferred === true) peer.inferred = true;
    if (ends.length > 0) {
      const pids = [...new Set(ends.map((h) => h.pid))].sort((a, b) => a - b);
      peer.pids = pids.map((pid): PeerProcess => ({ pid, name: names.get(pid) ?? readText(path.join(procRoot, String(pid), 'comm'))?.trim() ?? '' }));
      peer.sampled = pids.every((pid) => sampled.has(pid));
      if (want.queued === true) peer.queued = true;
    } else {
      const what = want.kind === 'pipe' ? `the other end of ${want.link}` : `the owner of ${want.link} (the peer of ${want.local} → ${want.remote})`;
      limits.push({
        subject: `pid ${want.pid}`,
        field: 'blockedIn.peer',
        code: cut !== null ? 'ETIMEDOUT' : unreadable.length > 0 ? 'EPERM' : 'ESRCH',
        reason:
          cut !== null
            ? `${what} was not found before the search stopped at ${cut}`
            : unreadable.length > 0
              ? `${what} was not found; the fds of ${unreadable.length} process(es) could not be read`
              : `no process readable here holds ${what}`,
        ...(cut === null && unreadable.length > 0 ? { hint: 'run as root to read every process’s fds' } : {}),
      });
    }
    want.blocked.peer = peer;
    found++;
  }
  for (const { blocked, local, inferred } of unknownUnix) {
    blocked.peer = { kind: 'unix', ...(local !== undefined ? { local } : {}), ...(inferred === true ? { inferred } : {}) };
    found++;
  }
  if (unknownUnix.length > 0) {
    limits.push({
      subject: 'processes',
      field: 'blockedIn.peer',
      code: unixAnswers === null ? 'ENOTSUP' : 'ESRCH',
      reason:
        unixAnswers === null
          ? 'the process at the other end of a unix socket is not in /proc, and the kernel could not be asked (sock_diag netlink, UNIX_DIAG_PEER)'
          : `the kernel names no peer for ${unknownUnix.length} unix socket(s) (unconnected, or in another network namespace)`,
      hint: 'run `ss -xp` to see who holds the peer socket',
    });
  }
  cost.ms = Date.now() - started;
  return { found, limits, cost };
}
