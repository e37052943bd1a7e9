/**
 * snapshot() names who is at the other end of a pipe or socket a thread is blocked on,
 * with real processes: shell pipelines of coreutils (a writer blocked on a full pipe, a
 * reader on an empty one) and the socket ends of test/targets/peers.c (a TCP client of a
 * local server that accepted, of one that never accepts, over IPv4 and IPv6; unix socket
 * clients, servers and a socketpair between two processes).
 *
 * Then findPeers on what live processes do not show on demand: a /proc tree built in a temp
 * directory with the layout Linux gives (/proc/<pid>/fd/<n> links whose text is "pipe:[N]",
 * "socket:[N]" or a path; fdinfo/<n> with "flags:\t0100001"; comm; ns/net; net/tcp, tcp6
 * and unix with the columns Linux 6.x prints), a caller that may not read root's fds, the
 * address format of /proc/net/tcp, and the schema of the new field.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t, { type Test } from 'tap';
import { findPeers, procNetAddress } from '../src/peer';
import { snapshot } from '../src/sample';
import { validateSnapshot } from '../src/snapshot-file';
import type { BlockedIn, Peer, ProcessSample, Snapshot, ThreadSample } from '../src/types';
import { proc, snap as snapAt, thread } from './helpers/analyze';
import { buildC, waitFor } from './helpers/targets';

const linux = process.platform === 'linux' ? false : 'pipes and sockets are read from Linux /proc';
const PEERS = path.join(__dirname, 'targets', 'peers.c');

interface Started {
  pid: number;
  info: Record<string, string>;
  child: ChildProcess;
}

/** Start `command args…`, killed in t's teardown; with `ready`, wait for its "ready k=v…" line. */
async function run(t: Test, command: string, args: string[], ready = true): Promise<Started> {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  const info: Record<string, string> = {};
  if (ready) {
    const line = await waitFor(() => {
      if (child.exitCode !== null) throw new Error(`${command} ${args.join(' ')} exited: ${err}`);
      return out.split('\n').find((l) => l.startsWith('ready '));
    }, `${command} ${args.join(' ')} to be ready`);
    for (const pair of line.split(/\s+/).slice(1)) info[pair.slice(0, pair.indexOf('='))] = pair.slice(pair.indexOf('=') + 1);
  }
  return { pid: child.pid!, info, child };
}

function peersBinary(): Promise<string> {
  return buildC(PEERS, 'peers', []);
}

/** The children of `pid` by name, once all of `names` have exec'd (a forked child is named like its parent until then). */
async function childrenOf(pid: number, names: string[]): Promise<number[]> {
  return waitFor(() => {
    const kids = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
    const named = new Map(kids.map((kid) => [fs.readFileSync(`/proc/${kid}/comm`, 'utf8').trim(), kid]));
    return names.every((name) => named.has(name)) && names.map((name) => named.get(name)!);
  }, `children ${names.join(', ')} of ${pid}`);
}

/** A snapshot of `pids` once `pid`'s main thread is blocked on `target` (a pipe or socket). */
async function blockedSnapshot(pids: number[], pid: number, target: RegExp): Promise<{ snap: Snapshot; thread: ThreadSample }> {
  return waitFor(async () => {
    const snap = await snapshot({ pids, accelerators: false });
    const thread = snap.processes.find((p) => p.pid === pid)?.threads[0];
    return thread?.blockedIn?.target !== undefined && target.test(thread.blockedIn.target) && thread.blockedIn.peer !== undefined && { snap, thread };
  }, `pid ${pid} blocked on ${target}`);
}

const commOf = (pid: number): string => fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();

