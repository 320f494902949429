/**
 * The chaos run's history: JSON lines, one file written by the driver (what it sent, what it got,
 * the faults) and one per worker process written by the tools (every start and end). Each write is
 * an appendFileSync, finished before the call goes on, so a line a process wrote survives its
 * SIGKILL; a process killed mid-call simply has a start without an end. Every process also
 * records its event-loop stalls (stalls.mjs).
 */
import { appendFileSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';

export const FAULT_KINDS = [
  'worker_kill',
  'worker_stop',
  'coordinator_kill',
  'redis_restart',
  'cluster_master_kill',
  'client_pause',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

const call = z.object({ key: z.string(), tool: z.string(), pid: z.number(), at: z.number() });
const answer = z.object({ id: z.string(), isError: z.boolean(), content: z.string() });

export const historyEvent = z.discriminatedUnion('type', [
  /** A tool began a call (`key` is its tool_use id); `attempt` from the worker's retries. */
  call.extend({ type: z.literal('call_start'), attempt: z.number() }),
  call.extend({ type: z.literal('call_end') }),
  call.extend({ type: z.literal('call_abort') }),
  /** A tool's declared delivery properties (none of toolq's tools declares them yet). */
  z.object({
    type: z.literal('tool_props'),
    tool: z.string(),
    atMostOnce: z.boolean().optional(),
    cap: z.number().int().min(1).optional(),
    at: z.number(),
  }),
  /** A fault, from when it was injected to when it was undone (restart done, SIGCONT, pause over). */
  z.object({
    type: z.literal('fault'),
    kind: z.enum(FAULT_KINDS),
    /** `worker:1`, `coordinator:0`, `redis`, `redis:<port>`. */
    target: z.string(),
    /** The process it hit (a worker's or coordinator's). */
    pid: z.number().optional(),
    at: z.number(),
    until: z.number(),
  }),
  z.object({
    type: z.literal('batch_sent'),
    batch: z.string(),
    coordinator: z.string(),
    at: z.number(),
    timeoutMs: z.number(),
    calls: z.array(z.object({ id: z.string(), tool: z.string() })),
  }),
  /** What the caller got: from the POST, or collected with GET from a coordinator after the POST failed. */
  z.object({
    type: z.literal('batch_answer'),
    batch: z.string(),
    via: z.enum(['post', 'collect']),
    coordinator: z.string(),
    at: z.number(),
    results: z.array(answer),
  }),
  /** The caller gave up: no coordinator answered the batch. */
  z.object({ type: z.literal('batch_lost'), batch: z.string(), at: z.number(), reason: z.string() }),
  z.object({
    type: z.literal('run_started'),
    run: z.string(),
    tag: z.string(),
    coordinator: z.string(),
    at: z.number(),
  }),
  /** A run's final state and its event stream as any coordinator serves it. */
  z.object({
    type: z.literal('run_finished'),
    run: z.string(),
    tag: z.string(),
    status: z.string(),
    at: z.number(),
    takeovers: z.number(),
    events: z.array(
      z.object({
        type: z.string(),
        at: z.number(),
        iteration: z.number().optional(),
        toolUseId: z.string().optional(),
        isError: z.boolean().optional(),
        /** run_started, run_resumed: the coordinator that owns the run from then (its URL). */
        coordinator: z.string().optional(),
      }),
    ),
  }),
  z.object({
    type: z.literal('run_lost'),
    run: z.string(),
    tag: z.string(),
    at: z.number(),
    reason: z.string(),
  }),
  /**
   * A process's event loop ran `ms` late, ending at `at` (stalls.mjs): `proc` is `driver`, a
   * coordinator's URL or `worker:<slot>`; `cpuMs` the CPU it used meanwhile (its own blocking).
   */
  z.object({
    type: z.literal('stall'),
    proc: z.string(),
    pid: z.number(),
    ms: z.number(),
    cpuMs: z.number(),
    at: z.number(),
  }),
  /**
   * The scripted model was asked for turn `turn` (0: the first) of the run tagged `tag`, by the
   * coordinator `asker` (its URL; each coordinator slot has a scripted model of its own).
   */
  z.object({
    type: z.literal('model_ask'),
    tag: z.string(),
    turn: z.number(),
    asker: z.string().optional(),
    at: z.number(),
  }),
]);
export type HistoryEvent = z.infer<typeof historyEvent>;
export type EventOf<T extends HistoryEvent['type']> = Extract<HistoryEvent, { type: T }>;

export const DRIVER_LOG = 'driver.jsonl';

export function appendEvent(file: string, event: HistoryEvent): void {
  appendFileSync(file, `${JSON.stringify(event)}\n`);
}

/**
 * Every `*.jsonl` of the run's directory, merged by time. A torn last line (a process killed in
 * the middle of a write) is skipped and counted, not fatal.
 */
export function readHistory(dir: string): { events: HistoryEvent[]; unreadable: number } {
  const events: HistoryEvent[] = [];
  let unreadable = 0;
  for (const name of readdirSync(dir).filter((n) => n.endsWith('.jsonl'))) {
    for (const line of readFileSync(join(dir, name), 'utf8').split('\n')) {
      if (!line.trim()) continue;
      try {
        const parsed = historyEvent.safeParse(JSON.parse(line));
        if (parsed.success) events.push(parsed.data);
        else unreadable++;
      } catch {
        unreadable++;
      }
    }
  }
  events.sort((a, b) => a.at - b.at);
  return { events, unreadable };
}
