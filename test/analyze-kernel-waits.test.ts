/**
 * When the call alone is ambiguous, the kernel's wait channel and stack name the wait and
 * what would end it: a real reader blocked opening a fifo (wchan wait_for_partner), and
 * synthetic pipe, socket, page-fault and driver-mutex waits as the kernel shows them.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import t from 'tap';
import { compare } from '../src/analyze';
import { kernelWaitHint, kernelWaitKind } from '../src/analyze/calls';
import { blocked, findingsOf, proc, snap, snapshotPair, start, thread } from './helpers/analyze';

const linux = process.platform === 'linux' ? false : 'the test targets are Linux programs';

t.test('a reader blocked opening a fifo waits for the other end, not for the filesystem', { skip: linux }, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iokit-snap-fifo-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const fifo = path.join(dir, 'pipe');
  execFileSync('mkfifo', [fifo]);
  const target = await start(t, 'fifo-opener', [fifo]);
  const { healthy, hung } = await snapshotPair(target.pid, 1000, (s) => s.processes[0]?.threads[0]?.wchan === 'wait_for_partner');
  t.equal(compare(healthy, hung, { stallMs: 1000 }).verdict, 'healthy', 'a daemon waiting for a client to open its fifo is idle');
  const report = compare(healthy, hung, { stallMs: 1000, expectExit: true });
  const [finding] = findingsOf(report, target.pid);
  t.match(finding, { kind: 'stalled', severity: 'critical' });
  t.match(finding!.message, /stalled in openat .*it opens a fifo and waits for the other end.*it ends when another process opens/);
  t.notMatch(finding!.message, /filesystem/);
});

t.test('pipe, socket, page-fault and driver-mutex waits are named from wchan and the kernel stack', async (t) => {
  const read = blocked('read', 0, 3, 'pipe:[9]');
  t.match(kernelWaitHint(thread(1, { blockedIn: read, wchan: 'pipe_read' })), /waits for input on a pipe \(pipe:\[9\]\); it ends when the writer writes or closes/);
  t.match(kernelWaitHint(thread(1, { blockedIn: blocked('write', 1, 4), wchan: 'pipe_write' })), /pipe is full/);
  t.match(kernelWaitHint(thread(1, { blockedIn: blocked('recvfrom', 45, 5), wchan: 'unix_stream_read_generic' })), /data on a socket/);
  t.match(kernelWaitHint(thread(1, { blockedIn: blocked('sendto', 44, 5), wchan: 'sk_stream_wait_memory' })), /buffer is full/);
  t.match(kernelWaitHint(thread(1, { blockedIn: blocked('accept4', 288, 5), wchan: 'inet_csk_accept' })), /a client connects/);
  const fault = thread(1, {
    state: 'uninterruptible',
    blockedIn: blocked('read', 0, 3, '/data/big'),
    wchan: 'folio_wait_bit_common',
    kernelStack: ['folio_wait_bit_common+0x13d/0x350', 'filemap_fault+0x5b1/0xa10', '__do_fault+0x33/0x140', 'handle_mm_fault+0x1d2/0x2e0', 'exc_page_fault+0x73/0x160'],
  });
  t.match(kernelWaitHint(fault), /page or buffer to come in from storage/);
  t.match(kernelWaitHint({ ...fault, wchan: undefined }), /in a page fault \(during read, touching memory/);
  const mutex = thread(1, {
    state: 'uninterruptible',
    blockedIn: blocked('ioctl', 16, 7, '/dev/nvidiactl'),
    wchan: '__mutex_lock.constprop.0',
    kernelStack: ['__mutex_lock.constprop.0+0x4a1/0x8e0', 'rm_ioctl+0x9c/0x150 [nvidia]', 'nvidia_ioctl+0x6ab/0x900 [nvidia]', '__x64_sys_ioctl+0x94/0xd0'],
  });
  t.match(kernelWaitHint(mutex), /kernel mutex in the nvidia driver that another thread holds/);
  t.match(kernelWaitHint(thread(1, { wchan: 'rwsem_down_read_slowpath', kernelStack: ['rwsem_down_read_slowpath+0x2a0/0x4b0', 'do_user_addr_fault+0x2b4/0x6a0'] })), /memory map lock/);
  t.match(kernelWaitHint(thread(1, { wchan: 'down_write' })), /read-write semaphore/);
  t.match(kernelWaitHint(thread(1, { kernelStack: ['pipe_read+0x3b1/0x450', 'vfs_read+0x2e8/0x320'] })), /a pipe; it ends/, 'from the stack when wchan is not readable');
  t.equal(kernelWaitHint(thread(1, { blockedIn: blocked('futex', 202), wchan: 'futex_do_wait' })), null, 'a futex says no more than the call');
  t.equal(kernelWaitHint(thread(1, { blockedIn: blocked('futex', 202) })), null);
  // In a D-state finding too.
  const report = compare(snap(0, [proc(100, [fault])]), snap(2000, [proc(100, [fault])]), { stallMs: 1000 });
  t.match(findingsOf(report, 1), [{ kind: 'uninterruptible', message: /hung_task rule\): .*; it waits for a page or buffer/ }]);
});

t.test('the hints without their optional parts', async (t) => {
  t.match(kernelWaitHint(thread(1, { blockedIn: blocked('openat', 257), wchan: 'wait_for_partner' })), /opens the fifo from the other side/);
  t.match(kernelWaitHint(thread(1, { blockedIn: { ...blocked('open', 2), target: '/tmp/f' }, wchan: 'wait_for_partner' })), /opens \/tmp\/f from the other side/);
  t.match(kernelWaitHint(thread(1, { blockedIn: blocked('read', 0, 3), wchan: 'pipe_wait_readable' })), /waits for input on a pipe; it ends/);
  t.match(kernelWaitHint(thread(1, { wchan: 'mutex_lock' })), /waits for a kernel mutex that another thread holds/);
  t.match(kernelWaitHint(thread(1, { wchan: '__mutex_lock', kernelStack: ['__mutex_lock+0x1/0x2', 'drm_ioctl+0x2b0/0x4d0'] })), /kernel mutex in the DRM layer \(drm_ioctl\)/);
  t.match(kernelWaitHint(thread(1, { kernelStack: ['filemap_fault+0x5b1/0xa10', 'exc_page_fault+0x73/0x160'] })), /in a page fault \(touching memory/);
});

t.test('the kind of a kernel wait: a page fault under any call is I/O; a wait the kernel says nothing more of has none', async (t) => {
  const faulting = thread(1, { blockedIn: blocked('futex', 202), kernelStack: ['filemap_fault+0x5b1/0xa10', 'exc_page_fault+0x73/0x160'] });
  t.equal(kernelWaitKind(faulting), 'io', 'a fault taken while in futex waits for storage, not for the futex');
  t.equal(kernelWaitKind(thread(1, { blockedIn: blocked('read', 0, 3, 'pipe:[9]'), wchan: 'pipe_read' })), 'peer');
  t.equal(kernelWaitKind(thread(1, { blockedIn: blocked('futex', 202), wchan: 'futex_do_wait' })), null);
});
