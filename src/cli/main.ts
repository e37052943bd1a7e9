/** The `iokit-snap` command: dispatch, help, version, and the mapping of errors to exit codes. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { toIokitSnapError } from '../errors';
import { UsageError } from './args';
import type { Command } from './command';
import { acceleratorsCommand } from './commands/accelerators';
import { diffCommand } from './commands/diff';
import { execCommand } from './commands/exec';
import { explainCommand } from './commands/explain';
import { importCommand } from './commands/import';
import { snapshotCommand } from './commands/snapshot';
import { serveCommand } from './commands/serve';
import { threadsCommand } from './commands/threads';
import { watchCommand } from './commands/watch';
import { paint } from './format';
import { errStyle, EXIT, processIO, write, type CliIO } from './io';

/** Every command; the first is the default. Register a new command with one entry here. */
export const COMMANDS: Command[] = [
  acceleratorsCommand,
  threadsCommand,
  snapshotCommand,
  diffCommand,
  watchCommand,
  execCommand,
  importCommand,
  explainCommand,
  serveCommand,
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

export async function main(argv: string[], io: CliIO = processIO()): Promise<number> {
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
    await write(io.stderr, `iokit-snap: unknown command ${JSON.stringify(first)}\n\n${overview()}`);
    return EXIT.usage;
  }
  const command = named ?? COMMANDS[0];
  const args = named ? rest : argv;
  if (args.includes('--help') || args.includes('-h')) {
    await write(io.stdout, command.usage);
    return EXIT.ok;
  }
  try {
    return await command.run(args, io);
  } catch (error) {
    const style = errStyle(io);
    if (error instanceof UsageError) {
      await write(io.stderr, `iokit-snap ${command.name}: ${error.message}\n\n${command.usage}`);
      return EXIT.usage;
    }
    const e = toIokitSnapError(error);
    await write(io.stderr, `${paint(style, 'red', `iokit-snap ${command.name}: ${e.code}:`)} ${e.message}\n`);
    return EXIT.error;
  }
}
