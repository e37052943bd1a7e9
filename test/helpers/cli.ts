/** Run the CLI in-process with captured streams (and, for the real binary, as a child). */
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { main } from '../../src/cli/main';

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

export interface CliStreams {
  /** Everything written to stdout so far (for polling while the command runs). */
  stdout(): string;
  stderr(): string;
}

/**
 * Run the CLI in-process. `signals` stands in for the process's signal events, so a test can
 * send the command SIGTERM without signalling the test runner; `onStart` sees the output live.
 */
export function runCli(
  argv: string[],
  env: NodeJS.ProcessEnv = {},
  tty = false,
  signals?: NodeJS.EventEmitter,
  onStart?: (streams: CliStreams) => void,
  /** The terminal's width, as a TTY's stdout.columns says it. */
  columns?: number,
): Promise<CliRun> {
  return inProcess(argv, { env, tty, signals, onStart, columns });
}

/** Run the CLI in-process with `input` as its stdin, in an empty environment, without a TTY. */
export function runCliWithStdin(argv: string[], input = ''): Promise<CliRun> {
  return inProcess(argv, { env: {}, tty: false, input });
}

async function inProcess(
  argv: string[],
  options: { env: NodeJS.ProcessEnv; tty: boolean; input?: string; signals?: NodeJS.EventEmitter; onStart?: (streams: CliStreams) => void; columns?: number },
): Promise<CliRun> {
  const stdout = Object.assign(new PassThrough(), { isTTY: options.tty }, options.columns !== undefined ? { columns: options.columns } : {});
  const stderr = Object.assign(new PassThrough(), { isTTY: options.tty });
  const stdin = Object.assign(new PassThrough(), { isTTY: false });
  let out = '';
  let err = '';
  stdout.on('data', (chunk) => (out += chunk));
  stderr.on('data', (chunk) => (err += chunk));
  // Without input, stdin stays open, as a terminal's does.
  if (options.input !== undefined) stdin.end(options.input);
  options.onStart?.({ stdout: () => out, stderr: () => err });
  const signals = options.signals;
  const code = await main(argv, { stdout, stderr, stdin, env: { ...options.env }, ...(signals !== undefined ? { signals } : {}) });
  return { code, stdout: out, stderr: err };
}

export const BIN = path.join(__dirname, '..', '..', 'bin', 'iokit-snap.js');

/** The real command (needs `npm run build`), as a user runs it. */
export function spawnCli(argv: string[], options: { env?: NodeJS.ProcessEnv; input?: string; cwd?: string } = {}): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...argv], {
      cwd: options.cwd,
      env: { ...process.env, ...options.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code: code ?? 128 + (signal ? 9 : 0), stdout, stderr }));
    child.stdin.end(options.input ?? '');
  });
}

/**
 * The real command with a stdout whose reader has already gone, so its first write fails with
 * EPIPE whatever its size (a pipe to `head -1` only fails once head has exited; this always
 * does): bash opens a pipe to a reader that closes its end at once and says so, then runs us.
 */
const CLOSED_STDOUT = `
mark=$(mktemp)
exec 3> >(exec 0<&-; echo closed > "$mark"; exec sleep 60)
reader=$!
while [ ! -s "$mark" ]; do sleep 0.01; done
rm -f "$mark"
"$@" >&3
status=$?
kill $reader
exit $status
`;

export function spawnCliClosedStdout(argv: string[], options: { env?: NodeJS.ProcessEnv } = {}): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', CLOSED_STDOUT, 'closed-stdout', process.execPath, BIN, ...argv], {
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout: '', stderr }));
  });
}
