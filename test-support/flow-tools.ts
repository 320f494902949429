/**
 * Flow-controlled tools for tests (docs/flow-control.md). Each records, from its own side, when it
 * started and ended (this host's clock, the same for every worker process of a test) in the Redis
 * list `flowtest:events` of the worker's Redis (REDIS_URL), so that a test sees what really ran;
 * or, when TOOLQ_TEST_FLOW_FILE names a file, one JSON line per event in that file (on a Redis
 * Cluster, or across a Redis restart, where the list would be lost or out of reach).
 */
import { appendFileSync } from 'node:fs';
import { defineTool, RateLimitedError } from '@toolq/shared';
import { Redis } from 'ioredis';
import { z } from 'zod';
import { recordedLines } from './record-file.ts';
import { waitFor } from './wait-for.ts';

export const FLOW_EVENTS_KEY = 'flowtest:events';

export interface FlowEvent {
  tool: string;
  pid: number;
  tag: string;
  start: number;
  end?: number;
}

let redis: Redis | undefined;
const conn = () => {
  redis ??= new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:1', { maxRetriesPerRequest: 3 });
  return redis;
};

async function record(event: FlowEvent): Promise<void> {
  const file = process.env.TOOLQ_TEST_FLOW_FILE;
  // One write of one short line with O_APPEND: lines of several processes do not interleave.
  if (file) appendFileSync(file, `${JSON.stringify(event)}\n`);
  else await conn().rpush(FLOW_EVENTS_KEY, JSON.stringify(event));
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve();
    });
  });

const input = z.object({ ms: z.number().int().min(0).default(0), tag: z.string().default('') });

/** Runs `ms` and records its interval. */
async function timed(tool: string, args: z.output<typeof input>, signal: AbortSignal) {
  const start = Date.now();
  await record({ tool, pid: process.pid, tag: args.tag, start });
  await sleep(args.ms, signal);
  const end = Date.now();
  await record({ tool, pid: process.pid, tag: args.tag, start, end });
  return { start, end };
}

/**
 * Every tool's own bound on a call: the tests' batches set their deadlines (a tool's smaller
 * timeout would win, and the default of 30 s cut short the tests that wait out a stalled check).
 */
const TIMEOUT_MS = 180_000;

export default [
  defineTool({
    name: 'capped',
    description: 'Sleeps; at most 3 run at once fleet-wide.',
    timeoutMs: TIMEOUT_MS,
    input,
    concurrency: 3,
    run: (args, ctx) => timed('capped', args, ctx.signal),
  }),
  defineTool({
    name: 'rated',
    description: 'Sleeps; at most 4 start per second fleet-wide.',
    timeoutMs: TIMEOUT_MS,
    input,
    rateLimit: { max: 4, perMs: 1000 },
    run: (args, ctx) => timed('rated', args, ctx.signal),
  }),
  defineTool({
    name: 'single',
    description: 'Sleeps; one at a time fleet-wide.',
    timeoutMs: TIMEOUT_MS,
    input,
    concurrency: 1,
    run: (args, ctx) => timed('single', args, ctx.signal),
  }),
  defineTool({
    name: 'upstream',
    description: 'One at a time; the first call with a `refuse` tag answers 429 once (per tag).',
    timeoutMs: TIMEOUT_MS,
    input: input.extend({ refuseForMs: z.number().int().min(0).optional() }),
    concurrency: 1,
    run: async (args, ctx) => {
      if (args.refuseForMs !== undefined && (await conn().incr(`flowtest:refused:${args.tag}`)) === 1) {
        await record({ tool: 'upstream-429', pid: process.pid, tag: args.tag, start: Date.now() });
        throw new RateLimitedError('HTTP 429 from the test service', { retryAfterMs: args.refuseForMs });
      }
      return timed('upstream', args, ctx.signal);
    },
  }),
  defineTool({
    name: 'payment',
    description: 'At most once, one at a time; the first call with a `refuse` tag answers 429 once.',
    timeoutMs: TIMEOUT_MS,
    input: input.extend({ refuseForMs: z.number().int().min(0).optional() }),
    concurrency: 1,
    delivery: 'at-most-once',
    run: async (args, ctx) => {
      if (args.refuseForMs !== undefined && (await conn().incr(`flowtest:refused:${args.tag}`)) === 1)
        throw new RateLimitedError('HTTP 429 from the payment service', { retryAfterMs: args.refuseForMs });
      return timed('payment', args, ctx.signal);
    },
  }),
  defineTool({
    name: 'free',
    description: 'Sleeps, without limits.',
    timeoutMs: TIMEOUT_MS,
    input,
    run: (args, ctx) => timed('free', args, ctx.signal),
  }),
  defineTool({
    name: 'free2',
    description: 'Sleeps, without limits (a second one: a tool once limited stays flow-controlled).',
    timeoutMs: TIMEOUT_MS,
    input,
    run: (args, ctx) => timed('free2', args, ctx.signal),
  }),
];

