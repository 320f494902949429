/**
 * Steady load for failover tests: a batch every `everyMs` (open loop: a slow answer never slows
 * the load down), each checked as it answers: one result per call, in order, ids matching, and
 * answered by its deadline. What a fault costs is read off the record: how many calls came back
 * is_error (and why), and how long until every batch succeeded again.
 */
import type { Dispatcher, ToolUse } from '@toolq/coordinator';
import { waitFor } from './wait-for.ts';

/**
 * The failover tests' batch: four calls over two pools (the diagnostics tools in one, the test
 * tools in the other), so a fault on either pool's master shows.
 */
export const steadyBatch = (n: number): ToolUse[] => [
  { id: `e${n}`, name: 'diag_echo', input: { value: n } },
  { id: `s${n}`, name: 'diag_sleep', input: { ms: 20 } },
  { id: `c${n}`, name: 'test_counted', input: { ms: 10 } },
  { id: `d${n}`, name: 'test_counted', input: { ms: 10 } },
];

export interface BatchRecord {
  startedAt: number;
  answeredAt: number;
  ok: boolean;
  errors: string[];
  /** Results out of order, missing or with wrong ids, or an answer past the deadline. */
  broken: string | undefined;
}

export interface LoadReport {
  batches: BatchRecord[];
  calls: number;
  isErrorCalls: number;
  /** First line of each is_error message → how many. */
  errorKinds: Record<string, number>;
  broken: string[];
  /** Readiness samples (every 250 ms) that said not ready. */
  notReadySamples: number;
  readySamples: number;
}

export interface SteadyLoad {
  /**
   * Waits until `n` batches started from now on were answered, the latest `n` of them all ok: the
   * fleet has healed. What a test waits for once a fault is over (the promotion, the demotion)
   * instead of a fixed few seconds, which a loaded machine may not heal in.
   */
  healed(n?: number): Promise<void>;
  stop(): Promise<LoadReport>;
}

/** How late past its deadline a batch may answer on a loaded 2-core machine (event-loop lag). */
const DEADLINE_SLACK_MS = 2_000;

export function startSteadyLoad(
  dispatcher: Dispatcher,
  options: { everyMs: number; timeoutMs: number; batch: (n: number) => ToolUse[] },
): SteadyLoad {
  const records: BatchRecord[] = [];
  const inFlight = new Set<Promise<void>>();
  let readiness = { ready: 0, notReady: 0 };
  let n = 0;
  const fire = () => {
    const uses = options.batch(n++);
    const startedAt = Date.now();
    const done = dispatcher
      .dispatch(uses, { timeoutMs: options.timeoutMs })
      .then(
        (result) => {
          const answeredAt = Date.now();
          const errors = result.toolResults.flatMap((r) =>
            r.is_error ? [typeof r.content === 'string' ? (r.content.split('\n')[0] ?? '') : 'blocks'] : [],
          );
          const ids = result.toolResults.map((r) => r.tool_use_id).join(',');
          const expected = uses.map((u) => u.id).join(',');
          let broken: string | undefined;
          if (ids !== expected) broken = `results ${ids} for calls ${expected}`;
          else if (answeredAt - startedAt > options.timeoutMs + DEADLINE_SLACK_MS)
            broken = `answered after ${answeredAt - startedAt} ms (timeout ${options.timeoutMs} ms)`;
          records.push({ startedAt, answeredAt, ok: errors.length === 0, errors, broken });
        },
        (err: Error) => {
          records.push({
            startedAt,
            answeredAt: Date.now(),
            ok: false,
            errors: [],
            broken: `rejected: ${err.message}`,
          });
        },
      )
      .finally(() => inFlight.delete(done));
    inFlight.add(done);
  };
  const timer = setInterval(fire, options.everyMs);
  const sampling = setInterval(() => {
    void dispatcher.isReady().then((ready) => {
      if (ready) readiness.ready++;
      else readiness.notReady++;
    });
  }, 250);
  return {
    async healed(n = 10) {
      const since = Date.now();
      await waitFor(
        `${n} batches in a row to succeed after the fault`,
        () => {
          const answered = records
            .filter((r) => r.startedAt > since)
            .sort((a, b) => a.startedAt - b.startedAt);
          return answered.length >= n && answered.slice(-n).every((r) => r.ok);
        },
        { timeoutMs: 60_000, intervalMs: 100 },
      );
    },
    async stop() {
      clearInterval(timer);
      clearInterval(sampling);
      // Every batch answers by its deadline; waiting for all of them is bounded by that.
      await Promise.all(inFlight);
      records.sort((a, b) => a.startedAt - b.startedAt);
      const errorKinds: Record<string, number> = {};
      for (const r of records) for (const e of r.errors) errorKinds[e] = (errorKinds[e] ?? 0) + 1;
      const report: LoadReport = {
        batches: records,
        calls: n * options.batch(0).length,
        isErrorCalls: records.reduce((sum, r) => sum + r.errors.length, 0),
        errorKinds,
        broken: records.flatMap((r) => (r.broken ? [r.broken] : [])),
        notReadySamples: readiness.notReady,
        readySamples: readiness.ready,
      };
      readiness = { ready: 0, notReady: 0 };
      return report;
    },
  };
}

/**
 * From the fault to the start of the run of successful batches that lasts to the end: how long
 * the service took to heal (0 when nothing failed after the fault).
 */
export function healingMs(report: LoadReport, faultAt: number): number {
  const after = report.batches.filter((b) => b.answeredAt >= faultAt);
  let lastBad = -1;
  after.forEach((b, i) => {
    if (!b.ok || b.broken) lastBad = i;
  });
  if (lastBad === -1) return 0;
  const healed = after[lastBad + 1];
  return healed ? Math.max(0, healed.startedAt - faultAt) : Number.POSITIVE_INFINITY;
}

export function summariseLoad(label: string, report: LoadReport, faultAt: number): string {
  const heal = healingMs(report, faultAt);
  const slowest = Math.max(0, ...report.batches.map((b) => b.answeredAt - b.startedAt));
  return (
    `${label}: ${report.batches.length} batches, ${report.calls} calls, ${report.isErrorCalls} is_error ` +
    `${JSON.stringify(report.errorKinds)}, healed ${Number.isFinite(heal) ? `${heal} ms` : 'never'} after the fault, ` +
    `slowest batch ${slowest} ms, ` +
    `readiness ${report.notReadySamples} not-ready / ${report.readySamples} ready samples`
  );
}
