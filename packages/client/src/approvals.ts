/** Approvals over HTTP (GET /v1/approvals, POST /v1/approvals/{id}): the shapes and the checks. */
import { checkOptions, type OptionSpec, ToolqOptionError } from './options.ts';

/** A call waiting for a person (GET /v1/approvals). */
export interface Approval {
  approval_id: string;
  tool: string;
  input: unknown;
  tool_use_id: string;
  /** The batch it belongs to; absent for a run's call (then `run_id`). */
  batch_id?: string;
  run_id?: string;
  /** Epoch ms. */
  requested_at: number;
  /** Epoch ms: past it the call is answered is_error "approval expired" and never runs. */
  expires_at: number;
}

export interface ApprovalDecision {
  decision: 'approve' | 'deny';
  /** A denied call is answered is_error with it, for the model to read. */
  reason?: string;
  /** Who decided (recorded). Default on the server: `app:<your token's app>`. */
  decided_by?: string;
}

/** What a decision, or an expiry, made of an approval. */
export type ApprovalStatus = 'approved' | 'denied' | 'expired' | 'cancelled';

export interface DecidedApproval extends Approval {
  status: ApprovalStatus;
  decided_by?: string;
  decided_at?: number;
  reason?: string;
}

/** A batch's `approvals`: the decisions on its calls that waited. */
export interface ApprovalOutcome {
  approval_id: string;
  tool_use_id: string;
  tool: string;
  status: ApprovalStatus;
  decided_by?: string;
  decided_at?: number;
  reason?: string;
}

export const APPROVAL_DECISION: OptionSpec = {
  decision: [(v) => v === 'approve' || v === 'deny', "'approve' or 'deny'"],
  reason: [(v) => typeof v === 'string' && v.length <= 2_000, 'a string of at most 2000 characters'],
  decided_by: [(v) => typeof v === 'string' && v !== '' && v.length <= 200, 'a string of 1-200 characters'],
};

const APPROVAL_ID_PATTERN = /^apr_[0-9a-f]{24}$/;

export interface ApprovalList {
  approvals: Approval[];
}

/** decideApproval's arguments, checked before anything is sent. */
export function checkDecision(id: string, decision: ApprovalDecision): void {
  checkOptions('decideApproval decision', decision, APPROVAL_DECISION);
  if (typeof decision !== 'object' || decision === null || decision.decision === undefined)
    throw new ToolqOptionError(
      'decision',
      "decideApproval decision: decision is required ('approve' or 'deny')",
    );
  if (typeof id !== 'string' || !APPROVAL_ID_PATTERN.test(id))
    throw new ToolqOptionError(
      'approvalId',
      `decideApproval: ${JSON.stringify(id)} is not an approval id (apr_ and 24 hex digits)`,
    );
}

/** createToolBatch's approval options as the request's fields. */
export function approvalFields(options: { approvalTools?: readonly string[]; approvalTimeoutMs?: number }) {
  return {
    ...(options.approvalTools !== undefined ? { approval_tools: options.approvalTools } : {}),
    ...(options.approvalTimeoutMs !== undefined ? { approval_timeout_ms: options.approvalTimeoutMs } : {}),
  };
}

export const LIST_APPROVALS = { method: 'GET', path: '/v1/approvals', replay: 'idempotent' } as const;

/** decideApproval's request, its arguments checked before anything is sent; never repeated (a repeat would be 409). */
export function decideRequest(id: string, decision: ApprovalDecision) {
  checkDecision(id, decision);
  return { method: 'POST', path: `/v1/approvals/${id}`, body: decision, replay: 'unsafe' } as const;
}
