/**
 * What could not be read, as notes on stderr: one note per kind of limit (not one per process
 * and field), worded for the command line (`--no-kernel-stacks`, not the API's option) and for
 * the user running it (no "or as root" to root: in a container even root may be refused).
 * The full reasons stay in the JSON's "limits".
 */
import type { Limitation } from '../types';
import { paint, type Style } from './format';

export interface NoteWording {
  /** The user is root (uid 0). */
  root: boolean;
  /** The command has --no-kernel-stacks. */
  kernelStacksFlag: boolean;
}

export function currentWording(kernelStacksFlag: boolean): NoteWording {
  /* c8 ignore next -- getuid exists on every platform iokit-snap runs on */
  return { root: process.getuid?.() === 0, kernelStacksFlag };
}

/** The per-thread /proc files whose denial means "may not look inside that process". */
const PROCESS_FIELDS = new Set(['blockedIn', 'wchan', 'kernelStack', 'contextSwitches', 'cpuNs', 'state', 'stack', 'userStack']);

function isProcessPermission(limit: Limitation): boolean {
  return limit.code === 'EPERM' && /^pid \d+$/.test(limit.subject) && PROCESS_FIELDS.has(limit.field);
}

const unique = <T>(values: T[]): T[] => [...new Set(values)];

/** The API's words for the CLI's, and nothing the current user cannot do. */
function cliHint(hint: string, wording: NoteWording): string {
  let text = hint.replace(/pass kernelStacks: false/g, wording.kernelStacksFlag ? 'pass --no-kernel-stacks' : 'leave kernel stacks out');
  if (wording.root) text = text.replace(/,? or as root( \/ with CAP_SYS_PTRACE)?( \(sudo\))?/g, '').replace(/Run iokit-snap as root \(sudo\) to get kernel stacks, or /, '');
  return text;
}

/** One note for every process-permission limit: which processes, which fields, what to do. */
function permissionNote(limits: Limitation[], wording: NoteWording): string {
  const subjects = unique(limits.map((l) => l.subject));
  const fields = unique(limits.map((l) => l.field));
  const stacks = fields.includes('kernelStack');
  const skip = stacks ? (wording.kernelStacksFlag ? '; --no-kernel-stacks skips the kernel stacks' : '') : '';
  const what = `${subjects.join(', ')}: ${fields.join(', ')} unavailable (EPERM): the kernel shows these only to a process that may ptrace the target${
    stacks ? ' (kernel stacks: CAP_SYS_ADMIN)' : ''
  }`;
  const todo = wording.root
    ? `even root is refused here, so a container or security policy withholds CAP_SYS_PTRACE${stacks ? ' and CAP_SYS_ADMIN' : ''}: run iokit-snap on the host, or grant them${skip}`
    : `run iokit-snap with sudo, or as the target's user with kernel.yama.ptrace_scope=0${skip}`;
  return `${what} — ${todo}`;
}

/** The reason with each subject's pid written as <pid>, so the same limit on two processes reads the same. */
function generalReason(limit: Limitation): string {
  const pid = /^pid (\d+)$/.exec(limit.subject)?.[1];
  return pid === undefined ? limit.reason : limit.reason.split(`/${pid}/`).join('/<pid>/');
}

/** What could not be read, one line per kind, for stderr. */
export function limitLines(limits: Limitation[], style: Style, wording: NoteWording = currentWording(false)): string {
  const note = (text: string): string => `${paint(style, 'yellow', 'note:')} ${text}\n`;
  const permission = limits.filter(isProcessPermission);
  const kinds = new Map<string, Limitation[]>();
  for (const limit of limits.filter((l) => !isProcessPermission(l))) {
    const key = [limit.field, limit.code, generalReason(limit), limit.hint ?? ''].join('\0');
    kinds.set(key, [...(kinds.get(key) ?? []), limit]);
  }
  let out = permission.length > 0 ? note(permissionNote(permission, wording)) : '';
  for (const group of kinds.values()) {
    const first = group[0];
    const reason = group.length === 1 ? first.reason : generalReason(first);
    const hint = first.hint ? cliHint(first.hint, wording) : '';
    out += note(`${unique(group.map((l) => l.subject)).join(', ')}: ${first.field} unavailable (${first.code}): ${reason}${hint ? ` — ${hint}` : ''}`);
  }
  return out;
}
