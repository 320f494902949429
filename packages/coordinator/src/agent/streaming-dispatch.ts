/**
 * The tool calls of one model turn. With streaming, each `tool_use` block is dispatched on its own
 * the moment it is complete (its own small batch); without, all blocks go out as one batch. Either
 * way `settle()` answers in the order of the blocks, one result per block, which is what the next
 * user message must hold.
 *
 * The `abort` failure policy spans the per-block batches through one AbortController: the first
 * failure cancels every other call of the turn, including calls dispatched after it.
 */

import { ToolqError, type ToolResultBlock } from '@toolq/shared';
import { firstLineOf, messages, raceSignal } from '@toolq/shared/internal';
import type { BatchResult, CallStats } from '../batch-result.ts';
import type { DispatchOptions, ToolUse } from '../dispatcher.ts';
import type { AgentDispatcher, AgentEvent, BatchRef, ToolCallRecord } from './types.ts';

/** Tool names a refusal lists at most. */
const MAX_NAMES_LISTED = 30;

export interface TurnDispatchOptions {
  dispatcher: AgentDispatcher;
  iteration: number;
  /** Epoch ms the run started; event and record times are relative to it. */
  runStartedAt: number;
  dispatch: Pick<DispatchOptions, 'timeoutMs' | 'failurePolicy' | 'maxRetries' | 'priority' | 'approval'>;
  /** The run's signal: aborting it cancels every call of the turn. */
  signal?: AbortSignal;
  emit: (event: AgentEvent) => void;
  /** Durable runs: the name of the turn's n-th batch (of these calls), so that a successor can collect it. */
  batchName?: (n: number, toolUseIds: readonly string[]) => string;
  /** Durable runs: awaited before a named batch is sent (AgentPersistence.beforeDispatch). */
  beforeDispatch?: (batchName: string) => Promise<boolean>;
  /** The app the batches belong to (durable runs: the run's app). */
  app?: string;
  /**
   * The tools offered to the model this run: a `tool_use` of any other name is answered `is_error`
   * without being dispatched, so the model cannot reach a tool of the fleet the run did not give it.
   */
  offered: ReadonlySet<string>;
}

interface Answer {
  block: ToolResultBlock;
  record: ToolCallRecord;
  settledAt: number;
}

export interface TurnToolResults {
  /** In the order asked for, one per tool_use. */
  toolResults: ToolResultBlock[];
  calls: ToolCallRecord[];
  /** Epoch ms of the first dispatch and of the last answer (both undefined without calls). */
  firstDispatchAt?: number;
  lastAnswerAt?: number;
}

export class TurnDispatch {
  private readonly answers = new Map<string, Promise<Answer>>();
  private readonly cancel = new AbortController();
  private readonly signal: AbortSignal;
  private firstDispatchAt: number | undefined;
  /** Where each call went (only with `batchName`): saved before the calls can be lost. */
  private readonly refs = new Map<string, BatchRef>();
  private batches = 0;
  private planned: { batchName: string; uses: readonly ToolUse[] } | undefined;

  constructor(private readonly options: TurnDispatchOptions) {
    this.signal = options.signal ? AbortSignal.any([this.cancel.signal, options.signal]) : this.cancel.signal;
  }

  has(toolUseId: string): boolean {
    return this.answers.has(toolUseId);
  }

  get size(): number {
    return this.answers.size;
  }

  /** Dispatches one call now, as its own batch (streaming early dispatch). */
  add(use: ToolUse, early: boolean): void {
    if (this.answers.has(use.id)) return;
    if (!this.options.offered.has(use.name)) {
      this.refuse(use);
      return;
    }
    const batch = this.start([use], early);
    this.track(
      use,
      early,
      batch.then((result) => ({ result, index: 0 })),
    );
  }

  /**
   * Names the batch the calls not yet dispatched will go in, without sending it, so that where
   * every call went can be saved first. Answers the refs of all `order`.
   */
  plan(order: readonly ToolUse[]): Record<string, BatchRef> {
    const fresh = this.offeredOnly(order);
    if (this.options.batchName && fresh.length > 0) {
      const batchName = this.options.batchName(
        this.batches++,
        fresh.map((u) => u.id),
      );
      this.planned = { batchName, uses: fresh };
      fresh.forEach((use, index) => {
        this.refs.set(use.id, { batchId: batchName, index });
      });
    }
    const refs: Record<string, BatchRef> = {};
    for (const use of order) {
      const ref = this.refs.get(use.id);
      if (ref) refs[use.id] = ref;
    }
    return refs;
  }

