/** What a command needs from the outside world; tests pass their own. */
import { colorEnabled, type Style } from './format';

export interface CliIO {
  stdout: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
  env: NodeJS.ProcessEnv;
  /** Where SIGINT, SIGTERM and SIGHUP arrive (default: this process); tests pass an EventEmitter. */
  signals?: NodeJS.EventEmitter;
  /**
   * Aborted when stdout can no longer be written (the reader went away: `| head -1`). Set by
   * main(); a command that runs until stopped (watch) stops on it, the others just finish.
   */
  outputClosed?: AbortSignal;
}

/** This process's streams; stdin is created only when a command reads it (creating it loads Node's stream code for its kind). */
export function processIO(): CliIO {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    get stdin() {
      return process.stdin;
    },
    env: process.env,
  };
}

export function outStyle(io: CliIO): Style {
  return { color: colorEnabled(io.stdout, io.env) };
}

export function errStyle(io: CliIO): Style {
  return { color: colorEnabled(io.stderr, io.env) };
}

type Writable = NodeJS.WritableStream & { destroyed?: boolean; writableEnded?: boolean };

/**
 * Write and wait until it is flushed, so exit codes never cut output short. A stream that
 * failed or closed resolves at once: what its failure means is decided in one place, main().
 */
export function write(stream: NodeJS.WritableStream, text: string): Promise<void> {
  const target = stream as Writable;
  if (target.destroyed === true || target.writableEnded === true) return Promise.resolve();
  return new Promise((resolve) => {
    // The callback runs once the chunk is handed on, or with the error when the stream fails.
    target.write(text, () => resolve());
  });
}

/**
 * Write a document in pieces (documentChunks, explainChunks), each flushed before the next
 * is made; stops making them once stdout is closed (`| head` needs no more of a 1 GB JSON).
 */
export async function writeChunks(io: CliIO, chunks: Iterable<string>): Promise<void> {
  for (const chunk of chunks) {
    if (io.outputClosed?.aborted === true || (io.stdout as Writable).destroyed === true) return;
    await write(io.stdout, chunk);
  }
}

/** The reader of a pipe went away (EPIPE), or the stream was already torn down. */
export function isClosedOutput(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  return code === 'EPIPE' || code === 'ERR_STREAM_DESTROYED' || code === 'ERR_STREAM_WRITE_AFTER_END';
}

/** Exit codes, documented in the README. */
export const EXIT = {
  ok: 0,
  error: 1,
  /** diff/exec: the verdict is hung or suspect. */
  hung: 2,
  /** EX_USAGE: the command was called wrongly. */
  usage: 64,
} as const;
