/**
 * Where `iokit-snap exec` keeps its evidence: one directory per run, created without ever
 * looping (one mkdir per missing level, never Node's recursive mkdir, which spins for ever
 * under /proc), never on the kernel's pseudo file systems, never through a symbolic link at
 * --save DIR, and files that are never written through a link someone else planted (see
 * write-file.ts). The three files of a save belong together: all are written before any takes
 * its name, and none is written beside an older run's, so a full disk or a folder from an
 * earlier run never leaves a new baseline.json next to an old hung.json. A save that fails is
 * a warning: the caller prints the report and acts on it all the same.
 */
import { constants, promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Report } from '../analyze/types';
import { documentChunks, validateSnapshot } from '../snapshot-file';
import type { Snapshot } from '../types';
import { outputError, prepareFile, type PreparedFile } from '../write-file';

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

/** The files of one save, in the order they are written and placed. */
export const SAVED_FILES = ['baseline.json', 'hung.json', 'report.json'] as const;

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

/**
 * Create dir and any missing parents, one level at a time, refusing kernel file systems and
 * a symbolic link at dir itself (a link planted in a shared directory would send the files
 * wherever it points; the parents are the user's own path and may be links, as /tmp is on macOS).
 */
export async function makeDirectory(dir: string): Promise<void> {
  const wanted = path.resolve(dir);
  const missing: string[] = [];
  let existing = wanted;
  for (;;) {
    try {
      const stat = existing === wanted ? await fs.lstat(existing) : await fs.stat(existing);
      if (stat.isSymbolicLink()) {
        const to = await fs.readlink(existing);
        throw failure('ELOOP', `${existing} is a symbolic link (to ${to}), and --save does not follow one: give the directory itself`);
      }
      if (!stat.isDirectory()) throw failure('ENOTDIR', `${existing} is not a directory`);
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

/**
 * The save directory, held open: on Linux its files are reached through /proc/self/fd/N, the
 * directory that was checked, so swapping a link in at its path afterwards changes nothing.
 */
class HeldDirectory {
  private constructor(
    readonly shown: string,
    private readonly handle: fs.FileHandle,
  ) {}

  static async open(dir: string): Promise<HeldDirectory> {
    try {
      return new HeldDirectory(dir, await fs.open(dir, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW));
      /* c8 ignore start -- a link or file swapped in between the check and the open (a race no test can win on purpose) */
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ELOOP' || code === 'ENOTDIR') throw failure('ELOOP', `${dir} was replaced by a symbolic link or a file while it was being prepared: not saved there`);
      throw error;
    }
    /* c8 ignore stop */
  }

  /** The path through which to reach a file in the directory. */
  reach(name: string): string {
    /* c8 ignore next -- macOS has no /proc: the checked path itself */
    return process.platform === 'linux' ? path.join('/proc/self/fd', String(this.handle.fd), name) : path.join(this.shown, name);
  }

  close(): Promise<void> {
    return this.handle.close();
  }
}

export interface SaveOutcome {
  /** The directory the files are in; null when none of them was saved. */
  dir: string | null;
  /** The files this save placed in dir: all three, none, or (a failure part way) the first ones. */
  files: string[];
  /** What went wrong, for a warning; null when all three files were written. */
  error: string | null;
}

/** The save directory of one exec run and the files iokit-snap wrote there. */
export class RunSaver {
  private dir: HeldDirectory | null = null;
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

  private async directory(): Promise<HeldDirectory> {
    if (this.dir !== null) return this.dir;
    let dir: string;
    if (this.requested !== undefined) {
      await makeDirectory(this.requested);
      dir = this.requested;
    } else {
      const tmp = os.tmpdir();
      try {
        dir = await fs.mkdtemp(path.join(tmp, `iokit-snap-exec-${this.pid}-`));
      } catch (error) {
        const e = error as NodeJS.ErrnoException;
        /* c8 ignore next -- mkdtemp's errors always carry a code */
        throw failure(e.code ?? 'EIO', `cannot create a directory in ${tmp} (${e.message}): set TMPDIR to a writable directory, or pass --save DIR`);
      }
    }
    this.dir = await HeldDirectory.open(dir);
    return this.dir;
  }

  /** The files of a run that is not this one: a new save beside them would make a mismatched set. */
  private async others(dir: HeldDirectory): Promise<string[]> {
    if (this.force) return [];
    const present = await Promise.all(
      SAVED_FILES.map((name) =>
        this.written.has(name)
          ? false
          : fs.lstat(dir.reach(name)).then(
              () => true,
              () => false,
            ),
      ),
    );
    return SAVED_FILES.filter((_, i) => present[i]);
  }

  /** Save the pair and the report: all three or none (a failure part way is said); never throws. */
  async save(baseline: Snapshot, hung: Snapshot, report: Report): Promise<SaveOutcome> {
    const placed: string[] = [];
    const prepared: PreparedFile[] = [];
    let dir: HeldDirectory | null = null;
    try {
      dir = await this.directory();
      const others = await this.others(dir);
      if (others.length > 0) {
        throw failure(
          'EEXIST',
          `${path.join(dir.shown, others[0])} already exists${others.length > 1 ? ` (and ${others.slice(1).join(', ')})` : ''}, from another run: pass --force to replace ${
            others.length > 1 ? 'them' : 'it'
          }, or another --save DIR`,
        );
      }
      // In chunks: a document too large for one string is written too.
      const texts = [documentChunks(validateSnapshot(baseline)), documentChunks(validateSnapshot(hung)), documentChunks(report)];
      for (const [i, name] of SAVED_FILES.entries()) {
        try {
          prepared.push(await prepareFile(dir.reach(name), texts[i]));
        } catch (error) {
          throw outputError(error, 'file', path.join(dir.shown, name));
        }
      }
      for (const [i, name] of SAVED_FILES.entries()) {
        try {
          await prepared[i].place({ replace: this.force || this.written.has(name) });
        } catch (error) {
          /* c8 ignore next 2 -- a file put there since the check above, by someone else: a race no test can win on purpose */
          const e = error as NodeJS.ErrnoException;
          if (e.code === 'EEXIST') throw failure('EEXIST', `${path.join(dir.shown, name)} already exists: pass --force to replace it, or another --save DIR`);
          throw outputError(error, 'file', path.join(dir.shown, name));
        }
        this.written.add(name);
        placed.push(name);
      }
      return { dir: dir.shown, files: placed, error: null };
    } catch (error) {
      await Promise.all(prepared.map((file) => file.discard()));
      // Every error here has a code: ours (failure()), Node's, or an IokitSnapError's.
      const e = error as Error & { code: string };
      return { dir: placed.length > 0 ? dir!.shown : null, files: placed, error: e.message.startsWith(`${e.code}:`) ? e.message : `${e.code}: ${e.message}` };
    }
  }

  /** Let the directory go (the run is over). */
  async close(): Promise<void> {
    await this.dir?.close();
    this.dir = null;
  }
}
