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
