/**
 * The one way iokit-snap reads a file the user named (a snapshot, an ioreg dump): only a
 * regular file, at most MAX_INPUT_BYTES, with Node's own code for a missing or forbidden
 * file. The file is opened with O_NONBLOCK and checked with fstat before any read, so a
 * fifo cannot block the open and /dev/zero is refused before a byte is read.
 */
import { constants } from 'node:fs';
import * as fs from 'node:fs/promises';
import { IokitSnapError, type IokitSnapErrorCode } from './errors';
import { MAX_INPUT_BYTES } from './input-limits';

const CHUNK_BYTES = 1024 * 1024;

function kindOf(stat: { isDirectory(): boolean; isFIFO(): boolean; isCharacterDevice(): boolean; isBlockDevice(): boolean; isSocket(): boolean }): string {
  if (stat.isDirectory()) return 'a directory';
  if (stat.isFIFO()) return 'a fifo (named pipe)';
  if (stat.isCharacterDevice()) return 'a character device';
  if (stat.isBlockDevice()) return 'a block device';
  /* c8 ignore next -- a socket cannot be opened with open(2); the rest is what fstat leaves */
  return stat.isSocket() ? 'a socket' : 'not a regular file';
}

function tooLarge(what: string, path: string): IokitSnapError {
  return new IokitSnapError(
    'EINVAL',
    `${what} ${path} is larger than ${MAX_INPUT_BYTES / 1024 / 1024} MB, more than any snapshot or ioreg dump; check that it is the file you meant`,
  );
}

/** Node's error for an unreadable path, as an IokitSnapError with the same code where the API has one. */
function openError(error: unknown, what: string, path: string): IokitSnapError {
  const code = (error as NodeJS.ErrnoException).code;
  const byCode: Record<string, [IokitSnapErrorCode, string]> = {
    ENOENT: ['ENOENT', 'no such file; check the path'],
    ENOTDIR: ['ENOENT', 'a part of the path is not a directory; check the path'],
    EACCES: ['EACCES', 'permission denied; run as a user that can read it, or copy it somewhere readable'],
    EPERM: ['EPERM', 'operation not permitted'],
    EIO: ['EIO', `${(error as Error).message}; the disk or file system failed`],
  };
  // Errors of fs always carry a code; the message says it when the API code differs.
  const [mapped, advice] = byCode[code as string] ?? ['EINVAL', (error as Error).message];
  return new IokitSnapError(mapped, `cannot read ${what} ${path}: ${advice}${mapped === code ? '' : ` (${code})`}`, {
    syscall: (error as NodeJS.ErrnoException).syscall,
    cause: error,
  });
}

/** Read a regular file as UTF-8 text; `what` names it in messages ("snapshot", "ioreg output"). */
export async function readInputFile(path: string, what: string): Promise<string> {
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (error) {
    throw openError(error, what, path);
  }
  return readOpened(handle, what, path)
    .catch((error: unknown) => {
      throw error instanceof IokitSnapError ? error : openError(error, what, path);
    })
    .finally(() => handle.close());
}

async function readOpened(handle: fs.FileHandle, what: string, path: string): Promise<string> {
  const stat = await handle.stat();
  if (!stat.isFile()) {
    throw new IokitSnapError('EINVAL', `${what} ${path} is ${kindOf(stat)}, not a regular file; pass a file${what === 'ioreg output' ? ', or - to read stdin' : ''}`);
  }
  if (stat.size > MAX_INPUT_BYTES) throw tooLarge(what, path);
  // Read to the end, not to stat.size: the file may still be growing, or be a /proc file
  // whose size says 0. Past the cap, stop.
  const chunks: Buffer[] = [];
  let total = 0;
  for (;;) {
    const buffer = Buffer.allocUnsafe(CHUNK_BYTES);
    const { bytesRead } = await handle.read(buffer, 0, CHUNK_BYTES, null);
    if (bytesRead === 0) break;
    total += bytesRead;
    if (total > MAX_INPUT_BYTES) throw tooLarge(what, path);
    chunks.push(bytesRead === CHUNK_BYTES ? buffer : buffer.subarray(0, bytesRead));
  }
  return Buffer.concat(chunks, total).toString('utf8');
}

/** Read a stream (stdin) as UTF-8 text, to its end or the same cap. */
export async function readInputStream(stream: NodeJS.ReadableStream, what: string): Promise<string> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of stream) {
    const buffer = Buffer.from(chunk as Buffer | string);
    total += buffer.length;
    if (total > MAX_INPUT_BYTES) throw tooLarge(what, 'from stdin');
    chunks.push(buffer);
  }
  return Buffer.concat(chunks, total).toString('utf8');
}
