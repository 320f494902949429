/**
 * The barrier of one batch: one slot per call, filled by the first answer (a worker's result, the
 * deadline, a cancellation), done when every slot is filled. Deadlines are a timer in this
 * process, so a batch answers on time whatever Redis and the workers do. Thousands of batches wait
 * at once, so a barrier keeps little: one entry in the process's deadline clock, for its earliest
 * unanswered deadline, and no promise of its own (its owner hears of the last answer through
 * BarrierLimits.onDone, one function for every barrier).
 */
import { type CallResult, CONTRACT_VERSION, type FailurePolicy, type Outcome } from '@toolq/shared';
import { firstLineOf, messages } from '@toolq/shared/internal';
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

/** What every barrier of a process shares: one object, not a copy (or a closure) per barrier. */
export interface BarrierLimits {
  /** Most bytes of result content one batch answers with; later results become errors. */
  maxResultBytes: number;
  lastLook?: LastLook;
  /** Called once per barrier, when its last call is answered (`barrier.answers` then holds them all). */
  onDone?: (barrier: Barrier) => void;
}

export class Barrier implements Expirable {
  private readonly slots: (SettledCall | undefined)[];
  private remaining: number;
  /**
   * The call whose deadline this barrier waits on in the clock (its earliest unanswered one), or -1.
   * An index, not the deadline itself: an epoch-ms number field costs a heap number of its own.
   */
  private armed = -1;
  /** Result content answered so far (bytes), against limits.maxResultBytes. */
  private resultBytes = 0;
  private looking = false;

  constructor(
    /** The dispatch's uid: what its jobs, record and cancellations are named by. */
    readonly uid: string,
    /** By index; also what the answer's tool_result ids come from (the caller's own tool_use ids). */
    readonly calls: readonly BarrierCall[],
    private readonly policy: FailurePolicy,
    private readonly limits: BarrierLimits = { maxResultBytes: Number.POSITIVE_INFINITY },
  ) {
    this.slots = new Array(calls.length).fill(undefined);
    this.remaining = calls.length;
    // A barrier without calls is done at once; no one is told (there is no answer to wait for).
    if (calls.length > 0) this.arm();
  }

  get isDone(): boolean {
    return this.remaining === 0;
  }

  /** Every call's answer, in order; only once the barrier is done. */
  get answers(): readonly SettledCall[] {
    if (!this.isDone) throw new Error(`barrier ${this.uid} still waits for ${this.remaining} call(s)`);
    return this.slots as SettledCall[];
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
    // The last answer finishes the barrier; cancelling the rest finishes it from inside that call.
    if (this.remaining === 0) this.finish();
    else if (this.policy === 'abort' && result.isError && result.outcome !== 'cancelled') {
      const reason = `${result.tool} (${result.toolUseId}) failed: ${firstLineOf(result.content)}`;
      this.cancelPending(`another call in this batch failed: ${reason}`);
    }
    return true;
  }

  /** Settles the calls a batch's record says were answered at dispatch (`answer`: unknown tool, no worker). */
  settleAnswered(calls: readonly { answer?: CallResult | undefined }[]): void {
    calls.forEach((call, index) => {
      if (call.answer) this.settle(index, call.answer, true);
    });
  }

  /** Answers every call still waiting as cancelled (abort policy, caller's signal, shutdown). */
  cancelPending(reason: string): void {
    for (const index of this.pendingIndexes()) {
      this.settle(index, this.coordinatorResult(index, 'cancelled', messages.cancelled(reason)), true);
    }
  }

  /**
   * Stops waiting for the calls still unanswered, without answering them (a durable run parks:
   * whoever resumes it collects the batch from its record). Its deadline leaves the clock.
   */
  stopWaiting(): void {
    const armed = this.calls[this.armed];
    if (armed) deadlineClock.delete(armed.deadline, this);
    this.armed = -1;
  }

  private arm(): void {
    const deadlineOf = (index: number) => this.calls[index]?.deadline ?? Number.POSITIVE_INFINITY;
    let next = -1;
    for (const index of this.pendingIndexes()) if (deadlineOf(index) < deadlineOf(next)) next = index;
    if (next < 0) return;
    this.armed = next;
    deadlineClock.add(deadlineOf(next), this);
  }

  /** Answers the calls whose deadline has passed (after a last look in Redis), then waits for the next one. */
  expire(): void {
    this.armed = -1;
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
        // A worker's result names its worker; one without is the coordinator's own (not started).
        for (const [index, result] of found) this.settle(index, result, result.worker === undefined);
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
    if (!this.isDone && this.armed < 0) this.arm();
  }

  coordinatorResult(index: number, outcome: Outcome, content: string): CallResult {
    const call = this.calls[index];
    return coordinatorResult({ toolUseId: call?.toolUseId ?? '', tool: call?.tool ?? '' }, outcome, content);
  }

  private finish(): void {
    const armed = this.calls[this.armed];
    if (armed) deadlineClock.delete(armed.deadline, this);
    this.armed = -1;
    this.limits.onDone?.(this);
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
