/**
 * snapshot() names who is at the other end of a pipe or socket a thread is blocked on,
 * with real processes: shell pipelines of coreutils (a writer blocked on a full pipe, a
 * reader on an empty one) and the socket ends of test/targets/peers.c (a TCP client of a
 * local server that accepted, of one that never accepts, over IPv4 and IPv6; unix socket
 * clients, servers and a socketpair between two processes).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t, { type Test } from 'tap';
import { findPeers } from '../src/peer';
import { snapshot } from '../src/sample';
import { validateSnapshot } from '../src/snapshot-file';
import type { Peer, ProcessSample, Snapshot, ThreadSample } from '../src/types';
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

t.test('unix sockets: the bound path where there is one, and a limit saying the peer is not in /proc', { skip: linux }, async (t) => {
  const binary = await peersBinary();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iokit-snap-peer-unix-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const socketPath = path.join(dir, 'server.sock');
  const server = await run(t, binary, ['unix-server', socketPath]);
  const client = await run(t, binary, ['unix-client', socketPath]);
  const serving = await blockedSnapshot([server.pid, client.pid], server.pid, /^socket:/);
  t.same(serving.thread.blockedIn!.peer, { kind: 'unix', local: socketPath }, 'the server side: its accepted socket carries the path');
  t.same(serving.snap.processes.find((p) => p.pid === client.pid)!.threads[0].blockedIn!.peer, { kind: 'unix' }, 'the client side: unbound');
  t.match(serving.snap.limits, [{ subject: 'processes', field: 'blockedIn.peer', code: 'ENOTSUP', reason: /sock_diag/, hint: /ss -xp/ }]);

  const pair = await run(t, binary, ['unix-pair']);
  const child = Number(pair.info.child);
  t.teardown(() => process.kill(child, 'SIGKILL'));
  const paired = await blockedSnapshot([pair.pid, child], child, /^socket:/);
  t.same(paired.thread.blockedIn!.peer, { kind: 'unix' }, 'a socketpair between two processes: neither end bound, the peer not in /proc');
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
