/**
 * The Dispatcher's one hook for approvals, in prepare(): holds the calls that need approval out
 * of the batch's jobs, and wraps the batch's answer so that it carries the decisions (and so that
 * approvals a cancelled batch no longer needs are closed).
 */
import type { BatchResult } from '../batch-result.ts';
import type { ToolLookup } from '../catalog.ts';
import { type Deferred, deferred } from '../dispatch/pending.ts';
import type { ApprovalOptions } from './approval-options.ts';
import type { Approvals } from './approvals.ts';

type HoldInput = Parameters<Approvals['hold']>[0];

export function holdForApprovals(
  approvals: Approvals,
  input: Omit<HoldInput, 'lookups' | 'approval'> & {
    lookups: readonly ToolLookup[];
    options: { approval?: ApprovalOptions };
    ttlMs: number;
    answer: Deferred<BatchResult>;
    /** True while the Dispatcher shuts down: its batches end, their approvals stay pending for a successor. */
    closing: () => boolean;
  },
): {
  lookups: (ToolLookup | undefined)[];
  ttlMs: number;
  answer: Deferred<BatchResult>;
  /** After the batch's record is being written: records the approvals. */
  request: () => void;
} {
  const lookups: (ToolLookup | undefined)[] = [...input.lookups];
  const approval = input.options.approval;
  const held = approvals.hold({ ...input, lookups, approval });
  if (!held) return { lookups, ttlMs: input.ttlMs, answer: input.answer, request: () => undefined };
  const ttlMs = Math.max(input.ttlMs, ...input.calls.map((c) => c.deadline - input.meta.createdAt));
  const inner = deferred<BatchResult>();
  const outer = input.answer;
  const end = () => {
    if (!input.closing()) approvals.batchEnded(held);
  };
  inner.promise.then(
    async (result) => {
      end();
      const decided = await approvals.outcomes(held.batchKey, held.indexes).catch(() => []);
      outer.resolve({ ...result, approvals: decided });
    },
    (err: unknown) => {
      end();
      outer.resolve(Promise.reject(err));
    },
  );
  return { lookups, ttlMs, answer: inner, request: () => approvals.request(held, approval) };
}
