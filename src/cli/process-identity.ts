/**
 * What program a process is running, so `iokit-snap exec` notices when its command exec()s
 * another (a wrapper script becoming python3): same pid, new program, and a baseline of the
 * old program says nothing about the new one. Linux: the command name and the executable,
 * from /proc (neither takes the mmap lock of a possibly hung process).
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';

/** "comm\0exe" of pid, or null when it is gone or cannot be read (then nothing is compared). */
export async function processIdentity(pid: number, procRoot = '/proc'): Promise<string | null> {
  /* c8 ignore next -- macOS has no /proc: no identity, so exec() of the same pid is not followed there */
  if (process.platform !== 'linux') return null;
  try {
    const [comm, exe] = await Promise.all([
      fs.readFile(path.join(procRoot, String(pid), 'comm'), 'utf8'),
      // exe is hidden from other users (and empty for kernel threads): the name alone then.
      /* c8 ignore next */
      fs.readlink(path.join(procRoot, String(pid), 'exe')).catch(() => ''),
    ]);
    return `${comm.trimEnd()}\0${exe}`;
  } catch {
    return null;
  }
}

/** The identities of pids, read together. */
export async function identities(pids: number[], procRoot?: string): Promise<Map<number, string | null>> {
  return new Map(await Promise.all(pids.map(async (pid) => [pid, await processIdentity(pid, procRoot)] as const)));
}

/** Pids whose program changed between two readings (both known and different). */
export function changedPrograms(before: Map<number, string | null>, now: Map<number, string | null>): number[] {
  return [...now].filter(([pid, identity]) => {
    const was = before.get(pid);
    return identity !== null && was !== undefined && was !== null && was !== identity;
  }).map(([pid]) => pid);
}
