/**
 * The barrier of one batch: one slot per call, filled by the first answer (a worker's result, the
 * deadline, a cancellation), resolved when every slot is filled. Deadlines are a timer in this
 * process, so a batch answers on time whatever Redis and the workers do. Thousands of batches wait
 * at once, so a barrier keeps little: one entry in the process's deadline clock, for its earliest
 * unanswered deadline.
 */
import {
  type CallResult,
  CONTRACT_VERSION,
  type FailurePolicy,
  firstLineOf,
  messages,
  type Outcome,
} from '@toolq/shared';
import { deadlineClock, type Expirable } from './deadline-clock.ts';

export interface BarrierCall {
  index: number;
  toolUseId: string;
  tool: string;
  /** Epoch ms. */
  deadline: number;
  timeoutMs: number;
}

export interface SettledCall {
  result: CallResult;
  /** Epoch ms when this coordinator learnt the answer. */
  settledAt: number;
  /** True when this coordinator answered it (deadline, cancellation) rather than a worker. */
  byCoordinator: boolean;
}

/**
 * Asked at a deadline, before the calls due are answered as timed out: the results Redis already
 * holds for them. A result that a worker wrote before its deadline is a result, even when this
 * process could not read its notification in time (a GC pause, a stopped process, a busy loop).
 * Resolves within a short bound whatever Redis does.
 */
export type LastLook = (
  barrier: Barrier,
  indexes: readonly number[],
) => Promise<ReadonlyMap<number, CallResult>>;

export interface BarrierLimits {
  /** Most bytes of result content one batch answers with; later results become errors. */
  maxResultBytes: number;
  lastLook?: LastLook;
}

export class Barrier implements Expirable {
  readonly done: Promise<SettledCall[]>;
  private readonly slots: (SettledCall | undefined)[];
  private remaining: number;
  private resolve!: (calls: SettledCall[]) => void;
  /** The deadline this barrier waits on in the clock (its earliest unanswered one). */
  private armedAt: number | undefined;
  /** Result content answered so far (bytes), against limits.maxResultBytes. */
  private resultBytes = 0;
  private looking = false;

  constructor(
    /** The dispatch's uid: what its jobs, record and cancellations are named by. */
    readonly batchId: string,
    private readonly calls: readonly BarrierCall[],
    private readonly policy: FailurePolicy,
    private readonly limits: BarrierLimits = { maxResultBytes: Number.POSITIVE_INFINITY },
  ) {
    this.slots = new Array(calls.length).fill(undefined);
    this.remaining = calls.length;
    this.done = new Promise((resolve) => {
      this.resolve = resolve;
    });
    if (calls.length === 0) this.finish();
    else this.arm();
  }

  get isDone(): boolean {
    return this.remaining === 0;
  }

  pendingIndexes(): number[] {
    const out: number[] = [];
    this.slots.forEach((slot, i) => {
      if (!slot) out.push(i);
    });
    return out;
  }

  isSettled(index: number): boolean {
    return this.slots[index] !== undefined;
  }

  /** First answer wins; returns false when the call already had one. */
  settle(index: number, result: CallResult, byCoordinator = false): boolean {
    if (this.slots[index] || index < 0 || index >= this.slots.length) return false;
    const bytes = contentBytes(result.content);
    if (this.resultBytes + bytes > this.limits.maxResultBytes) {
      // The model cannot take an answer this large and the process should not hold it.
      result = this.coordinatorResult(
        index,
        'error',
        messages.batchTooLarge(result.tool, bytes, this.limits.maxResultBytes),
      );
    } else this.resultBytes += bytes;
    this.slots[index] = { result, settledAt: Date.now(), byCoordinator };
    this.remaining--;
    if (this.policy === 'abort' && result.isError && result.outcome !== 'cancelled') {
      const reason = `${result.tool} (${result.toolUseId}) failed: ${firstLineOf(result.content)}`;
      this.cancelPending(`another call in this batch failed: ${reason}`);
    }
    if (this.remaining === 0) this.finish();
    return true;
  }

  /** Answers every call still waiting as cancelled (abort policy, caller's signal, shutdown). */
  cancelPending(reason: string): void {
    for (const index of this.pendingIndexes()) {
      this.settle(index, this.coordinatorResult(index, 'cancelled', messages.cancelled(reason)), true);
    }
  }

  private arm(): void {
    let next = Number.POSITIVE_INFINITY;
    for (const index of this.pendingIndexes()) next = Math.min(next, this.calls[index]?.deadline ?? next);
    if (next === Number.POSITIVE_INFINITY) return;
    this.armedAt = next;
    deadlineClock.add(next, this);
  }

  /** Answers the calls whose deadline has passed (after a last look in Redis), then waits for the next one. */
  expire(): void {
    this.armedAt = undefined;
    const now = Date.now();
    const due = this.pendingIndexes().filter((index) => (this.calls[index]?.deadline ?? now) <= now);
    const { lastLook } = this.limits;
    if (due.length === 0 || !lastLook || this.looking) {
      this.timeOut(due);
      return;
    }
    this.looking = true;
    lastLook(this, due)
      .catch(() => new Map<number, CallResult>())
      .then((found) => {
        this.looking = false;
        for (const [index, result] of found) this.settle(index, result);
        this.timeOut(due);
      });
  }

  private timeOut(indexes: readonly number[]): void {
    for (const index of indexes) {
      const call = this.calls[index];
      if (!call || this.slots[index]) continue;
      this.settle(
        index,
        this.coordinatorResult(index, 'timeout', messages.timeout(call.tool, call.timeoutMs)),
        true,
      );
    }
    if (!this.isDone && this.armedAt === undefined) this.arm();
  }

  coordinatorResult(index: number, outcome: Outcome, content: string): CallResult {
    const call = this.calls[index];
    return coordinatorResult({ toolUseId: call?.toolUseId ?? '', tool: call?.tool ?? '' }, outcome, content);
  }

  private finish(): void {
    if (this.armedAt !== undefined) deadlineClock.delete(this.armedAt, this);
    this.armedAt = undefined;
    this.resolve(this.slots as SettledCall[]);
  }
}

function contentBytes(content: CallResult['content']): number {
  return typeof content === 'string'
    ? Buffer.byteLength(content)
    : Buffer.byteLength(JSON.stringify(content));
}

/** An answer the coordinator gives itself: unknown tool, no worker, deadline, cancellation. */
export function coordinatorResult(
  call: { toolUseId: string; tool: string },
  outcome: Outcome,
  content: string,
): CallResult {
  return {
    v: CONTRACT_VERSION,
    toolUseId: call.toolUseId,
    tool: call.tool,
    outcome,
    content,
    isError: outcome !== 'ok',
    attempts: 0,
  };
}
