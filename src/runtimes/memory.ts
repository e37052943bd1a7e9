/**
 * readMemory(pid, ranges): a copy of parts of another process's memory, without
 * stopping it (Linux process_vm_readv, native/linux/memory.h). What language runtimes
 * keep in memory (Go's goroutines, src/runtimes/go.ts) is read through this.
 *
 * The read takes the target's mmap lock, which a hung process may hold for ever: it
 * runs on a probe thread of its own and is awaited with a deadline, so a stuck read
 * rejects with ETIMEDOUT (and costs that one thread) instead of blocking the caller.
 * Access is the ptrace access check (the same as for user stacks): EPERM says what to
 * change. macOS: ENOTSUP (task_for_pid is not granted to an unsigned tool).
 */
import { IokitSnapError } from '../errors';
import { binding, withDeadline, type RawMemoryRead } from '../native';
import { checkDuration, checkPid, readOptions } from '../options';
import { describeValue } from '../snapshot-schema';

/** All ranges of one call together, bytes (native/linux/memory.h kMaxReadBytes). */
export const MAX_READ_BYTES = 4 * 1024 * 1024;
/** Ranges of one call (native/linux/memory.h kMaxRanges). */
export const MAX_READ_RANGES = 16384;
const DEFAULT_TIMEOUT_MS = 2000;

export interface MemoryRange {
  /** Where in the target, a virtual address (a bigint above 2^53). */
  address: number | bigint;
  length: number;
}

export interface ReadMemoryOptions {
  /** Deadline for the whole read, ms (default 2000). */
  timeoutMs?: number;
}

const MAX_ADDRESS = 2n ** 64n - 1n;

function checkRange(who: string, range: unknown, index: number): { address: number | bigint; length: number } {
  if (range === null || typeof range !== 'object') throw new IokitSnapError('EINVAL', `${who}: ranges[${index}] must be { address, length }, got ${describeValue(range)}`);
  const { address, length } = range as Record<string, unknown>;
  const addressOk =
    (typeof address === 'number' && Number.isSafeInteger(address) && address >= 0) ||
    (typeof address === 'bigint' && address >= 0n && address <= MAX_ADDRESS);
  if (!addressOk) throw new IokitSnapError('EINVAL', `${who}: ranges[${index}].address must be a non-negative integer or bigint below 2^64, got ${describeValue(address)}`);
  if (typeof length !== 'number' || !Number.isSafeInteger(length) || length < 0 || length > MAX_READ_BYTES) {
    throw new IokitSnapError('EINVAL', `${who}: ranges[${index}].length must be an integer from 0 to ${MAX_READ_BYTES}, got ${describeValue(length)}`);
  }
  if (BigInt(address as number | bigint) + BigInt(length) - 1n > MAX_ADDRESS) {
    throw new IokitSnapError('EINVAL', `${who}: ranges[${index}] runs past the end of the address space`);
  }
  return { address: address as number | bigint, length };
}

/**
 * The read itself, for callers that have checked their ranges (pid valid, at most
 * MAX_READ_RANGES (address, length) pairs and MAX_READ_BYTES in all): every range's bytes
 * end to end, and per range 1 when read whole. Reading goroutines packs 10,000 ranges
 * at a time; as objects they cost more than the read.
 */
export async function readPacked(pid: number, pairs: BigUint64Array, timeoutMs: number): Promise<RawMemoryRead> {
  const native = binding();
  if (native.platform !== 'linux') {
    throw new IokitSnapError('ENOTSUP', `readMemory(): reading another process's memory is implemented on Linux only; on ${native.platform} Go goroutines cannot be read`);
  }
  return withDeadline(() => native.readMemory(pid, pairs), timeoutMs, `Reading the memory of pid ${pid}`);
}

/**
 * Reads `ranges` of process `pid`: per range a Buffer of its bytes, or null where that
 * range is not mapped or not readable (each range is read whole or not at all). At most
 * MAX_READ_BYTES and MAX_READ_RANGES per call. Rejects with ESRCH (gone), EPERM,
 * ETIMEDOUT (the read did not return: the target's mmap lock is held), ENOTSUP.
 */
export async function readMemory(pid: number, ranges: readonly MemoryRange[], given: ReadMemoryOptions = {}): Promise<(Buffer | null)[]> {
  const who = 'readMemory()';
  checkPid(who, pid);
  const options = readOptions<ReadMemoryOptions>(who, given, ['timeoutMs']);
  const timeoutMs = checkDuration(who, 'timeoutMs', options.timeoutMs) ?? DEFAULT_TIMEOUT_MS;
  if (!Array.isArray(ranges)) throw new IokitSnapError('EINVAL', `${who}: ranges must be an array of { address, length }, got ${describeValue(ranges)}`);
  if (ranges.length > MAX_READ_RANGES) {
    throw new IokitSnapError('EINVAL', `${who}: at most ${MAX_READ_RANGES} ranges per call, got ${ranges.length}; split the read`);
  }
  const checked = ranges.map((range, i) => checkRange(who, range, i));
  let total = 0;
  for (const range of checked) total += range.length;
  if (total > MAX_READ_BYTES) throw new IokitSnapError('EINVAL', `${who}: at most ${MAX_READ_BYTES} bytes per call, got ${total}; split the read`);
  if (checked.length === 0) return [];
  const pairs = new BigUint64Array(checked.length * 2);
  checked.forEach((range, i) => {
    pairs[2 * i] = BigInt(range.address);
    pairs[2 * i + 1] = BigInt(range.length);
  });
  const raw = await readPacked(pid, pairs, timeoutMs);
  const out: (Buffer | null)[] = new Array(checked.length);
  let offset = 0;
  for (let i = 0; i < checked.length; i++) {
    const end = offset + checked[i].length;
    out[i] = raw.read[i] === 1 ? raw.bytes.subarray(offset, end) : null;
    offset = end;
  }
  return out;
}