t.test('pipes: the writer of a full pipe names its reader, the reader of an empty one its writer', { skip: linux }, async (t) => {
  const writerSide = await run(t, 'sh', ['-c', 'yes | sleep 1000'], false);
  const [yes, sleeper] = await childrenOf(writerSide.pid, ['yes', 'sleep']);
  t.teardown(() => [yes, sleeper].forEach((pid) => process.kill(pid, 'SIGKILL')));

  const both = await blockedSnapshot([yes, sleeper], yes, /^pipe:\[\d+\]$/);
  t.equal(both.thread.blockedIn!.call, 'write');
  t.same(both.thread.blockedIn!.peer, { kind: 'pipe', pids: [{ pid: sleeper, name: 'sleep' }], sampled: true } satisfies Peer, 'the reader, sampled in the same snapshot');
  t.notOk(both.snap.limits.some((l) => l.field === 'blockedIn.peer'));
  t.ok(validateSnapshot(JSON.parse(JSON.stringify(both.snap))), 'the snapshot with its peers is the iokit-snap/1 model');

  const alone = await blockedSnapshot([yes], yes, /^pipe:/);
  t.same(alone.thread.blockedIn!.peer, { kind: 'pipe', pids: [{ pid: sleeper, name: 'sleep' }], sampled: false }, 'found by the search of every process');

  const readerSide = await run(t, 'sh', ['-c', 'sleep 1000 | cat'], false);
  const [cat, writer] = await childrenOf(readerSide.pid, ['cat', 'sleep']);
  t.teardown(() => [cat, writer].forEach((pid) => process.kill(pid, 'SIGKILL')));
  const reading = await blockedSnapshot([cat], cat, /^pipe:/);
  t.equal(reading.thread.blockedIn!.call, 'read');
  t.same(reading.thread.blockedIn!.peer, { kind: 'pipe', pids: [{ pid: writer, name: 'sleep' }], sampled: false });
});

t.test('a fifo reader names the writer that holds the fifo open', { skip: linux }, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iokit-snap-peer-fifo-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const fifo = path.join(dir, 'fifo');
  const shell = await run(t, 'sh', ['-c', `mkfifo ${fifo} && exec 3<>${fifo} && (sleep 1000 >${fifo} &) && exec cat <${fifo}`], false);
  const writer = await waitFor(() => {
    for (const entry of fs.readdirSync('/proc').filter((e) => /^\d+$/.test(e))) {
      try {
        if (commOf(Number(entry)) === 'sleep' && fs.readlinkSync(`/proc/${entry}/fd/1`) === fifo) return Number(entry);
      } catch {
        /* gone or not ours */
      }
    }
    return undefined;
  }, 'the fifo writer');
  t.teardown(() => process.kill(writer, 'SIGKILL'));
  // `exec cat`: the shell's pid is cat now, and it keeps the fifo open read-write on fd 3 (both ends).
  const reading = await blockedSnapshot([shell.pid], shell.pid, new RegExp(`^${fifo}$`));
  t.equal(reading.thread.blockedIn!.call, 'read');
  t.same(
    reading.thread.blockedIn!.peer,
    {
      kind: 'pipe',
      pids: [shell.pid, writer].sort((a, b) => a - b).map((pid) => ({ pid, name: pid === writer ? 'sleep' : 'cat' })),
      sampled: false,
    },
    'the writer (not sampled) and the reader itself (it holds the fifo open for writing on fd 3)',
  );
});

t.test('TCP: a client waiting for a local server names its address and process', { skip: linux }, async (t) => {
  const binary = await peersBinary();
  const families: Array<[string, (port: string) => string]> = [['127.0.0.1', (port) => `127.0.0.1:${port}`]];
  if (fs.existsSync('/proc/net/if_inet6') && /\blo$/m.test(fs.readFileSync('/proc/net/if_inet6', 'utf8'))) families.push(['::1', (port) => `[::1]:${port}`]);
  for (const [address, text] of families) {
    const server = await run(t, binary, ['tcp-server', address]);
    const client = await run(t, binary, ['tcp-client', address, server.info.port]);
    const { snap, thread } = await blockedSnapshot([client.pid, server.pid], client.pid, /^socket:/);
    t.equal(thread.blockedIn!.call, 'recvfrom');
    t.match(thread.blockedIn!.peer, { kind: 'tcp', remote: text(server.info.port), pids: [{ pid: server.pid, name: 'peers' }], sampled: true }, address);
    t.match(thread.blockedIn!.peer!.local, address === '::1' ? /^\[::1\]:\d+$/ : /^127\.0\.0\.1:\d+$/);
    t.notOk('queued' in thread.blockedIn!.peer!);
    t.notOk(snap.limits.some((l) => l.field === 'blockedIn.peer'));
    const alone = await blockedSnapshot([client.pid], client.pid, /^socket:/);
    t.match(alone.thread.blockedIn!.peer, { pids: [{ pid: server.pid }], sampled: false }, `${address}: found outside the snapshot`);
  }
});

