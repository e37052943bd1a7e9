/**
 * What the test/verdicts-*.test.ts files share: whether a case can run here (Linux, the built
 * CLI, its runtime), and starting every case at once so a file waits for its slowest case only.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as P from './real-programs';

const unsupported =
  process.platform !== 'linux' ? 'real programs in Linux states'
  : !fs.existsSync(path.join(__dirname, '..', '..', 'lib', 'index.js')) ? 'the built CLI (npm run build)'
  : false;

/** Why a case that needs `runtimes` cannot run here, or false when it can. */
export function needs(...runtimes: P.Runtime[]): string | false {
  if (unsupported) return unsupported;
  for (const runtime of runtimes) {
    const why = P.missing(runtime);
    if (why !== null) return `needs ${runtime}: ${why}`;
  }
  return false;
}

/** Start `work` now (every case runs at once), and hand its result to the test that asserts it. */
export function early<T>(skip: string | false, work: () => Promise<T>): Promise<T> | null {
  if (skip) return null;
  const promise = work();
  promise.catch(() => {});
  return promise;
}
