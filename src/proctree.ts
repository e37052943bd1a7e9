/**
 * The descendants of a process, so `iokit-snap exec` samples what the command started
 * (`sh -c` → python3, go → its tool binaries), not only the first process.
 * Linux reads /proc/<pid>/stat (never cmdline or maps, which take the mmap lock of a
 * possibly hung process); macOS asks ps, which uses the same sysctl as Activity Monitor.
 */
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';

/** The parent of each process, from /proc/<pid>/stat: "pid (comm) state ppid …"; comm may hold spaces and ')'. */
export function parentFromStat(stat: string): number | null {
  const close = stat.lastIndexOf(')');
  if (close < 0) return null;
  const fields = stat.slice(close + 2).split(' ');
  const ppid = Number(fields[1]);
  return Number.isInteger(ppid) ? ppid : null;
}

async function linuxParents(procRoot: string): Promise<Map<number, number>> {
  const parents = new Map<number, number>();
  const entries = await fs.readdir(procRoot);
  await Promise.all(
    entries
      .filter((name) => /^\d+$/.test(name))
      .map(async (name) => {
        try {
          const ppid = parentFromStat(await fs.readFile(path.join(procRoot, name, 'stat'), 'utf8'));
          if (ppid !== null) parents.set(Number(name), ppid);
        } catch {
          // It exited while we looked.
        }
      }),
  );
  return parents;
}

/* c8 ignore start -- macOS only: proven by the macOS job of the GitHub workflow */
function psParents(): Promise<Map<number, number>> {
  return new Promise((resolve, reject) => {
    execFile('ps', ['-A', '-o', 'pid=,ppid='], { timeout: 5000 }, (error, stdout) => {
      if (error) return reject(error);
      const parents = new Map<number, number>();
      for (const line of stdout.split('\n')) {
        const [pid, ppid] = line.trim().split(/\s+/).map(Number);
        if (Number.isInteger(pid) && Number.isInteger(ppid)) parents.set(pid, ppid);
      }
      resolve(parents);
    });
  });
}
/* c8 ignore stop */

/** `root` and every live descendant of it, root first, parents before children. */
export function descendants(root: number, parents: Map<number, number>): number[] {
  const children = new Map<number, number[]>();
  for (const [pid, ppid] of parents) {
    const list = children.get(ppid);
    if (list === undefined) children.set(ppid, [pid]);
    else list.push(pid);
  }
  const out = [root];
  for (let i = 0; i < out.length; i++) {
    for (const child of (children.get(out[i]) ?? []).sort((a, b) => a - b)) {
      if (!out.includes(child)) out.push(child);
    }
  }
  return out;
}

/** The process tree under `root`; only `root` when the table cannot be read. */
export async function processTree(root: number, procRoot = '/proc'): Promise<number[]> {
  try {
    /* c8 ignore next */
    const parents = process.platform === 'darwin' ? await psParents() : await linuxParents(procRoot);
    return descendants(root, parents);
  } catch {
    return [root];
  }
}

/** SIGKILL a process that may already be gone; true when the signal was sent. */
export function killQuietly(pid: number): boolean {
  try {
    process.kill(pid, 'SIGKILL');
    return true;
  } catch {
    return false;
  }
}