t.test('TCP: a client of a server that never accepts names the listener, its connection queued', { skip: linux }, async (t) => {
  const binary = await peersBinary();
  // Listening on every address: the client's 127.0.0.1 is matched to the wildcard listener.
  const server = await run(t, binary, ['tcp-listen', '0.0.0.0']);
  const client = await run(t, binary, ['tcp-client', '127.0.0.1', server.info.port]);
  const { thread } = await blockedSnapshot([client.pid], client.pid, /^socket:/);
  t.match(thread.blockedIn!.peer, { kind: 'tcp', remote: `127.0.0.1:${server.info.port}`, pids: [{ pid: server.pid, name: 'peers' }], sampled: false, queued: true });
  // The listener itself, were it blocked in accept, would show its own address and no peer.
});

t.test('unix sockets: the kernel names the peer socket (sock_diag), and whoever holds it is the peer; the bound path where there is one', { skip: linux }, async (t) => {
  const binary = await peersBinary();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iokit-snap-peer-unix-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const socketPath = path.join(dir, 'server.sock');
  const server = await run(t, binary, ['unix-server', socketPath]);
  const client = await run(t, binary, ['unix-client', socketPath]);
  const serving = await blockedSnapshot([server.pid, client.pid], server.pid, /^socket:/);
  t.same(
    serving.thread.blockedIn!.peer,
    { kind: 'unix', local: socketPath, pids: [{ pid: client.pid, name: 'peers' }], sampled: true },
    'the server side: its accepted socket carries the path, and the client holds the other end',
  );
  t.same(
    serving.snap.processes.find((p) => p.pid === client.pid)!.threads[0].blockedIn!.peer,
    { kind: 'unix', pids: [{ pid: server.pid, name: 'peers' }], sampled: true },
    'the client side: unbound, and the server holds the other end',
  );
  t.notOk(serving.snap.limits.some((l) => l.field === 'blockedIn.peer'), 'no limit: every peer was found');

  // A client polling its one connection (poll names no fd): that connection's peer, inferred.
  // Its stdout and stderr are sockets too here (Node's pipes are socketpairs): not the connection.
  const pollServer = await run(t, binary, ['unix-server', path.join(dir, 'poll.sock')]);
  const poller = await run(t, binary, ['poll-client', path.join(dir, 'poll.sock')]);
  const polled = await waitFor(async () => {
    const s = await snapshot({ pids: [poller.pid], peers: true, accelerators: false });
    return s.processes[0]?.threads[0]?.blockedIn?.call === 'poll' && s;
  }, 'the client in poll');
  t.same(polled.processes[0].threads[0].blockedIn!.peer, { kind: 'unix', inferred: true, pids: [{ pid: pollServer.pid, name: 'peers' }], sampled: true });
  t.same(polled.processes.map((p) => [p.pid, p.peerOf]), [[poller.pid, undefined], [pollServer.pid, poller.pid]], 'peers: the server is sampled too, marked peerOf');

  const pair = await run(t, binary, ['unix-pair']);
  const child = Number(pair.info.child);
  t.teardown(() => process.kill(child, 'SIGKILL'));
  const paired = await blockedSnapshot([pair.pid, child], child, /^socket:/);
  t.same(paired.thread.blockedIn!.peer, { kind: 'unix', pids: [{ pid: pair.pid, name: 'peers' }], sampled: true }, 'a socketpair between two processes: the parent holds the other end');
});

