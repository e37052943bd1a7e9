/**
 * The one error type of iokit-snap: a machine-readable `code` and a message that says what to do.
 * ENOENT and EACCES come only from reading a file the caller named (readSnapshot, import),
 * as Node reports them; ENOENT, EEXIST, ENOSPC and EROFS from writing one (writeSnapshot).
 */
export type IokitSnapErrorCode =
  | 'ESRCH'
  | 'EPERM'
  | 'EACCES'
  | 'ENOENT'
  | 'ENOTSUP'
  | 'EINVAL'
  | 'ETIMEDOUT'
  | 'EIO'
  | 'EAGAIN'
  | 'EEXIST'
  | 'ENOSPC'
  | 'EROFS';

/** Every error iokit-snap throws: `code` (the README's table) and a message that says what to do. */
export class IokitSnapError extends Error {
  override name = 'IokitSnapError';
  readonly code: IokitSnapErrorCode;
  /** The system call that failed, when one did. */
  readonly syscall?: string;
  /** kern_return_t (macOS) or errno (Linux) behind the failure, when known. */
  readonly kern?: number;

  constructor(code: IokitSnapErrorCode, message: string, details: { syscall?: string; kern?: number; cause?: unknown } = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.code = code;
    if (details.syscall !== undefined) this.syscall = details.syscall;
    if (details.kern !== undefined) this.kern = details.kern;
  }
}

const KNOWN_CODES = new Set<string>(['ESRCH', 'EPERM', 'ENOTSUP', 'EINVAL', 'ETIMEDOUT', 'EIO', 'EAGAIN', 'ENOSPC', 'EROFS']);

/** Wrap anything thrown by the binding (or by Node) as an IokitSnapError, keeping what it said. */
export function toIokitSnapError(error: unknown): IokitSnapError {
  if (error instanceof IokitSnapError) return error;
  const e = error as { code?: unknown; message?: unknown; syscall?: unknown; kern?: unknown };
  const rawCode = typeof e?.code === 'string' ? e.code : 'EIO';
  const code = (KNOWN_CODES.has(rawCode) ? rawCode : rawCode === 'EACCES' ? 'EPERM' : 'EIO') as IokitSnapErrorCode;
  const message = typeof e?.message === 'string' ? e.message : String(error);
  return new IokitSnapError(code, message, {
    syscall: typeof e?.syscall === 'string' ? e.syscall : undefined,
    kern: typeof e?.kern === 'number' ? e.kern : undefined,
    cause: error,
  });
}
