/**
 * Reads `ioreg` text: the plain tree, `-l`, `-r -d 1 -c CLASS`, `-i`, and a bare
 * property block pasted without its node line. The line grammar (Apple's ioreg.c):
 *
 *   node      <bars>+-o name[@location]  <class C[, id 0x…][, [!]registered, [!]matched,
 *             [in]active, busy N[ (T ms)]], retain R>
 *             (`-i`: C is the chain "IORegistryEntry:IOService:…:C")
 *   block     <bars>{ … one `<bars>  "key" = value` line per property … <bars>}
 *
 * `<bars>` is two columns per tree level ("| " or "  "), so the column of `+-o`
 * gives the nesting. Also read: the ioreg-archive form `name class: A:B:C`
 * (its script replaced ` <class ` by `class: ` and cut the rest of the header),
 * property lines outside a block (what `ioreg -l | grep` leaves), lines that a
 * terminal cut at its width (ioreg ends them with `$`), strings holding a
 * newline (ioreg prints them raw when not writing to a terminal), `-b` bold codes,
 * and the Markdown fences of a paste copied from an issue.
 */
import { IokitSnapError } from '../errors';
import { splitLines } from './lines';
import { MAX_IMPORTED_VALUES, setOwn } from '../input-limits';
import type { BusyState, Limitation, PropertyValue } from '../types';
import { parsePropertyText, ValueBudgetExceeded, ValueSyntaxError, type ValueBudget } from './ioreg-value';
import type { ParsedDump, RegistryNode } from './registry-node';

