/**
 * The HTTP side of `iokit-snap serve`: /metrics (Prometheus text format, written by
 * prom-client) and /healthz. A scrape reads the registry as the latest completed sample left
 * it and never waits for a probe; iokit_snap_sample_age_seconds says how old that is.
 *
 * Clients cannot hold it: a connection must send its headers within headersTimeoutMs and
 * its whole request within requestTimeoutMs (a 408, then closed), an idle keep-alive
 * connection is closed after keepAliveTimeoutMs and after 100 requests, and one that moves
 * no byte for idleTimeoutMs (a reader that stopped reading) is closed. At most
 * maxConnections are open at once; a new one past that closes the connection that has been
 * idle longest (a request line that never finished, a keep-alive between scrapes), so idle
 * connections, however many, cannot keep a scrape out. Only when every connection is busy
 * answering a request is the new one refused.
 */
import { readFileSync } from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import * as client from 'prom-client';
import { IokitSnapError } from '../errors';
import type { Collector, CollectorOptions } from './collector';
import { IokitSnapMetrics } from './metrics';
import type { HostWatcher, HostWatchOptions } from '../host/watch';

export interface ServeOptions extends CollectorOptions {
  /**
   * Linux: also scan every process of the host (watchHost(), with these options; its interval
   * and stall default to this server's). Its metrics are iokit_snap_host_* (docs/metrics.md).
   */
  all?: Omit<HostWatchOptions, 'signal'>;
  /** Address to listen on (default 127.0.0.1: loopback only; anything else only when given). */
  host?: string;
  /** Port (default 9464; 0 picks a free one). */
  port?: number;
  /** Time a client has to send its request headers, ms (default 10000). */
  headersTimeoutMs?: number;
  /** Time a client has to send its whole request, ms (default 20000, at least headersTimeoutMs). */
  requestTimeoutMs?: number;
  /** An idle keep-alive connection is closed after this, ms (default 5000). */
  keepAliveTimeoutMs?: number;
  /** A connection on which no byte moves either way for this long is closed, ms (default 30000). */
  idleTimeoutMs?: number;
  /** Connections open at once (default 64, and at most an eighth of the open-file limit). */
  maxConnections?: number;
}

const DEFAULT_HEADERS_TIMEOUT_MS = 10_000;
const DEFAULT_REQUEST_TIMEOUT_MS = 20_000;
const DEFAULT_KEEP_ALIVE_TIMEOUT_MS = 5_000;
const DEFAULT_IDLE_TIMEOUT_MS = 30_000;
const DEFAULT_MAX_CONNECTIONS = 64;
const MAX_REQUESTS_PER_CONNECTION = 100;

/** The soft limit on open files (Linux: /proc/self/limits), or null where it cannot be read. */
export function openFileLimit(limitsText?: string): number | null {
  let text = limitsText;
  if (text === undefined) {
    try {
      text = readFileSync('/proc/self/limits', 'utf8');
      /* c8 ignore next 3 -- macOS has no /proc */
    } catch {
      return null;
    }
  }
  const m = /^Max open files\s+(\d+|unlimited)\s/m.exec(text);
  return m === null || m[1] === 'unlimited' ? null : Number(m[1]);
}

/** The default connection cap: 64, but never more than an eighth of the open files (the samplers need the rest). */
export function defaultMaxConnections(fileLimit: number | null): number {
  return fileLimit === null ? DEFAULT_MAX_CONNECTIONS : Math.max(4, Math.min(DEFAULT_MAX_CONNECTIONS, Math.floor(fileLimit / 8)));
}

interface Closable {
  destroy(): void;
}

/**
 * Which connections may stay open: at most `max`; a new one past that closes the one that
 * has been idle longest (no request in progress), or is itself closed when every one is busy.
 */
export class ConnectionCap<S extends Closable = Closable> {
  /** Open connections, oldest first, and whether each is answering a request now. */
  private readonly open = new Map<S, { busy: boolean }>();
  constructor(readonly max: number) {}