  /**
   * Takes over the calls of a saved turn: each batch is collected (results already written come
   * back, calls still running are waited for), and one that was never sent is sent now.
   */
  resume(order: readonly ToolUse[], refs: Readonly<Record<string, BatchRef>>): void {
    const byBatch = new Map<string, ToolUse[]>();
    for (const use of order) {
      const ref = refs[use.id];
      // Refused calls were never given a batch (plan() and start() give one to every dispatched call).
      if (!ref && !this.options.offered.has(use.name)) {
        this.refuse(use);
        continue;
      }
      if (!ref) throw new Error(`the saved turn has no batch for tool_use ${use.id}`);
      const uses = byBatch.get(ref.batchId) ?? [];
      uses[ref.index] = use;
      byBatch.set(ref.batchId, uses);
    }
    for (const [batchName, uses] of byBatch) {
      const { dispatcher } = this.options;
      const app = this.options.app === undefined ? {} : { app: this.options.app };
      const collected = dispatcher.collect ? dispatcher.collect(batchName, app) : Promise.resolve(undefined);
      const batch = collected.then((found) => found ?? this.start(uses, false, batchName, true));
      uses.forEach((use, index) => {
        this.track(
          use,
          false,
          batch.then((result) => ({ result, index })),
        );
      });
    }
  }

  /** Dispatches calls together as one batch. */
  addBatch(uses: readonly ToolUse[]): void {
    const fresh = this.offeredOnly(uses);
    if (fresh.length === 0) return;
    const planned = this.planned;
    this.planned = undefined;
    if (planned && sameUses(planned.uses, fresh)) {
      const batch = this.start(fresh, false, planned.batchName);
      fresh.forEach((use, index) => {
        this.track(
          use,
          false,
          batch.then((result) => ({ result, index })),
        );
      });
      return;
    }
    const batch = this.start(fresh, false);
    fresh.forEach((use, index) => {
      this.track(
        use,
        false,
        batch.then((result) => ({ result, index })),
      );
    });
  }

  /** Answers every call still running as cancelled (the turn was dropped or the run stopped). */
  cancelAll(reason: string): void {
    if (!this.cancel.signal.aborted) this.cancel.abort(reason);
  }

  async settle(order: readonly { id: string }[]): Promise<TurnToolResults> {
    const all = Promise.all(
      order.map((use) => {
        const answer = this.answers.get(use.id);
        if (!answer) throw new Error(`tool_use ${use.id} was never dispatched`);
        return answer;
      }),
    );
    // A collected batch (resume) does not listen to the run's signal: a cancelled run stops waiting.
    const answers = await untilAborted(all, this.options.signal);
    return {
      toolResults: answers.map((a) => a.block),
      calls: answers.map((a) => a.record),
      ...(this.firstDispatchAt === undefined ? {} : { firstDispatchAt: this.firstDispatchAt }),
      ...(answers.length === 0 ? {} : { lastAnswerAt: Math.max(...answers.map((a) => a.settledAt)) }),
    };
  }

  /** Waits for everything dispatched, ignoring results and errors (before dropping a turn). */
  async drain(): Promise<void> {
    await Promise.allSettled(this.answers.values());
  }

  /** The calls not yet answered whose tool was offered; the others are answered as refused now. */
  private offeredOnly(uses: readonly ToolUse[]): ToolUse[] {
    const fresh: ToolUse[] = [];
    for (const use of uses) {
      if (this.answers.has(use.id)) continue;
      if (this.options.offered.has(use.name)) fresh.push(use);
      else this.refuse(use);
    }
    return fresh;
  }

  /** Answers a call to a tool the run did not offer, without dispatching it. */
  private refuse(use: ToolUse): void {
    const names = [...this.options.offered];
    // The model learns what it may call; a catalog of hundreds is not repeated in every refusal.
    const offered =
      names.length === 0
        ? '(none)'
        : names.length <= MAX_NAMES_LISTED
          ? names.join(', ')
          : `${names.slice(0, MAX_NAMES_LISTED).join(', ')} and ${names.length - MAX_NAMES_LISTED} more`;
    const block: ToolResultBlock = {
      type: 'tool_result',
      tool_use_id: use.id,
      content: `${messages.unknownTool(use.name)}: not among the tools offered to this run (${offered})`,
      is_error: true,
    };
    const now = Date.now();
    const record: ToolCallRecord = {
      iteration: this.options.iteration,
      toolUseId: use.id,
      name: use.name,
      input: use.input,
      outcome: 'unknown_tool',
      isError: true,
      attempts: 0,
      latencyMs: 0,
      dispatchedAtMs: now - this.options.runStartedAt,
      early: false,
    };
    this.answers.set(use.id, Promise.resolve({ block, record, settledAt: now }));
    // A failure like any other: under the `abort` policy it cancels the rest of the turn.
    this.afterAnswer(record, block);
  }

