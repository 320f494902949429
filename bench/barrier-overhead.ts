/**
 * Benchmark 1: barrier overhead (wall time of a batch minus its slowest call) for batches of
 * no-op calls, toolq vs the plain BullMQ + QueueEvents barrier vs in-process Promise.all, and the
 * completions each loses, both in a burst right after start-up and in steady state.
 */
import { Dispatcher } from '@toolq/coordinator';
import type { Logger } from '@toolq/shared';
import { runInProcess } from './in-process.ts';
import { PlainBarrier } from './plain-barrier.ts';
import { type Summary, summarize } from './stats.ts';
import { echoBatch, runToolq } from './toolq-runner.ts';

export type System = 'toolq' | 'plain' | 'inproc';
export const SYSTEM_LABEL: Record<System, string> = {
  toolq: 'toolq Dispatcher',
  plain: 'plain BullMQ + QueueEvents',
  inproc: 'in-process Promise.all',
};

export interface StartupConfig {
  /** Calls submitted at once right after the client is created. */
  calls: number;
  batchSize: number;
  /** A call not answered within this long is lost. */
  lostTimeoutMs: number;
}

export interface StartupResult {
  calls: number;
  batchSize: number;
  toolq: { lost: number; errors: number; wallMs: number };
  /** `lostButCompleted`: lost calls whose job a worker did complete (the event was missed). */
  plain: { lost: number; lostButCompleted: number; errors: number; wallMs: number };
}

export interface Clients {
  dispatcher: Dispatcher;
  plain: PlainBarrier;
}

/**
 * Creates the toolq and plain clients and, at once, submits a burst through each: the plain one
 * right after `new QueueEvents()` (as a naive user would), toolq right after `await start()`
 * (its documented contract). The clients stay in use for the later benchmarks.
 */
export async function measureStartup(
  redisUrl: string,
  cfg: StartupConfig,
  logger: Logger,
): Promise<{ clients: Clients; startup: StartupResult }> {
  const batches = Math.max(1, Math.ceil(cfg.calls / cfg.batchSize));
  const calls = batches * cfg.batchSize;

  const plain = new PlainBarrier(redisUrl);
  let t0 = performance.now();
  const plainResults = await Promise.all(
    Array.from({ length: batches }, (_, b) => plain.dispatch(echoBatch(cfg.batchSize, b), cfg.lostTimeoutMs)),
  );
  const plainWall = performance.now() - t0;
  const lostIds = plainResults.flatMap((r) => r.lostJobIds);

  const dispatcher = new Dispatcher({ redisUrl, logger });
  await dispatcher.start();
  t0 = performance.now();
  const toolqResults = await Promise.all(
    Array.from({ length: batches }, (_, b) =>
      runToolq(dispatcher, echoBatch(cfg.batchSize, b), cfg.lostTimeoutMs),
    ),
  );
  const toolqWall = performance.now() - t0;

  const sum = <T>(xs: T[], f: (x: T) => number) => xs.reduce((n, x) => n + f(x), 0);
  return {
    clients: { dispatcher, plain },
    startup: {
      calls,
      batchSize: cfg.batchSize,
      toolq: {
        lost: sum(toolqResults, (r) => r.lost),
        errors: sum(toolqResults, (r) => r.errors),
        wallMs: toolqWall,
      },
      plain: {
        lost: lostIds.length,
        lostButCompleted: await plain.countCompleted(lostIds),
        errors: sum(plainResults, (r) => r.errors),
        wallMs: plainWall,
      },
    },
  };
}

export interface OverheadConfig {
  batchSizes: number[];
  /** Measured batches per system and size (after warm-up). */
  iterations: Record<number, number>;
  warmup: number;
  /** Systems take turns in blocks of this many batches, so drift on a shared machine hits all alike. */
  block: number;
  lostTimeoutMs: number;
}

export interface OverheadRow {
  size: number;
  system: System;
  overhead: Summary;
  wall: Summary;
  calls: number;
  lost: number;
  errors: number;
}

export async function measureOverhead(clients: Clients, cfg: OverheadConfig): Promise<OverheadRow[]> {
  const rows: OverheadRow[] = [];
  for (const size of cfg.batchSizes) {
    const iterations = cfg.iterations[size] ?? 50;
    const samples: Record<System, { overhead: number[]; wall: number[]; lost: number; errors: number }> = {
      toolq: { overhead: [], wall: [], lost: 0, errors: 0 },
      plain: { overhead: [], wall: [], lost: 0, errors: 0 },
      inproc: { overhead: [], wall: [], lost: 0, errors: 0 },
    };
    const once = async (system: System, record: boolean, tag: number) => {
      const calls = echoBatch(size, tag);
      const r =
        system === 'toolq'
          ? await runToolq(clients.dispatcher, calls, cfg.lostTimeoutMs)
          : system === 'plain'
            ? await clients.plain.dispatch(calls, cfg.lostTimeoutMs)
            : { ...(await runInProcess(calls)), lost: 0, errors: 0 };
      if (!record) return;
      const s = samples[system];
      s.lost += r.lost;
      s.errors += r.errors;
      // A batch that lost a call took the whole timeout: it counts as lost, not as a latency sample.
      if (r.lost > 0) return;
      s.wall.push(r.wallMs);
      s.overhead.push(Math.max(0, r.wallMs - r.slowestRunMs));
    };
    const systems: System[] = ['toolq', 'plain', 'inproc'];
    for (const system of systems) for (let i = 0; i < cfg.warmup; i++) await once(system, false, i);
    let done = 0;
    let round = 0;
    while (done < iterations) {
      const n = Math.min(cfg.block, iterations - done);
      // Rotate who goes first, so none always runs right after another's burst of work.
      const order = systems.map((_, i) => systems[(i + round) % systems.length] as System);
      for (const system of order) for (let i = 0; i < n; i++) await once(system, true, done + i);
      done += n;
      round++;
    }
    for (const system of systems) {
      const s = samples[system];
      rows.push({
        size,
        system,
        overhead: summarize(s.overhead),
        wall: summarize(s.wall),
        calls: iterations * size,
        lost: s.lost,
        errors: s.errors,
      });
    }
  }
  return rows;
}
