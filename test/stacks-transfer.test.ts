/**
 * Taking stacks must not change what the target does: a thread blocked writing to a full pipe
 * is read from its syscall file, not stopped (a ptrace stop cuts a partial pipe write short,
 * and a program that does not loop on short writes loses the rest).
 */
import { spawn } from 'node:child_process';
import t from 'tap';
import { sampleThreads } from '../src/sample';
import { waitFor } from './helpers/targets';

const linux = process.platform === 'linux' ? false : 'Linux stacks';

t.test('a writer blocked on a full pipe keeps every byte when its stack is taken', { skip: linux }, async (t) => {
  const total = 1 << 20;
  // One write(2) of 1 MiB that returns what it wrote, as a program that does not retry short writes sees it.
  // A grandchild (sh waits for it): the main thread of our own child is never held anyway.
  const script = `import os, sys; n = os.write(1, b'x' * ${total}); sys.stderr.write(f'wrote {n}\\n')`;
  const child = spawn('sh', ['-c', `python3 -c "${script}" & echo $! >&2; wait`], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => child.kill('SIGKILL'));
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  child.stdout.pause(); // nobody reads: the write blocks once the pipe is full
  const writer = await waitFor(async () => Number(/^(\d+)$/m.exec(stderr)?.[1]) || false, 'the writer started');
  t.teardown(() => {
    try {
      process.kill(writer, 'SIGKILL');
    } catch {
      // it exited
    }
  });
  // A generous deadline: on a loaded 2-core machine python3 can take long to start and fill the pipe.
  const sample = await waitFor(async () => {
    const s = await sampleThreads(writer, { stacks: true }).catch(() => null);
    return s !== null && s.threads[0]?.blockedIn?.call === 'write' && s.threads[0].state === 'sleeping' && s;
  }, 'the child blocked in write', 60000);
  t.ok((sample.threads[0].stack ?? []).length > 0, 'its stack was taken, from the syscall file');
  // Taken a few more times, as a watch would.
  for (let i = 0; i < 3; i++) await sampleThreads(writer, { stacks: true });
  let read = 0;
  child.stdout.on('data', (chunk: Buffer) => (read += chunk.length));
  child.stdout.resume();
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  await waitFor(async () => /wrote \d+/.test(stderr) && child.stdout.readableEnded, 'its output ended');
  t.equal(code, 0);
  t.match(stderr, `wrote ${total}`, 'the one write wrote everything');
  t.equal(read, total, 'every byte arrived');
});
