/** Small formatting helpers shared by the findings' messages and the explanation. */

/**
 * 1234 → "1.2 s", 80 → "80 ms", 125000 → "2 min 5 s", 7_380_000 → "2 h 3 min".
 * Each unit is chosen after rounding, so a value just under a boundary never prints as
 * "1000 ms", "60.0 s", "1 min 60 s" or "1 h 60 min".
 */
export function formatMs(ms: number): string {
  if (!Number.isFinite(ms)) return 'an unknown time';
  if (Math.round(ms) < 1000) return `${Math.round(ms)} ms`;
  const tenths = Math.round(ms / 100);
  if (tenths < 600) return `${(tenths / 10).toFixed(1)} s`;
  const seconds = Math.round(ms / 1000);
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${seconds % 60} s`;
  const minutes = Math.round(ms / 60_000);
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

/** CPU time in ns → "0 ns", "12 µs", "12 ms", "1.5 s". */
export function formatCpu(ns: number): string {
  if (ns === 0) return '0 ns';
  if (Math.round(ns / 1000) < 1000) return `${Math.round(ns / 1000)} µs`;
  return formatMs(ns / 1e6);
}

export function plural(n: number, word: string, many = `${word}s`): string {
  return `${n} ${n === 1 ? word : many}`;
}
