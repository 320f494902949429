/** How an approval's decision reads over HTTP (the batch answer's `approvals`): snake_case, like every body. */
import { z } from 'zod';
import type { ApprovalOutcome } from '../approvals/approval-options.ts';

export const approvalOutcomeSchema = z.object({
  approval_id: z.string(),
  tool_use_id: z.string(),
  tool: z.string(),
  status: z.enum(['approved', 'denied', 'expired', 'cancelled']),
  decided_by: z.string().optional(),
  decided_at: z.number().optional().describe('Epoch ms of the decision, or of the expiry.'),
  reason: z.string().optional(),
});

export function wireApprovalOutcome(o: ApprovalOutcome): z.input<typeof approvalOutcomeSchema> {
  return {
    approval_id: o.approvalId,
    tool_use_id: o.toolUseId,
    tool: o.tool,
    status: o.status,
    ...(o.decidedBy === undefined ? {} : { decided_by: o.decidedBy }),
    ...(o.decidedAt === undefined ? {} : { decided_at: o.decidedAt }),
    ...(o.reason === undefined ? {} : { reason: o.reason }),
  };
}