const NODE_LINE = /^([ |]*)\+-o (.*)$/;
const BLOCK_OPEN = /^[ |]*\{\s*$/;
const BLOCK_CLOSE = /^[ |]*\}\s*$/;
const PROPERTY_LINE = /^[ |]*"/;
const BARS_ONLY = /^[ |\t]*$/;
/** `ioreg -b` wraps names in the terminal's bold codes. */
// eslint-disable-next-line no-control-regex
const ANSI_SGR = /\u001b\[[0-9;]*m/g;
/** A Markdown fence around a paste copied from an issue or a chat: never ioreg output. */
const CODE_FENCE = /^\s*```[\w-]*\s*$/;
/** How many following lines a string with raw newlines may span before we call the line malformed. */
const MAX_STRING_CONTINUATION_LINES = 64;

function excerpt(line: string): string {
  const trimmed = line.trim();
  return JSON.stringify(trimmed.length > 100 ? `${trimmed.slice(0, 100)}…` : trimmed);
}

function malformed(lineNumber: number, expected: string, line: string): never {
  throw new IokitSnapError(
    'EINVAL',
    `ioreg input, line ${lineNumber}: expected ${expected}; the line reads ${excerpt(line)}. ` +
      'Pass the output of `ioreg -l -w 0`, `ioreg -r -d 1 -w 0 -c IOAccelerator`, `ioreg -a …`, or one property block.',
  );
}

/** A count in a node line; EINVAL naming the line when it is past 2^53 (no count is). */
function exact(digits: string, lineNumber: number, what: string): number {
  const value = Number(digits);
  if (Number.isSafeInteger(value)) return value;
  throw new IokitSnapError('EINVAL', `ioreg input, line ${lineNumber}: the ${what} ${digits.slice(0, 40)}${digits.length > 40 ? '…' : ''} is larger than any ${what} can be; the line is damaged`);
}

function emptyNode(line: number | null, hasHeader: boolean): RegistryNode {
  return {
    name: '',
    location: null,
    className: null,
    inheritance: null,
    id: null,
    serviceState: null,
    busy: null,
    busyTimeFromMilliseconds: false,
    retainCount: null,
    properties: null,
    children: [],
    line,
    hasHeader,
  };
}

function applyClassSpec(node: RegistryNode, spec: string): void {
  if (spec.includes(':')) {
    node.inheritance = spec.split(':');
    node.className = node.inheritance[node.inheritance.length - 1];
  } else {
    node.className = spec;
  }
}

/** The header items after the class: id, state, busy, retain. */
function applyHeaderItems(node: RegistryNode, items: string[], lineNumber: number, limits: Limitation[]): void {
  const state: { registered?: boolean; matched?: boolean; active?: boolean } = {};
  for (const item of items) {
    let match: RegExpExecArray | null;
    if ((match = /^id 0x([0-9a-fA-F]+)$/.exec(item))) {
      node.id = `0x${BigInt(`0x${match[1]}`).toString(16)}`;
    } else if ((match = /^(!?)registered$/.exec(item))) {
      state.registered = match[1] === '';
    } else if ((match = /^(!?)matched$/.exec(item))) {
      state.matched = match[1] === '';
    } else if ((match = /^(in)?active$/.exec(item))) {
      state.active = match[1] === undefined;
    } else if ((match = /^busy (\d+)(?: \((\d+) ms\))?$/.exec(item))) {
      // ioreg prints " (T ms)" only when the accumulated busy time is non-zero, so a bare
      // "busy N" states a time of 0: a fact, not a default. T is ns / 1e6, truncated.
      const busy: BusyState = { count: exact(match[1], lineNumber, 'busy count'), timeNs: match[2] === undefined ? 0 : Number(match[2]) * 1e6 };
      node.busy = busy;
      node.busyTimeFromMilliseconds = true;
    } else if ((match = /^retain (\d+)$/.exec(item))) {
      node.retainCount = exact(match[1], lineNumber, 'retain count');
    } else {
      limits.push({
        subject: `line ${lineNumber}`,
        field: 'header',
        code: 'ENOTSUP',
        reason: `node header item ${JSON.stringify(item)} is not one ioreg is known to print; it was ignored`,
      });
    }
  }
  if (state.registered !== undefined && state.matched !== undefined && state.active !== undefined) {
    node.serviceState = { registered: state.registered, matched: state.matched, active: state.active };
  }
}

function parseNodeHeader(rest: string, lineNumber: number, line: string, limits: Limitation[]): RegistryNode {
  const node = emptyNode(lineNumber, true);
  const text = rest.trimEnd();
  let nameAndLocation: string;
  const classAt = text.indexOf('  <class ');
  const archiveAt = text.lastIndexOf(' class: ');
  if (classAt >= 0) {
    nameAndLocation = text.slice(0, classAt);
    let body = text.slice(classAt + '  <class '.length);
    let clipped = false;
    if (body.endsWith('>')) {
      body = body.slice(0, -1);
    } else if (body.endsWith('$')) {
      clipped = true;
      body = body.slice(0, -1);
    } else {
      malformed(lineNumber, '`>` closing the node header `<class …, retain N>`', line);
    }
    const items = body.split(', ');
    if (clipped) {
      items.pop(); // the item the terminal cut is partial
      limits.push({
        subject: `line ${lineNumber}`,
        field: 'header',
        code: 'ENODATA',
        reason: 'this node line was cut at the terminal width (it ends in `$`); the cut part of the header is not in the import',
        hint: 'run ioreg with -w 0, or redirect its output to a file, to get whole lines',
      });
    }
    if (items.length > 0 && items[0] !== '') applyClassSpec(node, items[0]);
    applyHeaderItems(node, items.slice(1), lineNumber, limits);
  } else if (archiveAt >= 0) {
    nameAndLocation = text.slice(0, archiveAt);
    applyClassSpec(node, text.slice(archiveAt + ' class: '.length).trim());
  } else {
    malformed(lineNumber, 'a node header `+-o name  <class C, id 0x…, …, retain N>`', line);
  }
  const at = nameAndLocation.indexOf('@');
  node.name = at >= 0 ? nameAndLocation.slice(0, at) : nameAndLocation;
  node.location = at >= 0 ? nameAndLocation.slice(at + 1) : null;
  return node;
}

function looksStructural(line: string): boolean {
  return NODE_LINE.test(line) || BLOCK_OPEN.test(line) || BLOCK_CLOSE.test(line) || /^[ |]*"[^"]*" = /.test(line);
}

export function parseIoregText(input: string, maxValues = MAX_IMPORTED_VALUES): ParsedDump {
  // Split within the engine's limits (an array of 120 M lines aborts the process), then cleaned in place.
  const lines = splitLines(input.charCodeAt(0) === 0xfeff ? input.slice(1) : input, { loneCR: false, what: 'ioreg input' });
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i];
    if (line.includes('\u001b')) line = line.replace(ANSI_SGR, '');
    lines[i] = CODE_FENCE.test(line) ? '' : line;
  }
  let lastContent = lines.length - 1;
  while (lastContent >= 0 && BARS_ONLY.test(lines[lastContent])) lastContent--;

  // One budget of values for the whole dump (a registry entry counts 8): see MAX_IMPORTED_VALUES.
  const budget: ValueBudget = { left: maxValues };
  const tooMany = (lineNumber: number): never => {
    throw new IokitSnapError(
      'EINVAL',
      `ioreg input, line ${lineNumber}: the dump holds more than ${maxValues} values and registry entries, more than any ioreg output (and more than fit in memory); capture with \`ioreg -r -d 1 -w 0 -c IOAccelerator\``,
    );
  };
  const roots: RegistryNode[] = [];
  const limits: Limitation[] = [];
  const open: { column: number; node: RegistryNode }[] = [];
  let current: RegistryNode | null = null;
  let block: { owner: RegistryNode; line: number } | null = null;

  const headless = (lineNumber: number): RegistryNode => {
    if ((budget.left -= 8) < 0) tooMany(lineNumber);
    const node = emptyNode(lineNumber, false);
    node.properties = {};
    roots.push(node);
    open.length = 0;
    current = node;
    return node;
  };

  for (let index = 0; index <= lastContent; index++) {
    const line = lines[index];
    const lineNumber = index + 1;
    if (BARS_ONLY.test(line)) continue;

    const nodeMatch = NODE_LINE.exec(line);
    if (nodeMatch) {
      if ((budget.left -= 8) < 0) tooMany(lineNumber);
      if (block) malformed(lineNumber, `\`}\` closing the property block opened at line ${block.line}, before the next node`, line);
      const column = nodeMatch[1].length;
      const node = parseNodeHeader(nodeMatch[2], lineNumber, line, limits);
      while (open.length > 0 && open[open.length - 1].column >= column) open.pop();
      if (open.length > 0) open[open.length - 1].node.children.push(node);
      else roots.push(node);
      open.push({ column, node });
      current = node;
      continue;
    }

    if (BLOCK_OPEN.test(line)) {
      if (block) malformed(lineNumber, `a property line or \`}\` (a block is already open since line ${block.line})`, line);
      // The block belongs to the node just above it; a block with no node line above it
      // (or a second block after one that closed) is a pasted bare block.
      const owner: RegistryNode = current !== null && current.hasHeader && current.properties === null ? current : headless(lineNumber);
      owner.properties = {};
      block = { owner, line: lineNumber };
      continue;
    }

    if (BLOCK_CLOSE.test(line)) {
      if (!block) malformed(lineNumber, 'a node line or `{` (this `}` closes no property block)', line);
      block = null;
      continue;
    }

    if (!PROPERTY_LINE.test(line)) {
      malformed(lineNumber, 'a node line (`+-o name  <class …>`), a property line (`"key" = value`), `{` or `}`', line);
    }

    const barsWidth = /^[ |]*/.exec(line)![0].length;
    let text = line.slice(barsWidth);
    let parsed: { key: string; value: PropertyValue } | null = null;
    let consumed = index;
    let firstError: ValueSyntaxError | null = null;
    for (;;) {
      const left = budget.left;
      try {
        parsed = parsePropertyText(text, budget);
        break;
      } catch (caught) {
        if (caught instanceof ValueBudgetExceeded) tooMany(lineNumber);
        budget.left = left; // the line is read again, joined to the next: its values count once
        /* c8 ignore next -- the value reader throws only ValueSyntaxError; anything else is a bug to see as is */
        if (!(caught instanceof ValueSyntaxError)) throw caught;
        const error = caught;
        firstError ??= error;
        const cutKey = /^"([^"]*)"/.exec(text)?.[1];
        const key = cutKey ?? 'property';
        if (line.trimEnd().endsWith('$') && consumed === index) {
          limits.push({
            subject: `line ${lineNumber}`,
            field: key,
            code: 'ENODATA',
            reason: `line ${lineNumber} was cut at the terminal width (it ends in \`$\`); property ${JSON.stringify(key)} is not in the import`,
            hint: 'run ioreg with -w 0, or redirect its output to a file, to get whole lines',
          });
          break;
        }
        if ((error.atEnd || error.inString) && consumed === lastContent) {
          limits.push({
            subject: 'input',
            field: key,
            code: 'ENODATA',
            reason: `input ended early: line ${lineNumber} stops inside ${cutKey === undefined ? 'a property key' : `the value of ${JSON.stringify(key)}, which is not in the import`}`,
            hint: 'paste or save the whole ioreg output',
          });
          break;
        }
        const next = lines[consumed + 1];
        if (
          error.inString &&
          consumed - index < MAX_STRING_CONTINUATION_LINES &&
          next !== undefined &&
          !looksStructural(next)
        ) {
          // A string with a raw newline in it: ioreg printed it across lines.
          consumed++;
          text += `\n${next}`;
          continue;
        }
        malformed(lineNumber, `${firstError.expected} (column ${barsWidth + firstError.column + 1})`, line);
      }
    }
    index = consumed;
    if (!parsed) continue;
    const owner: RegistryNode = block ? block.owner : (current ?? headless(lineNumber));
    owner.properties ??= {};
    setOwn(owner.properties, parsed.key, parsed.value);
  }

  if (block) {
    const { owner } = block;
    limits.push({
      subject: 'input',
      field: 'properties',
      code: 'ENODATA',
      reason:
        `input ended early: the property block of ${owner.hasHeader ? owner.name : 'the pasted block'} opened at line ${block.line} ` +
        'has no closing `}`; the properties after the last line are not in the import',
      hint: 'paste or save the whole ioreg output',
    });
  }
  if (roots.length === 0) {
    throw new IokitSnapError('EINVAL', 'ioreg input is empty: pass the output of `ioreg -l -w 0` or `ioreg -r -d 1 -w 0 -c IOAccelerator`.');
  }
  return { format: 'ioreg-text', roots, limits };
}
