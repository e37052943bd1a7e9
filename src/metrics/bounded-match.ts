/**
 * User regular expressions (`serve --match`) run against text other people choose: any
 * process can name itself `aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!`, and `^(a+)+$`
 * takes 2^40 steps on it in a backtracking engine (V8's is one). Nothing can cancel a
 * running RegExp from inside the thread that runs it, except V8's own watchdog: a script
 * run by node:vm with a `timeout` is terminated when it runs past it, RegExp execution
 * included. So every match runs inside such a script, a whole batch of texts per call (the
 * watchdog thread costs ~0.1 ms to start, a match microseconds), and a text that takes the
 * whole budget by itself is given up: the caller hears `null` for it, not a guess.
 *
 * V8's linear-time engine (the `l` flag) would bound the cost by construction, but it is
 * behind a V8 flag, refuses backreferences, lookaround and the `i` and `u` flags in
 * Node 20, and is two orders of magnitude slower on ordinary patterns.
 */
import * as vm from 'node:vm';

/** How long one text may take against all the patterns (default 100 ms). */
export const DEFAULT_MATCH_BUDGET_MS = 100;

export class BoundedMatcher {
  private readonly context = vm.createContext({});
  private readonly script = new vm.Script('run()', { filename: 'iokit-snap-match' });
  constructor(
    readonly patterns: RegExp[],
    readonly budgetMs = DEFAULT_MATCH_BUDGET_MS,
  ) {}

  /**
   * For each text, the indices of the patterns that match it, or null when matching it did
   * not finish within the budget. The event loop is held for at most about `budgetMs` per
   * text that is given up, plus the time the ordinary ones take.
   */
  matchAll(texts: string[]): (number[] | null)[] {
    const out: (number[] | null)[] = new Array<number[] | null>(texts.length);
    // `current` is the text being matched (-1 between texts), from `startedMs`.
    const state = { next: 0, current: -1, startedMs: 0 };
    const patterns = this.patterns;
    this.context.run = (): void => {
      for (; state.next < texts.length; state.next++) {
        state.startedMs = Date.now();
        state.current = state.next;
        const text = texts[state.next];
        const hits: number[] = [];
        for (let p = 0; p < patterns.length; p++) {
          const re = patterns[p];
          re.lastIndex = 0; // a /g or /y pattern carries state between calls
          if (re.test(text)) hits.push(p);
        }
        out[state.next] = hits;
        state.current = -1;
      }
    };
    while (state.next < texts.length) {
      try {
        this.script.runInContext(this.context, { timeout: this.budgetMs });
      } catch (error) {
        /* c8 ignore next -- run() throws nothing else: re.test on a string cannot */
        if ((error as NodeJS.ErrnoException).code !== 'ERR_SCRIPT_EXECUTION_TIMEOUT') throw error;
        // The budget ran out in this text: given up if it alone took most of it, else the
        // texts before it did, and it is tried again with a budget of its own.
        if (state.current === state.next && Date.now() - state.startedMs >= this.budgetMs / 2) out[state.next++] = null;
        state.current = -1;
      }
    }
    this.context.run = undefined;
    return out;
  }
}