  /** `collected`: a collect() of `plannedName` found nothing just now; it is not looked for again. */
  private start(
    uses: readonly ToolUse[],
    early: boolean,
    plannedName?: string,
    collected = false,
  ): Promise<BatchResult> {
    const batchName =
      plannedName ??
      this.options.batchName?.(
        this.batches++,
        uses.map((u) => u.id),
      );
    if (batchName !== undefined && plannedName === undefined) {
      uses.forEach((use, index) => {
        this.refs.set(use.id, { batchId: batchName, index });
      });
    }
    const now = Date.now();
    this.firstDispatchAt ??= now;
    for (const use of uses) {
      this.options.emit({
        type: 'tool_start',
        iteration: this.options.iteration,
        atMs: now - this.options.runStartedAt,
        toolUseId: use.id,
        name: use.name,
        input: use.input,
        early,
        ...(batchName === undefined ? {} : { batchId: batchName }),
      });
    }
    const { dispatcher, beforeDispatch } = this.options;
    const app = this.options.app === undefined ? {} : { app: this.options.app };
    const send = () =>
      dispatcher.dispatch(uses, {
        ...this.options.dispatch,
        signal: this.signal,
        onProgress: ({ index: _index, ...progress }) =>
          this.options.emit({
            type: 'tool_progress',
            iteration: this.options.iteration,
            atMs: Date.now() - this.options.runStartedAt,
            ...progress,
          }),
        ...(batchName === undefined ? {} : { batchName }),
        ...app,
      });
    if (batchName === undefined || !beforeDispatch) return send();
    // The tool_start events above are written (in order) before beforeDispatch lets the batch go.
    return beforeDispatch(batchName).then(async (earlier) => {
      if (earlier && !collected && dispatcher.collect) {
        const found = await dispatcher.collect(batchName, app);
        if (found) return found;
      }
      return send();
    });
  }

  private track(
    use: ToolUse,
    early: boolean,
    pending: Promise<{ result: BatchResult; index: number }>,
  ): void {
    const dispatchedAtMs = Date.now() - this.options.runStartedAt;
    const answer = pending.then(({ result, index }) => {
      const block = result.toolResults[index];
      const stats = result.calls[index];
      if (!block || !stats) throw new Error(`the dispatcher returned no result for ${use.id}`);
      const record = toRecord(this.options.iteration, use, stats, block, dispatchedAtMs, early);
      const settledAt = Date.now();
      this.afterAnswer(record, block);
      return { block, record, settledAt };
    });
    // Observed in settle(); without this a turn dropped before settle() would leave a rejection unhandled.
    answer.catch(() => undefined);
    this.answers.set(use.id, answer);
  }

  private afterAnswer(record: ToolCallRecord, block: ToolResultBlock): void {
    this.options.emit({
      type: 'tool_finish',
      iteration: this.options.iteration,
      atMs: Date.now() - this.options.runStartedAt,
      call: record,
    });
    if (this.options.dispatch.failurePolicy === 'abort' && record.isError && record.outcome !== 'cancelled') {
      this.cancelAll(
        `another call in this turn failed: ${record.name} (${record.toolUseId}) failed: ${firstLineOf(block.content)}`,
      );
    }
  }
}

function untilAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  return raceSignal(
    promise,
    signal,
    (s) => new ToolqError('CANCELLED', `the agent run was cancelled: ${String(s.reason ?? 'aborted')}`),
  );
}

function sameUses(a: readonly ToolUse[], b: readonly ToolUse[]): boolean {
  return a.length === b.length && a.every((use, i) => use.id === b[i]?.id);
}

function toRecord(
  iteration: number,
  use: ToolUse,
  stats: CallStats,
  block: ToolResultBlock,
  dispatchedAtMs: number,
  early: boolean,
): ToolCallRecord {
  return {
    iteration,
    toolUseId: use.id,
    name: use.name,
    input: use.input,
    outcome: stats.outcome,
    isError: block.is_error === true,
    ...(stats.worker === undefined ? {} : { worker: stats.worker }),
    ...(stats.pool === undefined ? {} : { pool: stats.pool }),
    attempts: stats.attempts,
    ...(stats.queueWaitMs === undefined ? {} : { queueWaitMs: stats.queueWaitMs }),
    ...(stats.runMs === undefined ? {} : { runMs: stats.runMs }),
    latencyMs: stats.latencyMs,
    dispatchedAtMs,
    early,
  };
}
