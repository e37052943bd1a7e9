/** The `iokit-snap` command: dispatch, help, version, and the mapping of errors to exit codes. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { toIokitSnapError } from '../errors';
import { UsageError } from './args';
import type { Command } from './command';
import { paint } from './format';
import { errStyle, EXIT, isClosedOutput, processIO, write, type CliIO } from './io';

/**
 * A command whose module is loaded when it runs or its help is shown, not before: `iokit-snap
 * --help` loads no command, and `iokit-snap threads PID` only the threads command (not the
 * importers, the analysis, prom-client…). `name` and `summary` are here so the overview needs
 * no module; test/cli-start.test.ts checks they are the module's own.
 */
function lazy(name: string, summary: string, load: () => Command): Command {
  let loaded: Command | undefined;
  const command = (): Command => (loaded ??= load());
  return {
    name,
    summary,
    get usage() {
      return command().usage;
    },
    run: (argv, io) => command().run(argv, io),
  };
}

/** Every command; the first is the default. Register a new command with one entry here. */
export const COMMANDS: Command[] = [
  lazy('accelerators', 'list the GPUs/accelerators and their state (the default command)', () =>
    (require('./commands/accelerators') as typeof import('./commands/accelerators')).acceleratorsCommand,
  ),
  lazy('threads', 'sample every thread of a process: state, CPU, blocked in, target (or show a saved snapshot\'s)', () =>
    (require('./commands/threads') as typeof import('./commands/threads')).threadsCommand,
  ),
  lazy('snapshot', 'take an iokit-snap/1 snapshot (accelerators + threads of --pid)', () =>
    (require('./commands/snapshot') as typeof import('./commands/snapshot')).snapshotCommand,
  ),
  lazy('diff', 'compare a healthy snapshot with a hung one: the verdict and the findings', () =>
    (require('./commands/diff') as typeof import('./commands/diff')).diffCommand,
  ),
  lazy('watch', 'watch processes live; report when they hang and when they recover', () =>
    (require('./commands/watch') as typeof import('./commands/watch')).watchCommand,
  ),
  lazy('exec', 'run a command; if it outlives --timeout, explain where it hangs', () =>
    (require('./commands/exec') as typeof import('./commands/exec')).execCommand,
  ),
  lazy('import', 'read ioreg output, or a sample/spindump/crash/lldb/hung_task report, and show it like a live run', () =>
    (require('./commands/import') as typeof import('./commands/import')).importCommand,
  ),
  lazy('explain', 'judge one report (sample, spindump, crash, lldb, hung_task) or snapshot on its own', () =>
    (require('./commands/explain') as typeof import('./commands/explain')).explainCommand,
  ),
  lazy('serve', 'a Prometheus exporter: /metrics for the accelerators and the watched processes', () =>
    (require('./commands/serve') as typeof import('./commands/serve')).serveCommand,
  ),
];

function version(): string {
  const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

function overview(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return `iokit-snap ${version()}: what the accelerators and the threads were doing when it hung.

Usage: iokit-snap [command] [options]

Commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`).join('\n')}

Run \`iokit-snap <command> --help\` for a command's options. Every command takes --json.
Exit codes: 0 ok, 1 error, 2 hung or suspect (diff, watch, exec), 64 usage error;
exec passes the command's own status through.
NO_COLOR disables colour.
`;
}

/** What is wrong and how the command is called: `--help` has the rest. */
function usageHint(command: Command): string {
  const usageLine = command.usage.split('\n')[0];
  return `${usageLine}\n(iokit-snap ${command.name === COMMANDS[0].name ? '' : `${command.name} `}--help for the options)\n`;
}

/**
 * The one place a closed output is handled. stdout's reader gone (`| head -1`): the command
 * stops quietly with status 0, as `yes | head -1` does. stdout failing otherwise (a full disk):
 * said on stderr, status 1. stderr failing: nothing left to tell, so the command carries on.
 */
function guardOutput(io: CliIO): { io: CliIO; failure: () => number | null } {
  const closed = new AbortController();
  let failure: number | null = null;
  const onStdoutError = (error: Error): void => {
    if (failure === null) {
      failure = isClosedOutput(error) ? EXIT.ok : EXIT.error;
      if (failure === EXIT.error) io.stderr.write(`iokit-snap: cannot write the output: ${error.message}\n`);
    }
    closed.abort();
  };
  const onStderrError = (): void => undefined;
  // Never removed: a stream's 'error' event can come after the command has returned.
  io.stdout.on('error', onStdoutError);
  io.stderr.on('error', onStderrError);
  // The fields copied as they are (a getter stays a getter: stdin is created only when read).
  const guarded = Object.defineProperties({}, Object.getOwnPropertyDescriptors(io)) as CliIO;
  guarded.outputClosed = closed.signal;
  return { io: guarded, failure: () => failure };
}

export async function main(argv: string[], io: CliIO = processIO()): Promise<number> {
  const guard = guardOutput(io);
  const code = await dispatch(argv, guard.io);
  return guard.failure() ?? code;
}

async function dispatch(argv: string[], io: CliIO): Promise<number> {
  const [first, ...rest] = argv;
  if (first === '--version' || first === '-V') {
    await write(io.stdout, version() + '\n');
    return EXIT.ok;
  }
  if (first === '--help' || first === '-h' || first === 'help') {
    const named = COMMANDS.find((c) => c.name === rest[0]);
    await write(io.stdout, named ? named.usage : overview());
    return EXIT.ok;
  }
  const named = first !== undefined && !first.startsWith('-') ? COMMANDS.find((c) => c.name === first) : undefined;
  if (first !== undefined && !first.startsWith('-') && !named) {
    await write(
      io.stderr,
      `iokit-snap: unknown command ${JSON.stringify(first)} (the commands: ${COMMANDS.map((c) => c.name).join(', ')})\n(iokit-snap --help for more)\n`,
    );
    return EXIT.usage;
  }
  const command = named ?? COMMANDS[0];
  const args = named ? rest : argv;
  // Only before `--`: what follows it is another program's (exec -- psql -h HOST).
  const end = args.indexOf('--');
  const own = end < 0 ? args : args.slice(0, end);
  if (own.includes('--help') || own.includes('-h')) {
    await write(io.stdout, command.usage);
    return EXIT.ok;
  }
  try {
    return await command.run(args, io);
  } catch (error) {
    const style = errStyle(io);
    if (error instanceof UsageError) {
      await write(io.stderr, `iokit-snap ${command.name}: ${error.message}\n${usageHint(command)}`);
      return EXIT.usage;
    }
    const e = toIokitSnapError(error);
    await write(io.stderr, `${paint(style, 'red', `iokit-snap ${command.name}: ${e.code}:`)} ${e.message}\n`);
    return EXIT.error;
  }
}
