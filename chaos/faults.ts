/**
 * The fault schedule: drawn from the seed alone, before anything runs, so one seed always plans
 * the same faults at the same offsets against the same targets (only when they land relative to
 * the load depends on the machine).
 */
import type { FaultKind } from './history.ts';

/** mulberry32: a small, fast, seedable PRNG (the run needs repeatability, not quality). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

export interface PlannedFault {
  /** Offset from the start of the load. */
  atMs: number;
  kind: FaultKind;
  /** Which worker or coordinator (by slot), or which cluster master (by its index among the masters). */
  slot: number;
  /** How long the fault holds: a stop, a pause, Redis down, a master down (not used by kills). */
  holdMs: number;
}

export interface PlanOptions {
  seed: number;
  durationMs: number;
  cluster: boolean;
  workers: number;
  coordinators: number;
  /** Mean gap between faults (default 6 s). */
  meanGapMs?: number;
}

const HOLD_MS: Record<FaultKind, [number, number]> = {
  worker_kill: [0, 0],
  worker_stop: [1_000, 4_000],
  coordinator_kill: [0, 0],
  redis_restart: [300, 1_500],
  // Longer than the cluster's node timeout, so a replica takes over before the master is back.
  cluster_master_kill: [3_000, 5_000],
  client_pause: [300, 1_500],
};

/**
 * Faults from 3 s after the start to 8 s before the end (so the last ones' effects are inside the
 * run), one at a time; the kinds go round in a seeded order, so a short run still meets each.
 */
export function planFaults(options: PlanOptions): PlannedFault[] {
  const random = prng(options.seed);
  const kinds: FaultKind[] = [
    'worker_kill',
    'worker_stop',
    'coordinator_kill',
    options.cluster ? 'cluster_master_kill' : 'redis_restart',
    'client_pause',
  ];
  for (let i = kinds.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [kinds[i], kinds[j]] = [kinds[j] as FaultKind, kinds[i] as FaultKind];
  }
  const meanGap = options.meanGapMs ?? 6_000;
  const out: PlannedFault[] = [];
  let at = 3_000;
  const last = options.durationMs - 8_000;
  for (let i = 0; at <= last; i++) {
    const kind = kinds[i % kinds.length] as FaultKind;
    const [lo, hi] = HOLD_MS[kind];
    const holdMs = Math.round(lo + random() * (hi - lo));
    const slots = kind.startsWith('worker')
      ? options.workers
      : kind === 'coordinator_kill'
        ? options.coordinators
        : 3;
    out.push({ atMs: Math.round(at), kind, slot: Math.floor(random() * slots), holdMs });
    // The next one no sooner than this one is undone, plus a random gap around the mean.
    at += holdMs + meanGap * (0.5 + random());
  }
  return out;
}

export function describeFault(f: PlannedFault): string {
  const target = f.kind.startsWith('worker')
    ? `worker ${f.slot}`
    : f.kind === 'coordinator_kill'
      ? `coordinator ${f.slot}`
      : f.kind === 'cluster_master_kill'
        ? `master ${f.slot}`
        : 'redis';
  const hold = f.holdMs > 0 ? ` for ${f.holdMs} ms` : '';
  return `+${(f.atMs / 1000).toFixed(1)}s ${f.kind} ${target}${hold}`;
}
