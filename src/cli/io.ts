/** What a command needs from the outside world; tests pass their own. */
import { colorEnabled, type Style } from './format';

export interface CliIO {
  stdout: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
  env: NodeJS.ProcessEnv;
  /** Where SIGINT, SIGTERM and SIGHUP arrive (default: this process); tests pass an EventEmitter. */
  signals?: NodeJS.EventEmitter;
}

export function processIO(): CliIO {
  return { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, env: process.env };
}

export function outStyle(io: CliIO): Style {
  return { color: colorEnabled(io.stdout, io.env) };
}

export function errStyle(io: CliIO): Style {
  return { color: colorEnabled(io.stderr, io.env) };
}

/** Write and wait until it is flushed, so exit codes never cut output short. */
export function write(stream: NodeJS.WritableStream, text: string): Promise<void> {
  return new Promise((resolve) => {
    if (stream.write(text)) resolve();
    else stream.once('drain', resolve);
  });
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
