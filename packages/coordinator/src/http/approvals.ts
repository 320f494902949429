/**
 * The approval routes: an app lists the calls of its batches and runs that wait for a person, and
 * approves or denies them, on any coordinator (everything is in Redis). Another app's approvals
 * are never listed and answer 404, as an unknown id does.
 */

import { withinRedis } from '@toolq/shared/internal';
import { z } from 'zod';
import type { ApprovalRequest } from '../approvals/approval-options.ts';
import { APPROVAL_DEFAULTS } from '../approvals/approval-options.ts';
import type { StoredApproval } from '../approvals/approval-store.ts';
import { appOf } from './auth.ts';
import { HTTP_DEFAULTS } from './defaults.ts';
import { BAD_REQUEST, error } from './responses.ts';
import { type ApiRoute, named, route } from './route.ts';

export const approvalIdSchema = z
  .string()
  .regex(/^apr_[0-9a-f]{24}$/, 'an approval id is apr_ and 24 hex digits');

const approvalSchema = z.object({
  approval_id: z.string(),
  tool: z.string(),
  input: z.unknown(),
  tool_use_id: z.string(),
  batch_id: z.string().optional().describe('The batch the call belongs to (absent for a run).'),
  run_id: z.string().optional().describe('The durable run the call belongs to.'),
  requested_at: z.number().describe('Epoch ms.'),
  expires_at: z.number().describe('Epoch ms: past it, the call is answered is_error "approval expired".'),
});

export const approvalListSchema = z.object({ approvals: z.array(approvalSchema) });

export const approvalDecisionSchema = z
  .object({
    decision: z.enum(['approve', 'deny']),
    reason: z
      .string()
      .max(APPROVAL_DEFAULTS.maxReasonChars)
      .optional()
      .describe('Why: a denied call is answered is_error with it, for the model to read.'),
    decided_by: z
      .string()
      .min(1)
      .max(200)
      .optional()
      .describe("Who decided (recorded with the decision). Default: `app:<the token's app>`."),
  })
  .strict();

const decidedSchema = approvalSchema.extend({
  status: z.enum(['approved', 'denied', 'expired', 'cancelled']),
  decided_by: z.string().optional(),
  decided_at: z.number().optional(),
  reason: z.string().optional(),
});

function requestResponse(a: ApprovalRequest) {
  return {
    approval_id: a.approvalId,
    tool: a.tool,
    input: a.input,
    tool_use_id: a.toolUseId,
    ...(a.runId === undefined ? { batch_id: a.batchId } : { run_id: a.runId }),
    requested_at: a.requestedAt,
    expires_at: a.expiresAt,
  };
}

function decidedResponse(a: StoredApproval) {
  return {
    ...requestResponse(a),
    status: a.status as z.infer<typeof decidedSchema>['status'],
    ...(a.decidedBy === undefined ? {} : { decided_by: a.decidedBy }),
    ...(a.decidedAt === undefined ? {} : { decided_at: a.decidedAt }),
    ...(a.reason ? { reason: a.reason } : {}),
  };
}

export const APPROVAL_ROUTES: ApiRoute[] = [
  route({
    method: 'get',
    path: '/v1/approvals',
    operationId: 'listApprovals',
    tag: 'approvals',
    summary: "The calls of the caller's app waiting for approval, soonest expiry first",
    responses: {
      200: { description: 'Pending approvals.', body: named('ApprovalList', approvalListSchema) },
    },
    handler: async ({ request, ctx }) => {
      const pending = await withinRedis(
        ctx.dispatcher.approvals.list(appOf(request)),
        HTTP_DEFAULTS.redisWaitMs,
      );
      return { approvals: pending.map(requestResponse) };
    },
  }),
  route({
    method: 'post',
    path: '/v1/approvals/:approval_id',
    operationId: 'decideApproval',
    tag: 'approvals',
    summary: 'Approve or deny a waiting call (once)',
    description:
      'An approved call is sent to its workers at once and runs with its own timeout; a denied one is answered ' +
      '`is_error` with the reason and never runs. Any coordinator decides any approval of the app.',
    params: {
      approval_id: { description: 'From GET /v1/approvals.', schema: approvalIdSchema, label: 'approval id' },
    },
    body: named('ApprovalDecision', approvalDecisionSchema),
    responses: {
      200: { description: 'Decided; its effect is in Redis.', body: named('DecidedApproval', decidedSchema) },
      400: BAD_REQUEST,
      404: error("No such approval for this app (unknown, another app's, or gone)."),
      409: error('The approval was decided already, or expired: it is decided once.'),
    },
    handler: async ({ params, body, request, ctx }) => {
      const app = appOf(request);
      const deciding = ctx.dispatcher.approvals.decide(app, params.approval_id, {
        decision: body.decision,
        by: body.decided_by ?? `app:${app}`,
        ...(body.reason === undefined ? {} : { reason: body.reason }),
      });
      return decidedResponse(await withinRedis(deciding, HTTP_DEFAULTS.redisWaitMs));
    },
  }),
];
