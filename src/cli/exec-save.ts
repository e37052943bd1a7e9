/**
 * Where `iokit-snap exec` keeps its evidence: one directory per run, created without ever
 * looping (one mkdir per missing level, never Node's recursive mkdir, which spins for ever
 * under /proc), never on the kernel's pseudo file systems, and files that are never written
 * through a link someone else planted (see write-file.ts). A save that fails is a warning:
 * the caller prints the report and acts on it all the same.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Report } from '../analyze/types';
import { writeDocument, writeSnapshot } from '../snapshot-file';
import type { Snapshot } from '../types';

/** statfs(2) magic numbers of Linux file systems that hold kernel state, not files. */
const PSEUDO_FILE_SYSTEMS = new Map<number, string>([
  [0x9fa0, 'proc'],
  [0x62656572, 'sysfs'],
  [0x27e0eb, 'cgroup'],
  [0x63677270, 'cgroup2'],
  [0x64626720, 'debugfs'],
  [0x74726163, 'tracefs'],
  [0x73636673, 'securityfs'],
]);

function failure(code: string, message: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: ${message}`), { code });
}

async function refusePseudoFileSystem(existing: string, wanted: string): Promise<void> {
  const type = (await fs.statfs(existing)).type;
  const name = PSEUDO_FILE_SYSTEMS.get(type);
  if (name !== undefined) {
    throw failure('EINVAL', `${wanted} is on ${existing}, the kernel's ${name} file system, which holds no files: pick another directory`);
  }
}

/** Create dir and any missing parents, one level at a time, refusing kernel file systems. */
export async function makeDirectory(dir: string): Promise<void> {
  const wanted = path.resolve(dir);
  const missing: string[] = [];
  let existing = wanted;
  for (;;) {
    try {
      if (!(await fs.stat(existing)).isDirectory()) throw failure('ENOTDIR', `${existing} is not a directory`);
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      missing.unshift(existing);
      // The root always exists, so this walk ends.
      existing = path.dirname(existing);
    }
  }
  await refusePseudoFileSystem(existing, wanted);
  // One answer per level: an error ends it (mkdir under /proc fails with ENOENT, it does not loop).
  for (const level of missing) await fs.mkdir(level, { mode: 0o700 });
}

export interface SaveOutcome {
  /** The directory the files are in, or null when saving failed. */
  dir: string | null;
  /** What went wrong, for a warning; null when all three files were written. */
  error: string | null;
}

/** The save directory of one exec run and the files iokit-snap wrote there. */
export class RunSaver {
  private dir: string | null = null;
  /** Files this run wrote, which a later examination of the same run may replace. */
  private readonly written = new Set<string>();

  /**
   * @param requested --save DIR, or undefined for a new directory under the temporary directory
   * @param force replace baseline.json, hung.json or report.json already in DIR
   */
  constructor(
    private readonly requested: string | undefined,
    private readonly force: boolean,
    private readonly pid: number,
  ) {}

  private async directory(): Promise<string> {
    if (this.dir !== null) return this.dir;
    if (this.requested !== undefined) {
      await makeDirectory(this.requested);
      this.dir = this.requested;
    } else {
      const tmp = os.tmpdir();
      try {
        this.dir = await fs.mkdtemp(path.join(tmp, `iokit-snap-exec-${this.pid}-`));
      } catch (error) {
        const e = error as NodeJS.ErrnoException;
        /* c8 ignore next -- mkdtemp's errors always carry a code */
        throw failure(e.code ?? 'EIO', `cannot create a directory in ${tmp} (${e.message}): set TMPDIR to a writable directory, or pass --save DIR`);
      }
    }
    return this.dir;
  }

  private async file(name: string, write: (file: string, replace: boolean) => Promise<void>): Promise<void> {
    const file = path.join(await this.directory(), name);
    try {
      await write(file, this.force || this.written.has(name));
    } catch (error) {
      const e = (error as { cause?: NodeJS.ErrnoException }).cause ?? (error as NodeJS.ErrnoException);
      if (e.code === 'EEXIST') throw failure('EEXIST', `${file} already exists: pass --force to replace it, or another --save DIR`);
      throw error;
    }
    this.written.add(name);
  }

  /** Save the pair and the report; never throws. */
  async save(baseline: Snapshot, hung: Snapshot, report: Report): Promise<SaveOutcome> {
    try {
      await this.file('baseline.json', (file, replace) => writeSnapshot(file, baseline, { replace }));
      await this.file('hung.json', (file, replace) => writeSnapshot(file, hung, { replace }));
      await this.file('report.json', (file, replace) => writeDocument(file, report, { replace })); // in chunks: no string-length limit
      return { dir: this.dir, error: null };
    } catch (error) {
      const e = error as Error & { code?: string; cause?: { code?: string } };
      /* c8 ignore next 2 -- every error here has a code (Node's, ours, or writeSnapshot's cause), and says it */
      const code = e.cause?.code ?? e.code ?? 'EIO';
      return { dir: null, error: e.message.includes(code) ? e.message : `${code}: ${e.message}` };
    }
  }
}
