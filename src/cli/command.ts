import type { CliIO } from './io';

export interface Command {
  name: string;
  /** One line for `iokit-snap --help`. */
  summary: string;
  /** The full help text of the command. */
  usage: string;
  run(argv: string[], io: CliIO): Promise<number>;
}