t.test('what the search costs and where its bounds stop it', { skip: linux }, async (t) => {
  const shell = await run(t, 'sh', ['-c', 'yes | sleep 1000'], false);
  const [yes, sleeper] = await childrenOf(shell.pid, ['yes', 'sleep']);
  t.teardown(() => [yes, sleeper].forEach((pid) => process.kill(pid, 'SIGKILL')));
  const { snap } = await blockedSnapshot([yes], yes, /^pipe:/);
  const fresh = (): ProcessSample[] => structuredClone(snap.processes);

  const whole = findPeers(fresh());
  t.equal(whole.found, 1);
  t.ok(whole.cost.wholeSystem && whole.cost.processes > 1 && whole.cost.fds > 3, `searched ${whole.cost.processes} processes, ${whole.cost.fds} fds in ${whole.cost.ms} ms`);

  const noneBlocked = fresh().map((p) => ({ ...p, threads: p.threads.map((th) => ({ ...th, blockedIn: null })) }));
  const idle = findPeers(noneBlocked);
  t.match(idle, { found: 0, limits: [], cost: { processes: 0, fds: 0, wholeSystem: false } }, 'nothing blocked on a pipe: nothing read');

  for (const [options, bound] of [
    [{ maxProcesses: 0 }, /0 processes \(maxProcesses\)/],
    [{ maxFds: 2 }, /2 fd links \(maxFds\)/],
    [{ budgetMs: -1 }, /-1 ms \(budgetMs\)/],
  ] as const) {
    const processes = fresh();
    const cut = findPeers(processes, options);
    t.same(processes[0].threads[0].blockedIn!.peer, { kind: 'pipe' }, `${JSON.stringify(options)}: no holder found`);
    t.match(cut.limits, [{ subject: `pid ${yes}`, field: 'blockedIn.peer', code: 'ETIMEDOUT', reason: bound }]);
  }
});

const TCP_HEADER = '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n';
const TCP6_HEADER = '  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n';
const UNIX_HEADER = 'Num       RefCount Protocol Flags    Type St Inode Path\n';
const tcpLine = (local: string, remote: string, state: string, inode: number): string =>
  `   0: ${local} ${remote} ${state} 00000000:00000000 00:00000000 00000000     0        0 ${inode} 1 0000000050406cf3 100 0 0 10 0\n`;

function tree(t: { teardown(fn: () => unknown): void }): { root: string; fd(pid: number, fd: number, link: string, flags?: string): void; file(rel: string, text: string): void } {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'iokit-snap-peer-proc-'));
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  const file = (rel: string, text: string): void => {
    fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    fs.writeFileSync(path.join(root, rel), text);
  };
  return {
    root,
    file,
    fd(pid, fd, link, flags) {
      fs.mkdirSync(path.join(root, String(pid), 'fd'), { recursive: true });
      fs.symlinkSync(link, path.join(root, String(pid), 'fd', String(fd)));
      if (flags !== undefined) file(`${pid}/fdinfo/${fd}`, `pos:\t0\nflags:\t${flags}\nmnt_id:\t15\nino:\t600\n`);
    },
  };
}

const on = (fd: number, target: string, call = 'read'): BlockedIn => ({ call, number: 0, fd, target });

t.test('addresses as /proc/net/tcp prints them', async (t) => {
  t.equal(procNetAddress('0100007F:1F90', true), '127.0.0.1:8080');
  t.equal(procNetAddress('7F000001:1F90', false), '127.0.0.1:8080', 'a big-endian host prints the words in order');
  t.equal(procNetAddress('00000000000000000000000001000000:0050', true), '[::1]:80');
  t.equal(procNetAddress('0000000000000000FFFF00000100007F:1538', true), '127.0.0.1:5432', 'v4-mapped IPv6 as IPv4');
  t.equal(procNetAddress('00000000000000000000000000000000:0000', true), '[::]:0');
  t.equal(procNetAddress('B80D0120020001000400030006000500:01BB', true), '[2001:db8:1:2:3:4:5:6]:443', 'no run of zero groups');
  t.equal(procNetAddress('000080FE000000000000000001000000:0016', true), '[fe80::1]:22');
});

