/**
 * Which processes serve watches: name and command-line patterns over a /proc tree (a fixture
 * with the layout of proc(5): <pid>/comm, <pid>/cmdline with NUL-separated arguments), the
 * command line read once per process and never while a read of it is stuck, and the members
 * of a real cgroup of this machine.
 */
import t from 'tap';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { IokitSnapError } from '../src/errors';
import { cgroupRootOf, checkSelection, parseCgroupProcs, ProcessSelector } from '../src/metrics/selection';
import { start, waitFor } from './helpers/targets';

const linux = process.platform === 'linux' ? false : 'cgroups and /proc are Linux';

function procTree(t: { teardown(fn: () => unknown): void }): { root: string; add(pid: number, comm: string, args: string[] | null): void } {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'iokit-snap-select-'));
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  return {
    root,
    add(pid, comm, args) {
      fs.mkdirSync(path.join(root, String(pid)), { recursive: true });
      fs.writeFileSync(path.join(root, String(pid), 'comm'), `${comm}\n`);
      if (args !== null) fs.writeFileSync(path.join(root, String(pid), 'cmdline'), args.length === 0 ? '' : `${args.join('\0')}\0`);
    },
  };
}

const sorted = (pids: Set<number>) => [...pids].sort((a, b) => a - b);

t.test('match: by name first, else by command line; decided once per process', async (t) => {
  const proc = procTree(t);
  proc.add(100, 'python3', ['python3', 'train.py']);
  proc.add(200, 'node', ['node', 'server.js', '--model', 'llama-3']);
  proc.add(300, 'kworker/0:1', []);
  proc.add(400, 'bash', ['bash', '-c', 'sleep 5']);
  fs.mkdirSync(path.join(proc.root, 'self'));
  fs.writeFileSync(path.join(proc.root, 'uptime'), '1.0 1.0\n');
  const selector = new ProcessSelector({ match: ['^python', /llama/] }, { procRoot: proc.root });
  const first = await selector.select();
  t.same(sorted(first.pids), [100, 200]);
  t.same(first.limits, []);

  // The command line is not read again: removing it changes nothing for a process already seen.
  fs.rmSync(path.join(proc.root, '200', 'cmdline'));
  t.same(sorted((await selector.select()).pids), [100, 200], 'pid 200 still matched: its cmdline was not re-read');

  // A pid that left the table and came back is a new process: decided again.
  fs.rmSync(path.join(proc.root, '200'), { recursive: true });
  t.same(sorted((await selector.select()).pids), [100]);
  proc.add(200, 'node', ['node', 'other.js']);
  t.same(sorted((await selector.select()).pids), [100], 'the new pid 200 does not match');

  // A process that exited between listing and reading is skipped.
  fs.mkdirSync(path.join(proc.root, '500'));
  t.same(sorted((await selector.select()).pids), [100]);
});

t.test('a command-line read that hangs: a limit, and new processes are matched by name only until it returns', { skip: linux }, async (t) => {
  const proc = procTree(t);
  proc.add(100, 'python3', ['python3']);
  proc.add(200, 'node', null);
  const cmdline = path.join(proc.root, '200', 'cmdline');
  execFileSync('mkfifo', [cmdline]);
  const selector = new ProcessSelector({ match: ['^python', 'llama'] }, { procRoot: proc.root, cmdlineTimeoutMs: 100 });
  const stuck = await selector.select();
  t.same(sorted(stuck.pids), [100]);
  t.match(stuck.limits, [{ subject: 'selection', field: 'match', code: 'ETIMEDOUT', reason: /reading the command line of pid 200 has not returned for .* s; new processes are matched by name only/ }]);

  proc.add(300, 'python3.11', ['python3.11']);
  proc.add(400, 'node', ['node', 'llama.js']);
  const meanwhile = await selector.select();
  t.same(sorted(meanwhile.pids), [100, 300], 'a name match is found; a command-line match waits');
  t.equal(meanwhile.limits.length, 1);

  // The stuck read returns (and a regular file replaces the fifo): command lines are read again.
  fs.writeFileSync(`${cmdline}.new`, 'node\0llama-server\0');
  const writer = fs.openSync(cmdline, fs.constants.O_WRONLY);
  fs.renameSync(`${cmdline}.new`, cmdline);
  fs.writeSync(writer, 'node\0llama-server\0');
  fs.closeSync(writer);
  const after = await waitFor(async () => {
    const s = await selector.select();
    return s.limits.length === 0 && s;
  }, 'the stuck read to return');
  t.same(sorted(after.pids), [100, 200, 300, 400], 'pid 400 decided now; pid 200 had no answer in time and is decided again');
});

