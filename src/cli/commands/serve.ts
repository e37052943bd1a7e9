/** `iokit-snap serve`: a Prometheus exporter for the accelerators and the watched processes. */
import * as path from 'node:path';
import { many, parseCommandArgs, parseDuration, parsePid, UsageError } from '../args';
import type { Command } from '../command';
import { EXIT, write } from '../io';
import { parseSelector } from '../watch-all';

export const serveCommand: Command = {
  name: 'serve',
  summary: 'a Prometheus exporter: /metrics for the accelerators and the watched processes',
  usage: `Usage: iokit-snap serve [--listen 127.0.0.1:9464] [--pid N]… [--match REGEX]… [--cgroup PATH]…
                        [--interval 1s] [--stall 10s]
       iokit-snap serve --all [--include SEL]… [--exclude SEL]… [--pass DUR]   (Linux)

Samples the accelerators and the selected processes every --interval and serves the
result at http://HOST:PORT/metrics (Prometheus text format) and /healthz. A scrape
never waits for a probe: it gets the latest completed sample, and
iokit_snap_sample_age_seconds says how old it is. A probe that hangs is counted in
iokit_snap_probe_timeouts_total and the server keeps answering.

Processes are selected again every interval, so a restarted service is picked up
under its new pid and an exited one dropped:
  -p, --pid N          this process, while it lives (repeatable)
  --match REGEX        processes whose name or command line matches (repeatable);
                       the command line is read once, when a process is first seen;
                       a name that takes a pattern over 100 ms is not matched
  --cgroup PATH        the members of a cgroup (repeatable): a directory under
                       /sys/fs/cgroup, or a path as /proc/PID/cgroup shows it, e.g.
                       /system.slice/ollama.service (Linux)

Every process of the host (Linux), as watch --all scans it:
  --all                a cheap pass over every thread each --pass; processes with a
                       thread that could be stuck are watched in full. Exports
                       iokit_snap_host_processes{verdict}, a verdict series
                       (iokit_snap_host_process_verdict: pid, name, unit, container,
                       uid) for each process that is not healthy, and the scan's cost
                       (iokit_snap_host_scanned_{processes,threads}_total,
                       iokit_snap_host_pass_duration_seconds)
  --include SEL        only these (repeatable): name=REGEX, cgroup=PATH, uid=N, or a
                       bare REGEX (a name)
  --exclude SEL        never these (repeatable, same forms)
  --pass DUR           time between cheap passes (default max(--interval, --stall/4))

Options:
  --listen HOST:PORT   where to listen (default 127.0.0.1:9464, loopback only; give
                       0.0.0.0:9464 or [::]:9464 to be scraped from other machines)
  --interval DUR       time between samples (default 1s)
  --stall DUR          no progress for DUR is a hang (default 10s)
  --no-accelerators    processes only
  --basic              read only state and CPU time (cheapest; cannot tell idle waits apart)
  --json               print the address as one JSON line: {"listening": …, "metrics": …}

A selector that selects no process at start is warned about on stderr; every
selector's count is iokit_snap_selector_processes. Clients get 10 s to send a
request; at most 64 connections are open at once, and an idle one is closed to
make room for a new one.

Prints the address it listens on, then runs until SIGTERM or SIGINT (Ctrl-C),
which close it cleanly (exit status 0). Metric names: docs/metrics.md in the package
(${path.join(__dirname, '..', '..', '..', 'docs', 'metrics.md')}).
`,
  async run(argv, io) {
    const { values } = parseCommandArgs(
      argv,
      {
        listen: { type: 'string' },
        pid: { type: 'string', short: 'p', multiple: true },
        match: { type: 'string', multiple: true },
        cgroup: { type: 'string', multiple: true },
        interval: { type: 'string' },
        stall: { type: 'string' },
        'no-accelerators': { type: 'boolean' },
        basic: { type: 'boolean' },
        json: { type: 'boolean' },
        all: { type: 'boolean' },
        include: { type: 'string', multiple: true },
        exclude: { type: 'string', multiple: true },
        pass: { type: 'string' },
      },
      false,
    );
    if (values.all !== true) {
      for (const name of ['include', 'exclude', 'pass'] as const) {
        if (values[name] !== undefined) throw new UsageError(`--${name} selects among every process: it goes with --all`);
      }
    }
    // Loaded here, not at the top: prom-client is only needed by this command.
    const { startMetricsServer, parseListen, isLoopback, DEFAULT_HOST, DEFAULT_PORT } = await import('../../metrics/server');
    let listen = { host: DEFAULT_HOST, port: DEFAULT_PORT };
    if (typeof values.listen === 'string') {
      try {
        listen = parseListen(values.listen);
      } catch (error) {
        throw new UsageError((error as Error).message);
      }
    }
    const match = many(values.match);
    for (const pattern of match) {
      try {
        new RegExp(pattern);
      } catch (error) {
        throw new UsageError(`--match ${JSON.stringify(pattern)} is not a regular expression: ${(error as Error).message}`);
      }
    }
    const pids = many(values.pid).map((p) => parsePid(p, '--pid'));
    const cgroups = many(values.cgroup);
    const duration = (name: string): number | undefined =>
      typeof values[name] === 'string' ? parseDuration(values[name] as string, `--${name}`) : undefined;
    const server = await startMetricsServer({
      host: listen.host,
      port: listen.port,
      pids,
      match,
      cgroups,
      intervalMs: duration('interval') ?? 1000,
      stallMs: duration('stall') ?? 10000,
      accelerators: values['no-accelerators'] !== true,
      detail: values.basic ? 'basic' : 'full',
      ...(values.all === true
        ? {
            all: {
              include: many(values.include).map((s) => parseSelector(s, '--include')),
              exclude: many(values.exclude).map((s) => parseSelector(s, '--exclude')),
              passMs: duration('pass'),
              detail: values.basic ? ('basic' as const) : ('full' as const),
            },
          }
        : {}),
    });
    /* c8 ignore next -- the real process's signals; tests pass their own emitter */
    const signals = io.signals ?? process;
    const stopped = new Promise<void>((resolve) => {
      const stop = (): void => {
        signals.off('SIGINT', stop);
        signals.off('SIGTERM', stop);
        resolve();
      };
      signals.on('SIGINT', stop);
      signals.on('SIGTERM', stop);
    });
    /* c8 ignore next 3 -- a process that refuses to be sampled (see the collector) */
    server.collector.on('error', (event: { error: { code: string; message: string } }) => {
      void write(io.stderr, `iokit-snap serve: ${event.error.code}: ${event.error.message}\n`);
    });
    if (values.json) await write(io.stdout, JSON.stringify({ listening: server.url, metrics: `${server.url}/metrics` }) + '\n');
    else await write(io.stdout, `iokit-snap serve: listening on ${server.url}/metrics\n`);
    if (!isLoopback(listen.host)) {
      await write(io.stderr, `iokit-snap serve: listening on ${listen.host}, reachable from other machines; process names are visible to whoever can reach it\n`);
    }
    if (values.all === true) {
      await write(io.stderr, 'iokit-snap serve: scanning every process of this host (--all); iokit_snap_host_* metrics\n');
    } else if (pids.length === 0 && match.length === 0 && cgroups.length === 0) {
      await write(io.stderr, 'iokit-snap serve: no processes selected (--pid, --match, --cgroup): exporting the accelerators only\n');
    } else {
      // A selector that matches nothing at start is most often a typo (in a systemd unit, say): say so once.
      // The collector's sample events always carry `selection` (optional only for a library's own events).
      server.collector.once('sample', (event: { selection: { kind: string; selector: string; processes: number; reason?: string }[] }) => {
        for (const c of event.selection) {
          if (c.processes > 0) continue;
          const why = c.reason ?? (c.kind === 'match' ? 'no process name or command line matches it now' : 'it has no members now');
          const after = c.kind === 'pid' ? 'it will not be watched' : 'it is looked for again every interval';
          void write(io.stderr, `iokit-snap serve: warning: --${c.kind} ${c.selector} selects no process (${why}); ${after} (iokit_snap_selector_processes)\n`);
        }
      });
    }
    await stopped;
    await server.close();
    return EXIT.ok;
  },
};
