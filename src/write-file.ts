/**
 * Output files written whole and never through a link someone else planted: the text goes to a
 * temporary file created exclusively beside the target (O_CREAT|O_EXCL|O_NOFOLLOW, an
 * unpredictable name, mode 0600), which then takes the target's name by rename(2) — that
 * replaces a link rather than writing through it — or, where nothing may be replaced, by
 * link(2), which refuses any existing name, a dangling link included, with no window between
 * a check and the write.
 */
import { randomBytes } from 'node:crypto';
import { constants, promises as fs } from 'node:fs';
import * as path from 'node:path';

export interface WriteFileOptions {
  /** Replace a file already at the target (default true). false: fail with EEXIST instead. */
  replace?: boolean;
}

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

/** Write text (one string, or chunks of a document too large for one) to target as described above; the error, if any, is Node's (code, path). */
export async function writeFileSafely(target: string, text: string | Iterable<string>, options: WriteFileOptions = {}): Promise<void> {
  const temporary = path.join(path.dirname(target), `.${path.basename(target)}.${randomBytes(9).toString('hex')}.tmp`);
  const handle = await fs.open(temporary, CREATE_EXCLUSIVE, 0o600);
  let placed = false;
  try {
    try {
      await fs.writeFile(handle, text);
      // The mode a plain write would have given it, now that the content is whole.
      await handle.chmod(0o666 & ~process.umask());
    } finally {
      await handle.close();
    }
    if (options.replace === false) await placeNew(temporary, target);
    else await fs.rename(temporary, target);
    placed = true;
  } finally {
    if (!placed) await fs.rm(temporary, { force: true });
  }
}