t.test('explicit pids are watched until they exit, then forgotten', async (t) => {
  const selector = new ProcessSelector({ pids: [4242, 4242, process.pid] });
  t.same(sorted((await selector.select()).pids), [4242], 'duplicates once; never iokit-snap itself');
  selector.forget(4242);
  t.same(sorted((await selector.select()).pids), []);
});

t.test('cgroups: the members of a real cgroup of this machine, by relative and absolute path; a missing one is a limit', { skip: linux }, async (t) => {
  const mount = cgroupRootOf(fs.readFileSync('/proc/self/mountinfo', 'utf8'));
  const name = `iokit-snap-test-${process.pid}`;
  const ours = fs.readFileSync('/proc/self/cgroup', 'utf8').match(/^0::(.*)$/m)?.[1];
  const dir = ours !== undefined ? path.join(mount, ours, name) : null;
  try {
    if (dir === null) throw new Error('no cgroup2 hierarchy');
    if (!fs.existsSync(path.join(mount, 'cgroup.controllers'))) throw new Error(`${mount} is not a cgroup2 hierarchy`);
    fs.mkdirSync(dir);
  } catch (error) {
    t.skip(`cannot create a cgroup here: ${(error as Error).message}`);
    return;
  }
  const target = await start(t, 'sleep');
  t.teardown(async () => {
    await target.stop();
    await waitFor(() => {
      try {
        fs.rmdirSync(dir);
        return true;
      } catch {
        return false;
      }
    }, 'the test cgroup removed');
  });
  fs.writeFileSync(path.join(dir, 'cgroup.procs'), String(target.pid));
  const relative = path.join(ours!, name);
  for (const cgroup of [relative, dir]) {
    const selected = await new ProcessSelector({ cgroups: [cgroup] }).select();
    t.same(sorted(selected.pids), [target.pid], cgroup);
    t.same(selected.limits, []);
  }
  const missing = await new ProcessSelector({ cgroups: ['/system.slice/no-such-unit.service'] }).select();
  t.same(sorted(missing.pids), []);
  t.match(missing.limits, [{ subject: 'cgroup /system.slice/no-such-unit.service', field: 'members', code: 'ENOENT', hint: /looked for again every interval/ }]);
  const rooted = await new ProcessSelector({ cgroups: [name] }, { cgroupRoot: path.join(mount, ours!) }).select();
  t.same(sorted(rooted.pids), [target.pid], 'relative to a given cgroupRoot');
  // A file where a cgroup directory should be: the error says so, without the not-found hint.
  const notDir = await new ProcessSelector({ cgroups: ['cgroup.procs'] }, { cgroupRoot: dir }).select();
  t.match(notDir.limits, [{ code: 'ENOTDIR', hint: undefined }]);
});

t.test('bad selections are clear errors', async (t) => {
  const bad = (selection: unknown, message: RegExp) =>
    t.throws(() => checkSelection(selection as Parameters<typeof checkSelection>[0]), new IokitSnapError('EINVAL', '') && { code: 'EINVAL', message });
  bad(null, /must be an object/);
  bad({ pids: 'x' }, /must be arrays/);
  bad({ pids: [0] }, /0 is not a process id/);
  bad({ match: [''] }, /give a regular expression/);
  bad({ match: ['('] }, /is not a regular expression/);
  bad({ cgroups: [''] }, /give a cgroup path/);
  t.same(checkSelection({}), { pids: [], match: [], cgroups: [] }, 'nothing selected: the accelerators only');
  const broken = await new ProcessSelector({ match: ['x'] }, { procRoot: '/nonexistent-proc' }).select();
  t.match(broken.limits, [{ subject: 'selection', code: 'ENOENT', reason: /cannot list \/nonexistent-proc/ }]);
});

