/**
 * Flow control (issue 19, docs/flow-control.md): what a flow-controlled call costs over a call of a
 * tool without limits (one call per batch, alternating), how well a tool at its cap keeps the cap
 * busy under a backlog (utilisation, and the gap from a call's end to the start of the call that
 * took its slot), and the busiest window of a rate-limited tool. Its own worker processes serve
 * test-support/flow-tools.ts under their own prefix; the tools' own start and end times are used.
 */
import { Dispatcher } from '@toolq/coordinator';
import type { Logger } from '@toolq/shared';
import { Redis } from 'ioredis';
import {
  busiestWindow,
  FLOW_EVENTS_KEY,
  type FlowEvent,
  readFlowEvents,
  watchAdmissions,
} from '../test-support/flow-tools.ts';
import { maxOverlap } from '../test-support/wait-for.ts';
import { startWorkerProcess, type WorkerProcess } from '../test-support/worker-process.ts';
import { type Summary, summarize } from './stats.ts';

const TOOLS = new URL('../test-support/flow-tools.ts', import.meta.url).pathname;
const PREFIX = 'flowbench';
/** flow-tools.ts's `capped` and `rated`. */
const CAP = 3;
const RATE = { max: 4, perMs: 1000 };

export interface FlowConfig {
  /** Batches of one call for each kind of tool (alternating). */
  overheadIterations: number;
  /** Calls of the capped tool in one batch (the backlog). */
  capCalls: number;
  /** How long each capped call runs. */
  callMs: number;
  /** Calls of the rate-limited tool in one batch. */
  rateCalls: number;
}

export interface FlowResult {
  workers: number;
  /** Batch wall time (ms), one call each: a tool without limits vs a capped one. */
  unlimitedMs: Summary;
  cappedMs: Summary;
  cap: number;
  capCalls: number;
  callMs: number;
  maxRunning: number;
  /** Busy slot time over cap × the backlog's span. */
  utilisation: number;
  /** From the end of call i to the start of call i + cap (ms): the slot's refill. */
  refillMs: Summary;
  /** The busiest window on Redis's clock (admissions), and as the tools recorded their starts. */
  rate: { max: number; perMs: number; worstWindow: number; worstWindowSeenByTools: number; calls: number };
}

const tools = (name: string, n: number, input: Record<string, unknown>, prefix: string) =>
  Array.from({ length: n }, (_, i) => ({
    id: `${prefix}-${i}`,
    name,
    input: { ...input, tag: `${prefix}-${i}` },
  }));

export async function measureFlow(redisUrl: string, config: FlowConfig, logger: Logger): Promise<FlowResult> {
  const workers: WorkerProcess[] = [];
  const redis = new Redis(redisUrl);
  const dispatcher = new Dispatcher({ redisUrl, prefix: PREFIX, logger });
  try {
    for (let i = 0; i < 2; i++)
      workers.push(await startWorkerProcess({ redisUrl, prefix: PREFIX, tools: TOOLS, concurrency: 16 }));
    await dispatcher.start();
    await redis.del(FLOW_EVENTS_KEY);
    const unlimited: number[] = [];
    const capped: number[] = [];
    for (let i = 0; i < config.overheadIterations; i++) {
      unlimited.push((await dispatcher.dispatch(tools('free', 1, {}, `o-free-${i}`))).wallMs);
      capped.push((await dispatcher.dispatch(tools('capped', 1, {}, `o-cap-${i}`))).wallMs);
    }
    await dispatcher.dispatch(tools('capped', config.capCalls, { ms: config.callMs }, 'backlog'), {
      timeoutMs: 600_000,
    });
    const admissions = watchAdmissions(redisUrl, `${PREFIX}:{tool=rated}:flow:starts`);
    await dispatcher.dispatch(tools('rated', config.rateCalls, {}, 'rate'), { timeoutMs: 600_000 });
    const admitted = await admissions.stop();
    const events = await readFlowEvents(redisUrl);
    const ended = (prefix: string) =>
      events.filter((e): e is Required<FlowEvent> => e.tag.startsWith(`${prefix}-`) && e.end !== undefined);
    const backlog = ended('backlog');
    const starts = backlog.map((e) => e.start).sort((a, b) => a - b);
    const ends = backlog.map((e) => e.end).sort((a, b) => a - b);
    const span = Math.max(...ends) - Math.min(...starts);
    const busy = backlog.reduce((sum, e) => sum + (e.end - e.start), 0);
    const refill = starts.slice(CAP).map((start, i) => start - (ends[i] as number));
    const rateStarts = ended('rate')
      .map((e) => e.start)
      .sort((a, b) => a - b);
    return {
      workers: workers.length,
      unlimitedMs: summarize(unlimited),
      cappedMs: summarize(capped),
      cap: CAP,
      capCalls: config.capCalls,
      callMs: config.callMs,
      maxRunning: maxOverlap(backlog),
      utilisation: busy / (CAP * span),
      refillMs: summarize(refill),
      rate: {
        ...RATE,
        worstWindow: busiestWindow(admitted, RATE.perMs),
        worstWindowSeenByTools: busiestWindow(rateStarts, RATE.perMs),
        calls: rateStarts.length,
      },
    };
  } finally {
    await dispatcher.close().catch(() => undefined);
    await Promise.all(workers.map((w) => w.stop()));
    redis.disconnect();
  }
}

/** The report's section. */
export function renderFlow(r: FlowResult, table: (head: string[], rows: string[][]) => string): string[] {
  const ms = (s: Summary) => `${s.p50.toFixed(1)} / ${s.p95.toFixed(1)}`;
  return [
    '## Flow control (issue 19)',
    '',
    `${r.workers} toolq worker processes serving test-support/flow-tools.ts (their own prefix); the tools' own start and end times. ` +
      `Utilisation: ${r.capCalls} calls of ${r.callMs} ms sent at once to a tool capped at ${r.cap}; it depends on the calls' length (the refill gap is paid once per call).`,
    '',
    table(
      ['measure', 'value'],
      [
        ['batch of 1 call, tool without limits: wall ms p50 / p95', ms(r.unlimitedMs)],
        [
          'batch of 1 call, capped tool (its own queue, admission, start mark): wall ms p50 / p95',
          ms(r.cappedMs),
        ],
        [
          'flow-control cost per call (p50 difference)',
          `${(r.cappedMs.p50 - r.unlimitedMs.p50).toFixed(1)} ms`,
        ],
        [`most calls running at once (cap ${r.cap})`, String(r.maxRunning)],
        [
          'cap utilisation under backlog (busy slot time / cap × span)',
          `${(r.utilisation * 100).toFixed(1)} %`,
        ],
        [
          'slot refill: end of a call → start of the next, ms p50 / p95 / max',
          `${ms(r.refillMs)} / ${r.refillMs.max.toFixed(1)}`,
        ],
        [
          `busiest ${r.rate.perMs} ms window of a ${r.rate.max}-per-${r.rate.perMs} ms tool (${r.rate.calls} calls)`,
          `${r.rate.worstWindow} admitted (Redis clock); ${r.rate.worstWindowSeenByTools} as the tools recorded their starts`,
        ],
      ],
    ),
    '',
  ];
}