t.test('sockets and fifos in a /proc tree', async (t) => {
  const proc_ = tree(t);
  // pid 100: blocked on a TCP connection to another host, a listening socket, a UDP socket,
  // an abstract unix socket, a fifo, and a pipe whose fdinfo is gone.
  proc_.file('100/net/tcp', TCP_HEADER + tcpLine('0100007F:9C40', '0900000A:1538', '01', 500) + tcpLine('0100007F:1F90', '00000000:0000', '0A', 501));
  proc_.file('100/net/tcp6', TCP6_HEADER);
  proc_.file('100/net/unix', UNIX_HEADER + '00000000ab32108d: 00000003 00000000 00000000 0001 03   503 @bus\n');
  proc_.fd(100, 5, '/run/app.fifo', '0100000');
  proc_.fd(100, 6, 'pipe:[600]');
  proc_.fd(200, 1, '/run/app.fifo', '0100001');
  proc_.fd(200, 2, 'pipe:[600]', '01');
  proc_.file('200/comm', 'feeder\n');
  proc_.fd(300, 1, 'pipe:[600]', '01'); // no comm: a process gone while it was read
  fs.mkdirSync(path.join(proc_.root, '400')); // no fd directory: a kernel thread, or gone
  const threads = [
    thread(100, { blockedIn: on(10, 'socket:[500]', 'recvfrom') }),
    thread(101, { blockedIn: on(11, 'socket:[501]', 'accept4') }),
    thread(102, { blockedIn: on(12, 'socket:[502]', 'recvfrom') }),
    thread(103, { blockedIn: on(13, 'socket:[503]', 'recvmsg') }),
    thread(104, { blockedIn: on(5, '/run/app.fifo'), wchan: 'pipe_read' }),
    thread(105, { blockedIn: on(6, 'pipe:[600]') }),
    thread(106, { blockedIn: on(7, '/data/file'), wchan: 'folio_wait_bit_common' }),
    thread(107, { blockedIn: { call: 'read', number: 0, target: 'pipe:[600]' } }),
  ];
  const processes = [{ ...proc(100, threads), sampledAtNs: 0 }] as ProcessSample[];
  const search = findPeers(processes, { procRoot: proc_.root });
  const peers = threads.map((th) => th.blockedIn!.peer);
  t.same(peers[0], { kind: 'tcp', local: '127.0.0.1:40000', remote: '10.0.0.9:5432' }, 'another host: the addresses only');
  t.same(peers[1], { kind: 'tcp', local: '127.0.0.1:8080' }, 'a listening socket waits for a client, not a peer');
  t.equal(peers[2], undefined, 'not a TCP or unix socket');
  t.same(peers[3], { kind: 'unix', local: '@bus' });
  t.same(peers[4], { kind: 'pipe', pids: [{ pid: 200, name: 'feeder' }], sampled: false }, 'a fifo, by its path and the pipe wait channel');
  t.same(peers[5], { kind: 'pipe', pids: [{ pid: 200, name: 'feeder' }], sampled: false }, 'unknown direction: any other holder; the search stops at the first');
  t.equal(peers[6], undefined, 'a file read is not a pipe');
  t.equal(peers[7], undefined, 'no fd: nothing to match');
  t.equal(search.found, 5);
  t.match(search.limits, [{ subject: 'processes', code: 'ENOTSUP' }]);
  t.ok(search.cost.wholeSystem);
});