  get size(): number {
    return this.open.size;
  }

  /** A new connection: true when it may stay (another may have been closed for it), false when it was closed. */
  admit(socket: S): boolean {
    if (this.open.size >= this.max) {
      for (const [idle, state] of this.open) {
        if (state.busy) continue;
        idle.destroy();
        this.open.delete(idle);
        break;
      }
      if (this.open.size >= this.max) {
        socket.destroy();
        return false;
      }
    }
    this.open.set(socket, { busy: false });
    return true;
  }

  /** A request began or ended on this connection. */
  busy(socket: S, busy: boolean): void {
    const state = this.open.get(socket);
    if (state !== undefined) state.busy = busy;
  }

  closed(socket: S): void {
    this.open.delete(socket);
  }
}

function checkPositive(name: string, value: unknown): void {
  if (value !== undefined && !(typeof value === 'number' && Number.isFinite(value) && value > 0)) {
    throw new IokitSnapError('EINVAL', `${name} must be a positive number, got ${String(value)}`);
  }
}

export interface MetricsServer {
  /** The address it listens on, e.g. http://127.0.0.1:9464 */
  readonly url: string;
  readonly port: number;
  readonly registry: client.Registry;
  readonly collector: Collector;
  /** The host scan, when `all` was given. */
  readonly host: HostWatcher | null;
  /** Stop sampling and listening; resolves when both have stopped. Safe to call twice. */
  close(): Promise<void>;
}

export const DEFAULT_HOST = '127.0.0.1';
export const DEFAULT_PORT = 9464;

/** "127.0.0.1:9464", "[::1]:9464", ":9464" or "9464" → host and port. */
export function parseListen(text: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d+)$/.exec(text) ?? /^()()(\d+)$/.exec(text);
  const port = m === null ? NaN : Number(m[3]);
  if (m === null || !(port >= 0 && port <= 65535)) {
    throw new IokitSnapError('EINVAL', `--listen takes host:port (127.0.0.1:9464, [::1]:9464, 0.0.0.0:9464) or a port, got ${JSON.stringify(text)}`);
  }
  return { host: m[1] || m[2] || DEFAULT_HOST, port };
}

