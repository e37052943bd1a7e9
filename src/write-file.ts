/**
 * Output files written whole, private to the user, and never through a link someone else
 * planted: the text goes to a temporary file created exclusively beside the target
 * (O_CREAT|O_EXCL|O_NOFOLLOW, an unpredictable name, mode 0600), which then takes the
 * target's name by rename(2) — that replaces a link rather than writing through it — or,
 * where nothing may be replaced, by link(2), which refuses any existing name, a dangling
 * link included, with no window between a check and the write.
 *
 * Mode 0600, and it stays so: a snapshot holds kernel stacks, the target's address-space
 * layout and its threads' names, which are not for every user of the machine.
 *
 * Writing and placing are two steps (prepareFile, then place()), so that a caller writing
 * several files that belong together (exec's baseline.json, hung.json, report.json) can
 * write them all before any takes its name: a full disk then leaves none placed, not a new
 * file beside an old one.
 */
import { randomBytes } from 'node:crypto';
import { constants, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { IokitSnapError, type IokitSnapErrorCode } from './errors';

export interface WriteFileOptions {
  /** Replace a file already at the target (default true). false: fail with EEXIST instead. */
  replace?: boolean;
}

/** What is written: the whole text, or its pieces in order (a large document need never be one string). */
export type FileContent = string | Iterable<string> | AsyncIterable<string>;

/** The mode of every output file. */
export const OUTPUT_MODE = 0o600;

const CREATE_EXCLUSIVE = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

/** Give the finished temporary file the target's name without replacing anything there. */
async function placeNew(temporary: string, target: string): Promise<void> {
  try {
    await fs.link(temporary, target);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') throw error;
    /* c8 ignore start -- file systems without hard links (FAT, some FUSE): check, then rename, the best they allow; none here to test on */
    const existing = await fs.lstat(target).then(
      () => true,
      () => false,
    );
    if (existing) throw Object.assign(new Error(`EEXIST: file already exists, link '${temporary}' -> '${target}'`), { code: 'EEXIST' });
    await fs.rename(temporary, target);
    return;
  }
  /* c8 ignore stop */
  await fs.unlink(temporary);
}

/** A file written whole beside its target, not yet under the target's name. */
export interface PreparedFile {
  readonly target: string;
  /** Take the target's name (see WriteFileOptions.replace); the temporary file is gone either way. */
  place(options?: WriteFileOptions): Promise<void>;
  /** Remove the temporary file without placing it. Safe to call twice, and after place(). */
  discard(): Promise<void>;
}

/** Write content to a new temporary file beside target; the error, if any, is Node's (code, path). */
export async function prepareFile(target: string, content: FileContent): Promise<PreparedFile> {
  const temporary = path.join(path.dirname(target), `.${path.basename(target)}.${randomBytes(9).toString('hex')}.tmp`);
  const handle = await fs.open(temporary, CREATE_EXCLUSIVE, OUTPUT_MODE);
  let pending = true;
  const discard = async (): Promise<void> => {
    if (pending) await fs.rm(temporary, { force: true });
    pending = false;
  };
  try {
    try {
      if (typeof content === 'string') await handle.writeFile(content);
      else for await (const piece of content) await handle.writeFile(piece);
      // open(2) applied the umask: 0600 whatever it is.
      await handle.chmod(OUTPUT_MODE);
    } finally {
      await handle.close();
    }
  } catch (error) {
    await discard();
    throw error;
  }
  return {
    target,
    async place(options: WriteFileOptions = {}): Promise<void> {
      try {
        if (options.replace === false) await placeNew(temporary, target);
        else await fs.rename(temporary, target);
        pending = false;
      } finally {
        await discard();
      }
    },
    discard,
  };
}

/** Write content to target as described above; the error, if any, is Node's (code, path). */
export async function writeFileSafely(target: string, content: FileContent, options: WriteFileOptions = {}): Promise<void> {
  await (await prepareFile(target, content)).place(options);
}

/**
 * A failed write of an output file as an IokitSnapError about the path the user gave (never
 * the temporary file beside it), with its own code for each thing the user can act on.
 * `what` names the file: "snapshot", "report".
 */
export function outputError(error: unknown, what: string, target: string): IokitSnapError {
  if (error instanceof IokitSnapError) return error;
  const code = (error as NodeJS.ErrnoException).code ?? '';
  const dir = path.dirname(target);
  const byCode: Record<string, [IokitSnapErrorCode, string]> = {
    ENOENT: ['ENOENT', `no such directory ${dir}: create it first, or check the path`],
    ENOTDIR: ['ENOENT', `a part of ${dir} is not a directory: check the path`],
    EACCES: ['EPERM', `permission denied in ${dir}: write somewhere you may, or run as a user that may write there`],
    EPERM: ['EPERM', `operation not permitted in ${dir}: write somewhere you may`],
    ENOSPC: ['ENOSPC', `no space left on the file system that holds ${dir}: free some, or write elsewhere`],
    EDQUOT: ['ENOSPC', `your disk quota on the file system that holds ${dir} is used up: free some, or write elsewhere`],
    EROFS: ['EROFS', `${dir} is on a read-only file system: write elsewhere`],
    EEXIST: ['EEXIST', `${target} already exists`],
    EISDIR: ['EINVAL', `${target} is a directory: name a file in it`],
    ENAMETOOLONG: ['EINVAL', `the name is too long for the file system`],
    ELOOP: ['EINVAL', `too many symbolic links in ${dir}`],
  };
  const [mapped, advice] = byCode[code] ?? ['EIO', (error as Error).message];
  return new IokitSnapError(mapped, `cannot write ${what} ${target}: ${advice}${code !== '' && code !== mapped ? ` (${code})` : ''}`, {
    syscall: (error as NodeJS.ErrnoException).syscall,
    cause: error,
  });
}
