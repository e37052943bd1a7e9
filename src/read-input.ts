/**
 * The one way iokit-snap reads a file the user named (a snapshot, an ioreg dump): only a
 * regular file, at most MAX_INPUT_BYTES, with Node's own code for a missing or forbidden
 * file. The file is opened with O_NONBLOCK and checked with fstat before any read, so a
 * fifo cannot block the open and /dev/zero is refused before a byte is read.
 */
import { constants } from 'node:fs';
import * as fs from 'node:fs/promises';
import { StringDecoder } from 'node:string_decoder';
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
  // whose size says 0. Past the cap, stop. Into one buffer of the stated size (and a chunk
  // more, to see the end): the text is then decoded from it, so a 250 MB file costs its
  // buffer and its string at the peak, not also a copy of every chunk.
  let buffer = Buffer.allocUnsafe(stat.size + CHUNK_BYTES);
  let total = 0;
  for (;;) {
    if (total === buffer.length) {
      // Grown since stat (or a /proc file): room for more, up to one byte past the cap.
      const larger = Buffer.allocUnsafe(Math.min(buffer.length * 2, MAX_INPUT_BYTES + 1));
      buffer.copy(larger, 0, 0, total);
      buffer = larger;
    }
    const { bytesRead } = await handle.read(buffer, total, Math.min(CHUNK_BYTES, buffer.length - total), null);
    if (bytesRead === 0) break;
    total += bytesRead;
    if (total > MAX_INPUT_BYTES) throw tooLarge(what, path);
  }
  return buffer.toString('utf8', 0, total);
}

/** Read a stream (stdin) as UTF-8 text, to its end or the same cap. */
export async function readInputStream(stream: NodeJS.ReadableStream, what: string): Promise<string> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of stream) {
    const buffer = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer); // a stream's Buffer is its own: no copy
    total += buffer.length;
    if (total > MAX_INPUT_BYTES) throw tooLarge(what, 'from stdin');
    chunks.push(buffer);
  }
  // Decoded chunk by chunk and joined (a decoder keeps a character split across chunks whole):
  // no concatenated copy of the bytes next to the text.
  const decoder = new StringDecoder('utf8');
  let text = '';
  for (let i = 0; i < chunks.length; i++) {
    text += decoder.write(chunks[i]);
    chunks[i] = EMPTY;
  }
  return text + decoder.end();
}

const EMPTY = Buffer.alloc(0);