/** Is this a loopback address (reachable only from this machine)? */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** Start sampling and serving. Rejects (EADDRINUSE, EACCES…) when it cannot listen; nothing is left running then. */
export async function startMetricsServer(options: ServeOptions): Promise<MetricsServer> {
  const host = options.host ?? DEFAULT_HOST;
  const port = options.port ?? DEFAULT_PORT;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new IokitSnapError('EINVAL', `port must be 0..65535, got ${String(port)}`);
  for (const name of ['headersTimeoutMs', 'requestTimeoutMs', 'keepAliveTimeoutMs', 'idleTimeoutMs', 'maxConnections'] as const) checkPositive(name, options[name]);
  const headersTimeoutMs = options.headersTimeoutMs ?? DEFAULT_HEADERS_TIMEOUT_MS;
  const requestTimeoutMs = Math.max(headersTimeoutMs, options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS);
  const maxConnections = Math.max(1, Math.floor(options.maxConnections ?? defaultMaxConnections(openFileLimit())));
  const registry = new client.Registry();
  const metrics = new IokitSnapMetrics({ registry, defaultMetrics: true });
  const { all, ...collectorOptions } = options;
  const collector = metrics.watch(collectorOptions);
  let hostScan: HostWatcher | null = null;
  if (all !== undefined) {
    // Loaded here: only serve --all needs it. Its interval and stall are the collector's unless given.
    const { watchHost } = require('../host/watch') as typeof import('../host/watch');
    const { observeHost } = require('./host') as typeof import('./host');
    try {
      hostScan = watchHost({ intervalMs: collector.intervalMs, stallMs: collector.stallMs, ...all });
    } catch (error) {
      await collector.close(); // EINVAL, or ENOTSUP off Linux: nothing is left running
      throw error;
    }
    observeHost(registry, hostScan);
  }
  const startedMs = Date.now();
  // Healthy while samples keep completing: a probe can take its whole deadline, twice (threads, then the next step).
  const staleAfterMs = 2 * collector.timeoutMs + 2 * collector.intervalMs;

  const connections = new ConnectionCap<Socket>(maxConnections);
  const server = http.createServer(
    {
      headersTimeout: headersTimeoutMs,
      requestTimeout: requestTimeoutMs,
      // How often the two deadlines above are checked (Node's default is every 30 s).
      connectionsCheckingInterval: Math.max(10, Math.min(1000, headersTimeoutMs / 4)),
    },
    (request, response) => {
      connections.busy(request.socket, true);
      response.once('close', () => connections.busy(request.socket, false));
      handle(request, response);
    },
  );
  server.keepAliveTimeout = options.keepAliveTimeoutMs ?? DEFAULT_KEEP_ALIVE_TIMEOUT_MS;
  server.maxRequestsPerSocket = MAX_REQUESTS_PER_CONNECTION;
  // No 'timeout' listener: Node destroys a socket that stayed silent this long.
  server.setTimeout(options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS);
  server.on('connection', (socket: Socket) => {
    if (connections.admit(socket)) socket.once('close', () => connections.closed(socket));
  });

  function handle(request: http.IncomingMessage, response: http.ServerResponse): void {
    const url = request.url!.split('?')[0];
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { Allow: 'GET, HEAD' }).end();
      return;
    }
    if (url === '/metrics') {
      registry.metrics().then(
        (text) => response.writeHead(200, { 'Content-Type': registry.contentType }).end(request.method === 'HEAD' ? undefined : text),
        /* c8 ignore next -- prom-client renders what it registered; a guard */
        (error: Error) => response.writeHead(500, { 'Content-Type': 'text/plain' }).end(`${error.message}\n`),
      );
    } else if (url === '/healthz') {
      const last = collector.lastSampleMs;
      const ageMs = Date.now() - (last ?? startedMs);
      // Stale only when the loop itself stopped (a bug, or this process was stopped): probes have deadlines.
      /* c8 ignore next 2 */
      const status = ageMs <= staleAfterMs ? 200 : 503;
      const word = status === 200 ? 'ok' : 'stale';
      const scanned = hostScan === null ? '' : `, host scan: ${hostScan.watchedPids.length} processes watched in full`;
      const body = `${word}: ${last === null ? 'no sample yet' : `latest sample ${(ageMs / 1000).toFixed(1)} s ago`}, ${collector.pids.length} processes watched${scanned}\n`;
      response.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8' }).end(body);
    } else if (url === '/') {
      response.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' }).end('<html><body><h1>iokit-snap</h1><p><a href="/metrics">/metrics</a> <a href="/healthz">/healthz</a></p></body></html>\n');
    } else {
      response.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found: try /metrics or /healthz\n');
    }
  }
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (error) {
    hostScan?.close();
    await Promise.all([collector.close(), hostScan?.done]);
    const e = error as NodeJS.ErrnoException;
    throw new IokitSnapError(
      /* c8 ignore next -- a privileged port as a user; the tests run as root */
      e.code === 'EACCES' ? 'EPERM' : 'EINVAL',
      `cannot listen on ${host}:${port}: ${e.message}${e.code === 'EADDRINUSE' ? ' (another exporter runs there? pick another with --listen)' : ''}`,
      { cause: error },
    );
  }
  const address = server.address() as AddressInfo;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`,
    port: address.port,
    registry,
    collector,
    host: hostScan,
    close() {
      hostScan?.close();
      closing ??= Promise.all([
        new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        }),
        collector.close(),
        hostScan?.done,
      ]).then(() => undefined);
      return closing;
    },
  };
}
