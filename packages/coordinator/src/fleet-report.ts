/**
 * The seed's performance report (per tool: calls, average, p95, max; overall success rate) over a
 * window of the whole fleet's calls, or one app's, read from the call log in Redis (see
 * @toolq/shared call-log). Shared by GET /v1/report (the caller's app) and `pnpm report` (the fleet).
 */
import { ToolqError } from '@toolq/shared';
import {
  CALL_LOG_RETENTION_MS,
  type CallLog,
  type CallLogWindow,
  histogramPercentile,
} from '@toolq/shared/internal';
import { z } from 'zod';
import { type BatchResult, UNKNOWN_TOOL_LABEL } from './batch-result.ts';
import { performanceReportSchema, rate } from './performance-report.ts';

export const DEFAULT_REPORT_WINDOW = '15m';

/** A run's PerformanceReport, over the window it covers; also the answer of GET /v1/report. */
export const fleetReportSchema = z.object({
  window: z.object({
    /** As asked, e.g. "15m". */
    requested: z.string(),
    /** ISO times of the minute buckets read (the window rounded out to whole minutes). */
    from: z.string(),
    to: z.string(),
  }),
  ...performanceReportSchema.shape,
});
export type FleetReport = z.infer<typeof fleetReportSchema>;

const UNITS: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * "90s", "15m", "2h", "1d" → ms; between one minute bucket and the retention. `unknown`: a query
 * string gives an array for `?window=15m&window=1h`.
 */
export function parseWindow(text: unknown): number {
  if (typeof text !== 'string') {
    throw new ToolqError('INVALID_REQUEST', 'window: give one window, once (like 15m), not a list');
  }
  const m = /^(\d{1,6})(s|m|h|d)$/.exec(text.trim());
  if (!m?.[1] || !m[2]) {
    throw new ToolqError('INVALID_REQUEST', `window: "${text}" is not a duration like 30s, 15m, 2h or 1d`);
  }
  const ms = Number(m[1]) * (UNITS[m[2]] ?? 0);
  if (ms <= 0 || ms > CALL_LOG_RETENTION_MS) {
    throw new ToolqError(
      'INVALID_REQUEST',
      `window: ${text} is outside 1s..${CALL_LOG_RETENTION_MS / 3_600_000}h (the call log keeps ${CALL_LOG_RETENTION_MS / 3_600_000} h)`,
    );
  }
  return ms;
}

/** Adds a batch's answered calls to the call log, the fleet's and its app's (the coordinator's one hook, per batch). */
export function recordBatch(log: CallLog, result: BatchResult, app: string): void {
  const at = Date.now();
  for (const call of result.calls) {
    // Unknown names come from callers: one name for all of them, as in the metrics.
    const tool = call.outcome === 'unknown_tool' ? UNKNOWN_TOOL_LABEL : call.tool;
    // A call's own time: its run on the worker, or how long it took to answer when it never ran.
    log.record(tool, call.runMs ?? call.latencyMs, call.outcome === 'ok', at, app, call.outcome);
  }
}

export function toReport(window: CallLogWindow, requested: string): FleetReport {
  const tools = [...window.tools]
    .map(([tool, t]) => ({
      tool,
      calls: t.calls,
      ok: t.ok,
      ...(t.unknown > 0 ? { unknown: t.unknown } : {}),
      ...(t.notStarted > 0 ? { notStarted: t.notStarted } : {}),
      avgMs: t.calls === 0 ? 0 : Math.round((10 * t.sumMs) / t.calls) / 10,
      p95Ms: Math.round(10 * histogramPercentile(t, 0.95)) / 10,
      maxMs: t.maxMs,
    }))
    .filter((t) => t.calls > 0)
    .sort((a, b) => b.calls - a.calls || a.tool.localeCompare(b.tool));
  const calls = tools.reduce((n, t) => n + t.calls, 0);
  const succeeded = tools.reduce((n, t) => n + t.ok, 0);
  const notStarted = tools.reduce((n, t) => n + (t.notStarted ?? 0), 0);
  return {
    window: { requested, from: new Date(window.from).toISOString(), to: new Date(window.to).toISOString() },
    tools,
    calls,
    succeeded,
    notStarted,
    successRate: rate(succeeded, calls, notStarted),
  };
}

/**
 * The fleet's report, or with `app` that app's calls only (plain producers' count as `default`'s).
 * This process's calls are flushed first (so its own last second shows); other processes' lag ≤ 1 s.
 */
export async function fleetReport(
  log: CallLog,
  window = DEFAULT_REPORT_WINDOW,
  app?: string,
): Promise<FleetReport> {
  const ms = parseWindow(window);
  await log.flush();
  return toReport(await log.read(ms, undefined, app), window);
}

/** The report as the seed prints it, with the window it covers. */
export function formatFleetReport(report: FleetReport): string {
  const s = (ms: number) => `${(ms / 1000).toFixed(3)}s`;
  const lines = [
    `=== Tool Call Performance Report (fleet, last ${report.window.requested}: ${report.window.from} .. ${report.window.to}) ===`,
  ];
  for (const t of report.tools) {
    lines.push(
      `${t.tool.padEnd(30)} calls=${t.calls}  avg=${s(t.avgMs)}  p95=${s(t.p95Ms)}  max=${s(t.maxMs)}${t.unknown ? `  outcome unknown=${t.unknown}` : ''}${t.notStarted ? `  not started=${t.notStarted}` : ''}`,
    );
  }
  if (report.tools.length === 0) lines.push('(no calls in this window)');
  const pct = (100 * report.successRate).toFixed(1);
  // Not-started calls never ran: they are neither successes nor failures.
  const answered = report.calls - report.notStarted;
  const apart = report.notStarted > 0 ? `; not started: ${report.notStarted}` : '';
  lines.push('', `Success rate: ${report.succeeded}/${answered} (${pct}%)${apart}`);
  return lines.join('\n');
}
