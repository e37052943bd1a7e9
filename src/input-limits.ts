/**
 * Bounds on what iokit-snap reads from outside (snapshot files, ioreg dumps), shared by
 * every reader so that a file one of them writes, another accepts.
 */

/**
 * How deep containers (dictionaries, arrays, registry entries) may nest. A real IORegistry
 * is a few dozen entries deep and its property values a handful; this leaves a wide margin
 * (a full `ioreg -a -l` tree, two containers per entry level) while keeping every reader,
 * and JSON.stringify after them, far from the call-stack limit.
 */
export const MAX_NESTING = 4096;

/** The largest file a reader takes in (a full `ioreg -l` of a big Mac is tens of MB). */
export const MAX_INPUT_BYTES = 256 * 1024 * 1024;

/**
 * The most lines a text input may have: more than any real one has (a 256 MB `ioreg -l` or
 * kernel log has lines of 40 to 100 bytes, a few million of them), and far below the array
 * length at which V8 aborts the process: `text.split('\n')` on 120 MB of newlines dies with
 * "FATAL ERROR: invalid array length", which no try/catch sees.
 */
export const MAX_INPUT_LINES = 16 * 1024 * 1024;

/**
 * The most values (numbers, strings, array items, dictionary entries; a registry entry counts
 * 8) one imported ioreg dump may hold. A line of `(1,1,1,…)` under the size cap is 100 M array
 * items, and V8 aborts the process growing an array that long ("invalid array length");
 * 14 M one-line registry entries took 3.5 GB. A full `ioreg -l` of a big Mac holds a few
 * million values.
 */
export const MAX_IMPORTED_VALUES = 16 * 1024 * 1024;

/**
 * The most threads (tasks) one imported report may list. Each costs about a kilobyte in the
 * snapshot and another in its finding; a 160 MB log of 6 million one-line tasks (under the
 * size and line caps) exhausted V8's default heap of about 4 GB, which aborts the process.
 * A million keeps an import and its explain near 2.5 GB, and is more D-state tasks or
 * threads than any report of a real machine lists.
 */
export const MAX_IMPORTED_THREADS = 1_000_000;

/**
 * How many threads an imported report of `bytes` characters and `lines` lines may list, so
 * that reading and judging it stays near 3 GB, under V8's default heap of about 4 GB (past
 * which the process aborts). The costs are measured (Node 20, x64): 2 bytes per character
 * (the text and the buffer it was read from), 250 per line (the line and the frame it
 * becomes), 1,700 per thread (the thread, its process and its finding). A 250 MB sysrq-w dump
 * of 228,000 tasks costs 1.7 GB by this count (2.0 GB measured); 16 M one-frame lines, 4.3.
 * 0 or less: the lines alone are too many.
 */
export function importedThreadBudget(bytes: number, lines: number): number {
  return Math.min(MAX_IMPORTED_THREADS, Math.floor((3e9 - 2 * bytes - 250 * lines) / 1700));
}

/**
 * The longest duration an imported document can prove (a task blocked, a service busy, a
 * process sampled): ten years. Nothing is blocked longer than its machine has been up, and
 * no machine that prints these reports has been up that long; a larger figure is a damaged
 * line ("blocked for more than 246399999999999990000 seconds"), and is not used.
 */
export const MAX_DURATION_MS = 10 * 365.25 * 24 * 3600 * 1000;

/**
 * Set `key` on an object built from input as an own data property. A plain assignment of
 * "__proto__" would replace the object's prototype instead of storing the value.
 */
export function setOwn<T>(target: Record<string, T>, key: string, value: T): void {
  if (key === '__proto__') Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
  else target[key] = value;
}