t.test('a TCP peer on this host whose process cannot be found, and a search with no /proc to read', async (t) => {
  const proc_ = tree(t);
  proc_.file('100/net/tcp', TCP_HEADER + tcpLine('0100007F:9C40', '0100007F:1538', '01', 500) + tcpLine('0100007F:1538', '0100007F:9C40', '01', 777));
  fs.mkdirSync(path.join(proc_.root, '100', 'ns'));
  fs.symlinkSync('net:[4026531833]', path.join(proc_.root, '100', 'ns', 'net'));
  const blocked = on(10, 'socket:[500]', 'recvfrom');
  const search = findPeers([{ ...proc(100, [thread(100, { blockedIn: blocked })]), sampledAtNs: 0 }], { procRoot: proc_.root });
  t.same(blocked.peer, { kind: 'tcp', local: '127.0.0.1:40000', remote: '127.0.0.1:5432' });
  t.match(search.limits, [{ subject: 'pid 100', code: 'ESRCH', reason: /no process readable here holds the owner of socket:\[777\] \(the peer of 127\.0\.0\.1:40000 → 127\.0\.0\.1:5432\)/ }]);

  const gone = on(3, 'pipe:[9]');
  const missing = findPeers([{ ...proc(100, [thread(100, { blockedIn: gone })]), sampledAtNs: 0 }], { procRoot: path.join(proc_.root, 'nothing-here') });
  t.same(gone.peer, { kind: 'pipe' });
  t.match(missing.limits, [{ code: 'ESRCH', reason: /the other end of pipe:\[9\]/ }]);
});

t.test('the search of the whole system stops at the nearest holder', async (t) => {
  const proc_ = tree(t);
  proc_.fd(100, 3, 'pipe:[600]', '01');
  for (const pid of [90, 103, 104, 5000]) proc_.fd(pid, 0, 'pipe:[600]', '00');
  proc_.fd(101, 0, '/dev/null', '00');
  const blocked = on(3, 'pipe:[600]', 'write');
  const search = findPeers([{ ...proc(100, [thread(100, { blockedIn: blocked })]), sampledAtNs: 0 }], { procRoot: proc_.root });
  t.same(blocked.peer!.pids!.map((p) => p.pid), [103], 'pids 101 and 103 (1 and 3 away) read; 90, 104 and 5000 not');
  t.match(search, { limits: [], cost: { processes: 3, wholeSystem: true } });
});

t.test('an IPv6 connection queued on a wildcard listener; a process without net tables; the fd bound', async (t) => {
  const proc_ = tree(t);
  // pid 100's client [::1]:40000 → [::1]:5432, accepted by nobody yet (the server end has inode 0),
  // and pid 300 listening on [::]:5432.
  const v6 = (port: string): string => `00000000000000000000000001000000:${port}`;
  proc_.file(
    '100/net/tcp6',
    TCP6_HEADER +
      tcpLine(v6('9C40'), v6('1538'), '01', 800) +
      tcpLine(v6('1538'), v6('9C40'), '01', 0) +
      tcpLine('00000000000000000000000000000000:1538', '00000000000000000000000000000000:0000', '0A', 900),
  );
  proc_.fd(300, 3, 'socket:[900]');
  proc_.file('300/comm', 'postgres\n');
  const client = on(10, 'socket:[800]', 'recvfrom');
  const noTables = on(11, 'socket:[801]', 'recvfrom');
  const unnamed = on(12, '/run/other.fifo');
  findPeers([{ ...proc(100, [thread(100, { blockedIn: client })]), sampledAtNs: 0 }, { ...proc(200, [thread(200, { blockedIn: noTables }), thread(201, { blockedIn: unnamed })]), sampledAtNs: 0 }], {
    procRoot: proc_.root,
  });
  t.same(client.peer, { kind: 'tcp', local: '[::1]:40000', remote: '[::1]:5432', pids: [{ pid: 300, name: 'postgres' }], sampled: false, queued: true });
  t.equal(noTables.peer, undefined, 'no /proc/200/net tables: the socket is not found');
  t.equal(unnamed.peer, undefined, 'a path without a pipe wait channel is not taken for a fifo');

  // The fd bound, reached in the search of the whole system.
  const bounded = tree(t);
  bounded.fd(100, 3, 'pipe:[600]', '01');
  for (let fd = 0; fd < 5; fd++) bounded.fd(101, fd, fd === 4 ? 'pipe:[600]' : '/dev/null', '00');
  const writer = on(3, 'pipe:[600]', 'write');
  const search = findPeers([{ ...proc(100, [thread(100, { blockedIn: writer })]), sampledAtNs: 0 }], { procRoot: bounded.root, maxFds: 4 });
  t.same(writer.peer, { kind: 'pipe' });
  t.match(search.limits, [{ code: 'ETIMEDOUT', reason: /stopped at 4 fd links \(maxFds\)/ }]);
  t.same(search.cost, { processes: 2, fds: 4, ms: search.cost.ms, wholeSystem: true });
});