/** The events a test's tools recorded, in the order written. */
export async function readFlowEvents(redisUrl: string): Promise<FlowEvent[]> {
  const client = new Redis(redisUrl);
  try {
    return (await client.lrange(FLOW_EVENTS_KEY, 0, -1)).map((raw) => JSON.parse(raw) as FlowEvent);
  } finally {
    client.disconnect();
  }
}

/** The events the tools wrote to `file` (TOOLQ_TEST_FLOW_FILE), in the order written. */
export function readFlowFile(file: string): FlowEvent[] {
  return recordedLines(file).map((line) => JSON.parse(line) as FlowEvent);
}

/**
 * Every start a tool's sliding log admitted, on Redis's clock: the log keeps each entry for the
 * window, so reading it every 100 ms sees them all. Stop it to get the times, ascending.
 */
export function watchAdmissions(redisUrl: string, startsKey: string): { stop(): Promise<number[]> } {
  const client = new Redis(redisUrl);
  const seen = new Map<string, number>();
  let running = true;
  const read = async () => {
    const flat = await client.zrange(startsKey, '0', '-1', 'WITHSCORES');
    for (let i = 0; i + 1 < flat.length; i += 2) seen.set(flat[i] as string, Number(flat[i + 1]));
  };
  const loop = (async () => {
    while (running) {
      await read();
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await read(); // the last starts, admitted while the loop slept
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      client.disconnect();
      return [...seen.values()].sort((a, b) => a - b);
    },
  };
}

/** The most of these times inside any window of `ms` (each time opens one). */
export function busiestWindow(times: readonly number[], ms: number): number {
  const sorted = [...times].sort((a, b) => a - b);
  let most = 0;
  for (const [i, t] of sorted.entries()) {
    let n = 0;
    for (let j = i; j < sorted.length && (sorted[j] as number) < t + ms; j++) n++;
    most = Math.max(most, n);
  }
  return most;
}

/** `n` tool_use blocks of the capped tool, tagged `<prefix>-<i>`, each sleeping `ms`. */
export const cappedCalls = (n: number, ms: number, prefix: string) =>
  Array.from({ length: n }, (_, i) => ({
    id: `${prefix}-${i}`,
    name: 'capped',
    input: { ms, tag: `${prefix}-${i}` },
  }));

/** Each finished run of the capped calls tagged `<prefix>-…`, as the tools recorded it in `file`. */
export const cappedRunsIn = (file: string, prefix: string) =>
  readFlowFile(file).filter(
    (e): e is Required<FlowEvent> =>
      e.tool === 'capped' && e.end !== undefined && e.tag.startsWith(`${prefix}-`),
  );

/** Until the dispatcher's catalog shows `count` live workers serving `tool`. */
export function waitForServing(
  dispatcher: { catalog: { refresh(): Promise<unknown>; list(): { name: string; liveWorkers: number }[] } },
  tool: string,
  count: number,
): Promise<unknown> {
  return waitFor(`${count} workers serving ${tool}`, async () => {
    await dispatcher.catalog.refresh();
    return dispatcher.catalog.list().find((t) => t.name === tool)?.liveWorkers === count;
  });
}
