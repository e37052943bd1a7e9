/**
 * The HTTP side of `iokit-snap serve`: /metrics (Prometheus text format, written by
 * prom-client) and /healthz. A scrape reads the registry as the latest completed sample left
 * it and never waits for a probe; iokit_snap_sample_age_seconds says how old that is.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as client from 'prom-client';
import { IokitSnapError } from '../errors';
import type { Collector, CollectorOptions } from './collector';
import { IokitSnapMetrics } from './metrics';

export interface ServeOptions extends CollectorOptions {
  /** Address to listen on (default 127.0.0.1: loopback only; anything else only when given). */
  host?: string;
  /** Port (default 9464; 0 picks a free one). */
  port?: number;
}

export interface MetricsServer {
  /** The address it listens on, e.g. http://127.0.0.1:9464 */
  readonly url: string;
  readonly port: number;
  readonly registry: client.Registry;
  readonly collector: Collector;
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
  const registry = new client.Registry();
  const metrics = new IokitSnapMetrics({ registry, defaultMetrics: true });
  const collector = metrics.watch(options);
  const startedMs = Date.now();
  // Healthy while samples keep completing: a probe can take its whole deadline, twice (threads, then the next step).
  const staleAfterMs = 2 * collector.timeoutMs + 2 * collector.intervalMs;

  const server = http.createServer((request, response) => {
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
      const body = `${word}: ${last === null ? 'no sample yet' : `latest sample ${(ageMs / 1000).toFixed(1)} s ago`}, ${collector.pids.length} processes watched\n`;
      response.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8' }).end(body);
    } else if (url === '/') {
      response.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' }).end('<html><body><h1>iokit-snap</h1><p><a href="/metrics">/metrics</a> <a href="/healthz">/healthz</a></p></body></html>\n');
    } else {
      response.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found: try /metrics or /healthz\n');
    }
  });
  // A scrape holds nothing open between requests, so close() is not held up by keep-alive.
  server.keepAliveTimeout = 5000;
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (error) {
    await collector.close();
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
    close() {
      closing ??= Promise.all([
        new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        }),
        collector.close(),
      ]).then(() => undefined);
      return closing;
    },
  };
}
