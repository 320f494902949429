/**
 * Final answers of the offline model, written from the tool results it received (never canned), so
 * the demo shows data that really came back from the workers, errors included.
 */
import type { ReceivedToolResult } from '@toolq/scripted-model';

export type Fields = Record<string, unknown>;

/** A successful JSON object result, or undefined for errors and anything else. */
export function parseResult(result: ReceivedToolResult | undefined): Fields | undefined {
  if (!result || result.isError) return undefined;
  try {
    const value: unknown = JSON.parse(result.content);
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as Fields)
      : undefined;
  } catch {
    return undefined;
  }
}

export const COMPETITORS = [
  { name: 'Jasper', url: 'jasper.ai' },
  { name: 'Copy.ai', url: 'copy.ai' },
  { name: 'Writesonic', url: 'writesonic.com' },
];

interface Row {
  name: string;
  site: Fields | undefined;
  funding: Fields | undefined;
  app: Fields | undefined;
}

function inputField(result: ReceivedToolResult, field: string): string {
  const input = result.input as Record<string, unknown> | undefined;
  return String(input?.[field] ?? '').toLowerCase();
}

function rowsFrom(results: readonly ReceivedToolResult[]): Row[] {
  const find = (tool: string, field: string, value: string) =>
    parseResult(results.find((r) => r.name === tool && inputField(r, field) === value.toLowerCase()));
  return COMPETITORS.map((c) => ({
    name: c.name,
    site: find('fetch_company_website', 'url', c.url),
    funding: find('get_funding_data', 'company_name', c.name),
    app: find('analyze_app_store', 'app_name', c.name),
  }));
}

const cell = (value: unknown) => (value === undefined || value === null ? 'n/a' : String(value));

/** `$131M` → 131. */
function millions(value: unknown): number {
  const m = /([\d.]+)\s*M/i.exec(String(value ?? ''));
  return m ? Number(m[1]) : 0;
}

export function competitorsAnswer(results: readonly ReceivedToolResult[]): string {
  const rows = rowsFrom(results);
  const errors = results.filter((r) => r.isError);
  const table = [
    '| Company | Total funding | Last round | App rating | Reviews | Top complaint | Pricing from |',
    '|---|---|---|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.name} | ${cell(r.funding?.total_funding)} | ${cell(r.funding?.last_round)} | ` +
        `${cell(r.app?.rating)} | ${cell(r.app?.reviews_count)} | ${cell(r.app?.top_complaint)} | ` +
        `${r.site ? `$${cell(r.site.pricing_from_usd)}/mo` : 'n/a'} |`,
    ),
  ];
  const best = <T>(pick: (r: Row) => number, label: (r: Row) => T) => {
    const ranked = rows.filter((r) => pick(r) > 0).sort((a, b) => pick(b) - pick(a));
    return ranked[0] ? label(ranked[0]) : undefined;
  };
  const funded = best(
    (r) => millions(r.funding?.total_funding),
    (r) => `${r.name} (${r.funding?.total_funding})`,
  );
  const rated = best(
    (r) => Number(r.app?.rating ?? 0),
    (r) => `${r.name} (${r.app?.rating}★)`,
  );
  const summary = [
    funded ? `${funded} is the best funded,` : 'Funding data was unavailable,',
    rated ? `and ${rated} has the best rated app.` : 'and no App Store data came back.',
  ].join(' ');
  const gaps =
    errors.length === 0
      ? 'All nine data points came back.'
      : `Missing data: ${errors.map((e) => `${e.name} ${JSON.stringify(e.input)} (${e.content})`).join('; ')}.`;
  return ['Comparison of Jasper, Copy.ai and Writesonic', '', ...table, '', summary, gaps].join('\n');
}
