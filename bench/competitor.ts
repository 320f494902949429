/**
 * Benchmark 3: the competitor-analysis scenario: nine calls of 500 ms in one batch. Wall time vs
 * the slowest call, and speed-up vs running the nine one after another (the sum of the nine
 * measured run times), for toolq, the plain BullMQ barrier and in-process Promise.all.
 */
import type { Clients, System } from './barrier-overhead.ts';
import { runInProcess } from './in-process.ts';
import { type Summary, summarize } from './stats.ts';
import { runToolq, sleepBatch } from './toolq-runner.ts';

export interface CompetitorConfig {
  calls: number;
  sleepMs: number;
  iterations: number;
  lostTimeoutMs: number;
}

export interface CompetitorRow {
  system: System;
  wall: Summary;
  slowest: Summary;
  /** wall / slowest per batch. */
  wallOverSlowest: Summary;
  /** sum of run times / wall per batch. */
  speedUp: Summary;
  lost: number;
  errors: number;
}

export async function measureCompetitor(clients: Clients, cfg: CompetitorConfig): Promise<CompetitorRow[]> {
  const systems: System[] = ['toolq', 'plain', 'inproc'];
  const acc = Object.fromEntries(
    systems.map((s) => [
      s,
      {
        wall: [] as number[],
        slowest: [] as number[],
        ratio: [] as number[],
        speed: [] as number[],
        lost: 0,
        errors: 0,
      },
    ]),
  ) as Record<
    System,
    { wall: number[]; slowest: number[]; ratio: number[]; speed: number[]; lost: number; errors: number }
  >;
  const batch = sleepBatch(cfg.calls, cfg.sleepMs);
  for (let i = 0; i < cfg.iterations; i++) {
    const order = systems.map((_, k) => systems[(k + i) % systems.length] as System);
    for (const system of order) {
      const r =
        system === 'toolq'
          ? await runToolq(clients.dispatcher, batch, cfg.lostTimeoutMs)
          : system === 'plain'
            ? await clients.plain.dispatch(batch, cfg.lostTimeoutMs)
            : { ...(await runInProcess(batch)), lost: 0, errors: 0 };
      const a = acc[system];
      a.lost += r.lost;
      a.errors += r.errors;
      if (r.lost > 0 || r.errors > 0) continue;
      a.wall.push(r.wallMs);
      a.slowest.push(r.slowestRunMs);
      a.ratio.push(r.wallMs / r.slowestRunMs);
      a.speed.push(r.sumRunMs / r.wallMs);
    }
  }
  return systems.map((system) => {
    const a = acc[system];
    return {
      system,
      wall: summarize(a.wall),
      slowest: summarize(a.slowest),
      wallOverSlowest: summarize(a.ratio),
      speedUp: summarize(a.speed),
      lost: a.lost,
      errors: a.errors,
    };
  });
}
