/**
 * Scrape an exporter and parse what it says with parse-prometheus-text-format (a parser that
 * is not prom-client, so a test checks the text format, not prom-client against itself).
 */
import * as http from 'node:http';

// eslint-disable-next-line @typescript-eslint/no-var-requires
const parse = require('parse-prometheus-text-format') as (text: string) => MetricFamily[];

export interface Sample {
  value?: string;
  labels?: Record<string, string>;
  buckets?: Record<string, string>;
  count?: string;
  sum?: string;
}

export interface MetricFamily {
  name: string;
  help: string;
  type: 'COUNTER' | 'GAUGE' | 'HISTOGRAM' | 'SUMMARY' | 'UNTYPED';
  metrics: Sample[];
}

export interface Scrape {
  status: number;
  contentType: string;
  text: string;
  families: Map<string, MetricFamily>;
  /** The value of one series: the first whose labels include `labels`; undefined when none. */
  value(name: string, labels?: Record<string, string>): number | undefined;
  /** Every series of a family with these labels. */
  series(name: string, labels?: Record<string, string>): Sample[];
}

export function get(url: string): Promise<{ status: number; contentType: string; body: string }> {
  return new Promise((resolve, reject) => {
    http
      // No keep-alive: each request is its own connection, as a scraper that just started.
      .get(url, { agent: false }, (response) => {
        let body = '';
        response.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, contentType: String(response.headers['content-type']), body }));
      })
      .on('error', reject);
  });
}

export async function scrape(url: string): Promise<Scrape> {
  const { status, contentType, body } = await get(url);
  return { status, contentType, ...parseText(body) };
}

/** Parse exposition text (what registry.metrics() returns) the same way. */
export function parseText(body: string): Omit<Scrape, 'status' | 'contentType'> {
  const families = new Map(parse(body).map((f) => [f.name, f]));
  const series = (name: string, labels: Record<string, string> = {}): Sample[] =>
    (families.get(name)?.metrics ?? []).filter((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
  return {
    text: body,
    families,
    series,
    value(name, labels = {}) {
      const found = series(name, labels)[0];
      return found?.value === undefined ? undefined : Number(found.value);
    },
  };
}
