/**
 * What a caller says about approvals for one batch or run, its defaults, and the shapes the API,
 * the handler and the store share.
 */
import { MAX_TIMEOUT_MS } from '@toolq/shared/internal';
import { z } from 'zod';

export const APPROVAL_DEFAULTS = {
  /** A batch's approval expires after this (its HTTP request waits meanwhile): 5 minutes. */
  batchTimeoutMs: 5 * 60_000,
  /** A durable run's approval expires after this (the run holds no slot while it waits): 24 hours. */
  runTimeoutMs: 24 * 3600_000,
  /** How long a decided or expired approval stays readable in Redis (batch record, events). */
  retentionMs: 3600_000,
  /** How often each coordinator looks for approvals whose time is up. */
  expirySweepMs: 1_000,
  /** The longest reason a decider may give (characters). */
  maxReasonChars: 2_000,
} as const;

export type ApprovalDecision = 'approve' | 'deny';
export type ApprovalStatus = 'pending' | 'approved' | 'denied' | 'expired' | 'cancelled';

/** A call waiting for a person, as GET /v1/approvals lists it and an approval handler gets it. */
export interface ApprovalRequest {
  approvalId: string;
  app: string;
  tool: string;
  input: unknown;
  toolUseId: string;
  /** The batch's name (the caller's batch_id, or its uid); for a run, the run's own batch of the turn. */
  batchId: string;
  /** The durable run the call belongs to, if any. */
  runId?: string;
  /** Epoch ms. */
  requestedAt: number;
  expiresAt: number;
}

/** What a handler or a person answers. */
export interface ApprovalVerdict {
  decision: ApprovalDecision;
  reason?: string;
  /** Who decided (recorded with the decision). Default: `handler` for a handler. */
  by?: string;
}

/**
 * Decides approvals for an embedded Dispatcher or agent loop: called once per call that needs
 * approval, right after it is recorded. Answer a verdict, or undefined to leave it to a person
 * (GET /v1/approvals, the /approvals page) or to its expiry.
 */
export type ApprovalHandler = (
  request: ApprovalRequest,
) => ApprovalVerdict | undefined | Promise<ApprovalVerdict | undefined>;

/** dispatch()'s and runAgent()'s `approval` option. */
export interface ApprovalOptions {
  /** Tools whose calls need approval in this batch or run, whatever the tools declare. */
  tools?: readonly string[];
  /** When a pending approval expires. Default 5 min for a batch, 24 h for a durable run. */
  timeoutMs?: number;
  handler?: ApprovalHandler;
  /** Set by durable runs: the run the calls belong to (listed as `run_id`, events on its stream). */
  runId?: string;
  /** Set by durable runs: told of each approval once it is recorded (the run may then park). */
  onRequested?: (request: ApprovalRequest) => void;
}

export const approvalOptionsSchema = z.strictObject({
  tools: z.array(z.string().min(1).max(64)).max(1000).optional(),
  timeoutMs: z.number().int().min(1).max(MAX_TIMEOUT_MS).optional(),
  handler: z.custom<ApprovalHandler>((v) => typeof v === 'function', 'must be a function').optional(),
  runId: z.string().min(1).optional(),
  onRequested: z
    .custom<(request: ApprovalRequest) => void>((v) => typeof v === 'function', 'must be a function')
    .optional(),
});

export const approvalVerdictSchema = z.strictObject({
  decision: z.enum(['approve', 'deny']),
  reason: z.string().max(APPROVAL_DEFAULTS.maxReasonChars).optional(),
  by: z.string().min(1).max(200).optional(),
});

/** How a decided approval reads in a batch's answer and record. */
export interface ApprovalOutcome {
  approvalId: string;
  toolUseId: string;
  tool: string;
  status: Exclude<ApprovalStatus, 'pending'>;
  decidedBy?: string;
  /** Epoch ms of the decision or the expiry. */
  decidedAt?: number;
  reason?: string;
}