t.test('a caller that may not read the other processes’ fds says so', { skip: process.platform !== 'linux' || process.getuid?.() !== 0 ? 'needs Linux and root (to become nobody for a moment)' : false }, async (t) => {
  // Root's `yes` writes into a full pipe read by root's `sleep`; this process, as nobody,
  // may read neither's fds (/proc/<pid>/fd needs ptrace read access).
  const shell = spawn('sh', ['-c', 'yes | sleep 1000'], { stdio: 'ignore' });
  const gone = new Promise((resolve) => shell.once('exit', resolve));
  const kids = await waitFor(() => {
    const list = fs.readFileSync(`/proc/${shell.pid}/task/${shell.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
    return list.length === 2 && list;
  }, 'the pipeline');
  t.teardown(async () => {
    for (const pid of kids) process.kill(pid, 'SIGKILL');
    await gone;
  });
  const yes = await waitFor(() => kids.find((pid) => fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'yes'), 'yes to exec');
  const target = await waitFor(() => fs.readlinkSync(`/proc/${yes}/fd/1`).startsWith('pipe:') && fs.readlinkSync(`/proc/${yes}/fd/1`), 'its pipe');
  const blocked = on(1, target, 'write');
  process.seteuid!(65534);
  let search;
  try {
    search = findPeers([{ ...proc(yes, [thread(yes, { blockedIn: blocked })], 'yes'), sampledAtNs: 0 }]);
  } finally {
    process.seteuid!(0);
  }
  t.same(blocked.peer, { kind: 'pipe' });
  t.match(search.limits, [{ subject: `pid ${yes}`, code: 'EPERM', reason: /the other end of pipe:\[\d+\] was not found; the fds of \d+ process\(es\) could not be read/, hint: /root/ }]);
  // Cut short too: the bound is named first, the permission second.
  process.seteuid!(65534);
  try {
    search = findPeers([{ ...proc(yes, [thread(yes, { blockedIn: { ...blocked, peer: undefined } })], 'yes'), sampledAtNs: 0 }], { maxProcesses: 1 });
  } finally {
    process.seteuid!(0);
  }
  t.match(search.limits, [{ code: 'ETIMEDOUT', reason: /stopped at 1 processes/ }]);
});

t.test('the snapshot schema takes blockedIn.peer and names a bad field of it', async (t) => {
  const withPeer = (peer: unknown): unknown => snapAt(0, [proc(100, [thread(100, { blockedIn: { ...on(3, 'pipe:[1]'), peer } as BlockedIn })])]);
  t.ok(validateSnapshot(withPeer({ kind: 'pipe', pids: [{ pid: 7, name: 'sleep' }], sampled: true })));
  t.ok(validateSnapshot(withPeer({ kind: 'tcp', local: '127.0.0.1:1', remote: '127.0.0.1:2', queued: true })));
  t.ok(validateSnapshot(withPeer({ kind: 'a kind of a later version' })), 'any kind: a later version may add one');
  const bad: Array<[unknown, string]> = [
    [{ kind: 5 }, 'peer.kind'],
    [{ kind: 'pipe', pids: [{ pid: 1.5, name: 'x' }] }, 'peer.pids[0].pid'],
    [{ kind: 'pipe', pids: [{ pid: 1 }] }, 'peer.pids[0].name'],
    [{ kind: 'tcp', remote: 80 }, 'peer.remote'],
    [{ kind: 'pipe', sampled: 'yes' }, 'peer.sampled'],
    ['pipe', 'peer'],
  ];
  for (const [peer, field] of bad) {
    t.throws(() => validateSnapshot(withPeer(peer)), { code: 'EINVAL', message: new RegExp(`threads\\[0\\]\\.blockedIn\\.${field.replace(/[[\]]/g, '\\$&')} must be`) }, field);
  }
});

t.test('a client in poll whose fds cannot be listed, or one of whose fds is not a link, in a /proc tree', async (t) => {
  const proc_ = tree(t);
  // pid 100: no fd directory (a process gone, or one whose fds this caller may not read): nothing inferred.
  fs.mkdirSync(path.join(proc_.root, '100'));
  const unlisted = { call: 'poll', number: 7 };
  // pid 200: fd 3 is a file, not a link (an fd closed while its directory was listed reads EINVAL or
  // ENOENT), fd 4 its one connection, to pid 300 on this host.
  proc_.file('200/net/tcp', TCP_HEADER + tcpLine('0100007F:9C40', '0100007F:1538', '01', 500) + tcpLine('0100007F:1538', '0100007F:9C40', '01', 501));
  proc_.file('200/fd/3', '');
  proc_.fd(200, 4, 'socket:[500]');
  proc_.fd(300, 5, 'socket:[501]');
  proc_.file('300/comm', 'server\n');
  const polled = { call: 'poll', number: 7 };
  const search = findPeers(
    [
      { ...proc(100, [thread(100, { blockedIn: unlisted })]), sampledAtNs: 0 },
      { ...proc(200, [thread(200, { blockedIn: polled })]), sampledAtNs: 0 },
    ],
    { procRoot: proc_.root },
  );
  t.equal((unlisted as BlockedIn).peer, undefined, 'no fds listed: no connection to infer');
  t.same((polled as BlockedIn).peer, { kind: 'tcp', local: '127.0.0.1:40000', remote: '127.0.0.1:5432', inferred: true, pids: [{ pid: 300, name: 'server' }], sampled: false }, 'the entry that is not a link is passed over');
  t.equal(search.found, 1);
});

t.test('unix sockets when the kernel cannot be asked (no addon, or one without sock_diag): the bound path, and a limit that says so', { skip: linux }, async (t) => {
  // A real unix socket connection of this process: the server end, bound to a path, is the one "blocked".
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iokit-snap-peer-sock-'));
  const sockPath = path.join(dir, 's');
  const net = await import('node:net');
  const accepted: Array<import('node:net').Socket> = [];
  const server = net.createServer((s) => accepted.push(s));
  await new Promise<void>((resolve) => server.listen(sockPath, resolve));
  const client = net.connect(sockPath);
  await new Promise<void>((resolve) => client.once('connect', resolve));
  await waitFor(() => accepted.length === 1, 'the connection to be accepted');
  t.teardown(() => {
    client.destroy();
    accepted.forEach((s) => s.destroy());
    server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const fd = (server as unknown as { _handle: { fd: number } })._handle.fd;
  const target = fs.readlinkSync(`/proc/self/fd/${fd}`);
  t.match(target, /^socket:\[\d+\]$/);
  const natives: Record<string, () => object> = {
    'no binary for this platform': () => {
      throw new Error('no binary for this platform');
    },
    'an addon without unixSocketPeers (macOS)': () => ({}),
  };
  for (const [why, binding] of Object.entries(natives)) {
    const { findPeers: mockedFindPeers } = t.mockRequire<typeof import('../src/peer')>('../src/peer', { '../src/native': { binding } });
    const waiting = on(fd, target, 'accept4');
    const search = mockedFindPeers([{ ...proc(process.pid, [thread(process.pid, { blockedIn: waiting })]), sampledAtNs: 0 }]);
    t.same(waiting.peer, { kind: 'unix', local: sockPath }, why);
    t.match(search.limits, [{ subject: 'processes', field: 'blockedIn.peer', code: 'ENOTSUP', reason: /the kernel could not be asked/ }], why);
  }
});
