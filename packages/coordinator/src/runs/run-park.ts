/**
 * When a durable run parks. A run whose turn has nothing left to wait for but calls held for
 * approval gives its run slot and its lease back instead of waiting in its owner for hours: the
 * owner stops waiting for the turn's batches without answering them (Dispatcher.leave: their
 * records, names, approvals and results stay in Redis), writes `run_parked` (fenced by its epoch)
 * and moves the run's job to BullMQ's delayed set, due a little after the soonest approval's
 * expiry. A decision or an expiry, on any coordinator, wakes it (run-wake.ts): whichever
 * coordinator takes the job claims the run (a new epoch) and resumes its saved turn the way a
 * takeover does: the model's response was saved before the calls went out, so it is not asked
 * for again, and the turn's batches are collected from their records, so the calls that ran are
 * not run again and the approved call, sent once by its decider, is waited for.
 *
 * The owner looks in Redis, not in its own barriers, because a resumed owner knows the turn only
 * from Redis too: every call of the turn's batches has a result in its record (or its deadline has
 * passed: a collector answers it as timed out), except calls held for an approval still pending.
 * It looks when something changes: a call of the turn finishes, an approval is requested, a turn
 * is resumed. An approval that expires within `minMs` is waited for here instead: parking it
 * would only wake the run again at once.
 */
import { type Logger, ToolqError } from '@toolq/shared';
import { createKeys, type Redis, readBatchMeta, readBatchOwner, readResults } from '@toolq/shared/internal';
import type { PendingTurn } from '../agent/types.ts';
import { clearWake } from './run-wake.ts';

/** How long after the soonest expiry a parked run's job is due anyway (the sweep answers it within ~1 s). */
const WAKE_AFTER_EXPIRY_MS = 2_000;
/** Debounce of the looks: a few calls finishing together cost one look. */
const LOOK_DELAY_MS = 200;
/** A look that could not tell yet (a record not written yet, a batch not waiting here yet) is retried. */
const RETRY_MS = 1_000;
const MAX_RETRIES = 30;

/** What the run parks for: its pending approvals, and when its job is due if nobody wakes it. */
export interface ParkPlan {
  approvalIds: string[];
  wakeAt: number;
  /** The turn's batches still waiting (those with held calls). */
  batches: string[];
}

/** The rejection of a parked run's batches: runAgent stops with it, the executor parks. */
export const PARKED = new ToolqError('CANCELLED', 'the run parks: it waits for approvals only');

export interface ParkWatchOptions {
  redis: Redis;
  prefix: string;
  runId: string;
  app: string;
  /** Park only when the soonest pending approval expires at least this far ahead. */
  minMs: number;
  approval: (id: string) => Promise<{ status: string; expiresAt: number } | undefined>;
  /** Stops waiting for the batch here (Dispatcher.leave with PARKED); false when it does not wait here. */
  leave: (batchName: string) => boolean;
  logger: Logger;
}

export class ParkWatch {
  /** Set once the run's batches were left: runAgent then rejects with PARKED. */
  parked: ParkPlan | undefined;
  private refs: PendingTurn['refs'] | undefined;
  /** The turn may have held calls (an approval was requested, or it was resumed): worth a look. */
  private mayHold = false;
  private timer: NodeJS.Timeout | undefined;
  private looking = false;
  private again = false;
  private retries = 0;

  constructor(private readonly o: ParkWatchOptions) {}

  /** The turn whose calls are out (undefined once its results are saved); `look`: a resumed turn. */
  turn(pending: PendingTurn | undefined, look = false): void {
    this.refs = pending?.refs;
    this.retries = 0;
    // Streaming dispatches calls (and may request approvals) before the response is saved.
    this.mayHold = pending ? this.mayHold || look : false;
    if (this.mayHold) this.poke();
  }

  /** An approval of the run was requested: the turn holds a call. */
  requested(): void {
    this.mayHold = true;
    this.poke();
  }

  /** A call of the turn finished: only a turn with held calls is looked at (most have none). */
  callFinished(): void {
    if (this.mayHold) this.poke();
  }

  /** Something of the turn changed: look again soon. */
  poke(delayMs = LOOK_DELAY_MS): void {
    if (!this.refs || this.parked) return;
    if (this.looking) {
      this.again = true;
      return;
    }
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.look().catch((err: Error) =>
        this.o.logger.warn({ err: err.message }, 'could not look at parking'),
      );
    }, delayMs);
    this.timer.unref();
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.refs = undefined;
  }

  private async look(): Promise<void> {
    const refs = this.refs;
    if (!refs || this.parked) return;
    this.looking = true;
    let retry = false;
    try {
      // Before the look: a wake-up from here on is seen after the park (run-wake.ts).
      await clearWake(this.o.redis, this.o.prefix, this.o.runId);
      const plan = await this.plan(refs);
      if (plan === 'later') retry = true;
      else if (plan && this.refs === refs) {
        this.parked = plan;
        let left = false;
        for (const batchName of plan.batches) left = this.o.leave(batchName) || left;
        if (!left) {
          this.parked = undefined; // a resumed turn's batch not collected yet
          retry = true;
        }
      }
    } finally {
      this.looking = false;
    }
    if (this.again) {
      this.again = false;
      this.poke();
    } else if (retry && this.retries++ < MAX_RETRIES) this.poke(RETRY_MS);
  }

  /** A plan when the turn waits for pending approvals only; undefined when not; 'later' when it cannot tell yet. */
  private async plan(refs: PendingTurn['refs']): Promise<ParkPlan | undefined | 'later'> {
    const { redis, app } = this.o;
    const keys = createKeys(this.o.prefix);
    const now = Date.now();
    const approvalIds: string[] = [];
    const batches: string[] = [];
    for (const batchName of new Set(Object.values(refs).map((r) => r.batchId))) {
      const owner = await readBatchOwner(redis, keys.batchName(app, batchName));
      const batchKey = owner && keys.batch(owner.coordinatorId, owner.uid);
      const meta = batchKey ? await readBatchMeta(redis, batchKey) : undefined;
      if (!batchKey || !meta) return 'later'; // recorded as it is sent, not before
      const results = await readResults(
        redis,
        batchKey,
        meta.calls.map((_, index) => index),
      );
      let held = false;
      for (const [index, call] of meta.calls.entries()) {
        if (call.answer || results.has(index)) continue;
        if (call.approval) {
          approvalIds.push(call.approval);
          held = true;
        } else if (call.deadline > now) return undefined; // a call still runs
      }
      if (held) batches.push(batchName);
    }
    if (approvalIds.length === 0) return undefined;
    const approvals = await Promise.all(approvalIds.map((id) => this.o.approval(id)));
    let soonest = Number.POSITIVE_INFINITY;
    for (const a of approvals) {
      if (!a) return 'later'; // requested just after its batch was sent
      if (a.status !== 'pending') return undefined; // decided: its call runs, or its answer is coming
      soonest = Math.min(soonest, a.expiresAt);
    }
    if (soonest - now < this.o.minMs) return undefined;
    return { approvalIds, wakeAt: soonest + WAKE_AFTER_EXPIRY_MS, batches };
  }
}