t.test('parsers: the cgroup2 mount from mountinfo, pids from cgroup.procs', async (t) => {
  t.equal(cgroupRootOf('29 23 0:25 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n30 23 0:26 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw\n'), '/sys/fs/cgroup/unified');
  t.equal(cgroupRootOf('29 23 0:25 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n'), '/sys/fs/cgroup', 'no cgroup2 mount: the usual place');
  t.equal(cgroupRootOf('truncated - cgroup2 cgroup2 rw\n'), '/sys/fs/cgroup', 'a line without a mount point');
  t.same(parseCgroupProcs('12\n345\n\n'), [12, 345]);
});

t.test('counts per selector: pids there or not, matches per pattern, a missing cgroup with its reason', async (t) => {
  const proc = procTree(t);
  proc.add(100, 'python3', ['python3', 'train.py']);
  proc.add(200, 'node', ['node', 'llama-server.js']);
  proc.add(300, 'python3.11', ['python3.11', 'llama.py']);
  proc.add(process.pid, 'python3', ['python3', 'iokit-snap']);
  const selector = new ProcessSelector(
    { pids: [100, 999, process.pid], match: ['^python', /llama/i, 'nothing-matches-this'], cgroups: process.platform === 'linux' ? ['/no-such.slice'] : [] },
    { procRoot: proc.root },
  );
  const selected = await selector.select();
  t.same(sorted(selected.pids), [100, 200, 300, 999], "an explicit pid is tried until its sampler says it is gone");
  t.same(selected.counts.slice(0, 6), [
    { kind: 'pid', selector: '100', processes: 1 },
    { kind: 'pid', selector: '999', processes: 0, reason: 'no such process' },
    { kind: 'pid', selector: String(process.pid), processes: 0, reason: 'iokit-snap itself is never watched' },
    // 300's name matches ^python, so its command line (llama) is never read: it counts for the name's pattern.
    { kind: 'match', selector: '^python', processes: 2 },
    { kind: 'match', selector: '/llama/i', processes: 1 },
    { kind: 'match', selector: 'nothing-matches-this', processes: 0 },
  ]);
  if (process.platform === 'linux') t.match(selected.counts[6], { kind: 'cgroup', selector: '/no-such.slice', processes: 0, reason: /cannot read .*cgroup\.procs/ });
  selector.forget(100);
  t.match((await selector.select()).counts[0], { kind: 'pid', selector: '100', processes: 0, reason: 'it exited' });

  // The real /proc: this test runner is there, pid 0x7ffffffe is not.
  const real = await new ProcessSelector({ pids: [process.ppid, 0x7ffffffe] }).select();
  t.same(
    real.counts.map((c) => c.processes),
    [1, 0],
  );
});

t.test('a name or command line that makes a pattern backtrack past its budget: not selected, and a limit says so while it lives', async (t) => {
  const proc = procTree(t);
  const hostile = 'a'.repeat(40) + '!';
  proc.add(100, 'aaaaaaaaaaaaaa!', [hostile, '--serve']);
  proc.add(200, 'aaaa', ['aaaa']);
  proc.add(300, 'python3', ['python3']);
  const selector = new ProcessSelector({ match: ['^(a+)+$', '^python'] }, { procRoot: proc.root, matchBudgetMs: 50 });
  const started = Date.now();
  const first = await selector.select();
  t.ok(Date.now() - started < 5000, 'the pass ended');
  t.same(sorted(first.pids), [200, 300], 'the short name matches; the hostile command line is given up');
  t.match(first.limits, [
    {
      subject: 'selection',
      field: 'match',
      code: 'ECANCELED',
      reason: /matching the command line of pid 100 against the --match patterns took more than 50 ms, so it was stopped; pid 100 is not selected/,
      hint: /nested repetition/,
    },
  ]);
  const again = await selector.select();
  t.same(sorted(again.pids), [200, 300], 'decided once: not tried again');
  t.equal(again.limits.length, 1, 'and still said');
  fs.rmSync(path.join(proc.root, '100'), { recursive: true });
  t.same((await selector.select()).limits, [], 'gone with the process');
  // A name the pattern cannot finish on (a fixture: a real comm is at most 15 characters).
  proc.add(400, hostile, null);
  const byName = await selector.select();
  t.match(byName.limits, [{ code: 'ECANCELED', reason: /matching the name of pid 400/ }]);
});
