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

export class Barrier implements Expirable {
  readonly done: Promise<SettledCall[]>;
  private readonly slots: (SettledCall | undefined)[];
  private remaining: number;
  private resolve!: (calls: SettledCall[]) => void;
  /** The deadline this barrier waits on in the clock (its earliest unanswered one). */
  private armedAt: number | undefined;

  constructor(
    readonly batchId: string,
    private readonly calls: readonly BarrierCall[],
    private readonly policy: FailurePolicy,
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

  /** First answer wins; returns false when the call already had one. */
  settle(index: number, result: CallResult, byCoordinator = false): boolean {
    if (this.slots[index] || index < 0 || index >= this.slots.length) return false;
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

  /** Answers the calls whose deadline has passed, then waits for the next one. */
  expire(): void {
    this.armedAt = undefined;
    const now = Date.now();
    for (const index of this.pendingIndexes()) {
      const call = this.calls[index];
      if (call && call.deadline <= now) {
        this.settle(
          index,
          this.coordinatorResult(index, 'timeout', messages.timeout(call.tool, call.timeoutMs)),
          true,
        );
      }
    }
    if (!this.isDone) this.arm();
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
