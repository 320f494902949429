/**
 * The events of a run's log, as SSE clients read them. The agent loop's own events are turned
 * into these here; a call's events carry a once-key, so that a coordinator taking a run over can
 * report the calls it collected without repeating what the owner before had already reported.
 */
import { textOf } from '../agent/stop-reasons.ts';
import type { AgentEvent, BetaMessage } from '../agent/types.ts';
import { wireTokens } from './run-result.ts';
import type { RunEventInput } from './run-store.ts';

export const RUN_EVENT_TYPES = [
  'run_started',
  'run_resumed',
  // The run waits for approvals only and holds no coordinator (runs/run-park.ts); written by run-wake.ts.
  'run_parked',
  'turn_started',
  'turn_finished',
  'text',
  'tool_started',
  'tool_finished',
  'tool_progress',
  'server_tool',
  'max_tokens_retry',
  // Written by the approvals (approvals/approvals.ts), from whichever coordinator requested, decided or expired it.
  'approval_requested',
  'approval_decided',
  'approval_expired',
  'done',
  'failed',
  'cancelled',
] as const;
export type RunEventType = (typeof RUN_EVENT_TYPES)[number];

const event = (type: RunEventType, data: Record<string, unknown>, once?: string): RunEventInput => ({
  type,
  data: { at: Date.now(), ...data },
  ...(once === undefined ? {} : { once }),
});

export function runStarted(input: {
  coordinator: string;
  epoch: number;
  /** `parkedMs`: the run was parked (waiting for approvals) that long, and this owner woke it. */
  resumedAfter?: { iteration: number; pendingCalls: number; idleMs: number; parkedMs?: number };
}): RunEventInput {
  const r = input.resumedAfter;
  return r
    ? event('run_resumed', {
        coordinator: input.coordinator,
        owner_epoch: input.epoch,
        saved_iterations: r.iteration,
        pending_calls: r.pendingCalls,
        idle_ms: r.idleMs,
        ...(r.parkedMs === undefined ? {} : { parked_ms: r.parkedMs }),
      })
    : event('run_started', { coordinator: input.coordinator, owner_epoch: input.epoch });
}

export function turnStarted(e: Extract<AgentEvent, { type: 'model_request' }>): RunEventInput {
  return event('turn_started', { iteration: e.iteration, model: e.model, max_tokens: e.maxTokens });
}

/** A response's text, once per response even if two owners save it. */
export function textEvent(iteration: number, message: BetaMessage | undefined): RunEventInput | undefined {
  const text = textOf(message);
  if (!message || text === '') return undefined;
  return event('text', { iteration, text }, `text:${message.id}`);
}

/** The loop's progress as log events; model_request is written by beforeModelRequest instead. */
export function fromAgentEvent(e: AgentEvent): RunEventInput | undefined {
  switch (e.type) {
    case 'model_request':
      return undefined;
    case 'model_response':
      return event('turn_finished', {
        iteration: e.iteration,
        stop_reason: e.stopReason,
        model_ms: e.modelMs,
        tool_uses: e.toolUses,
        usage: { ...wireTokens(e.usage.executor), advisor: wireTokens(e.usage.advisor) },
      });
    case 'tool_start':
      return event(
        'tool_started',
        {
          iteration: e.iteration,
          tool_use_id: e.toolUseId,
          tool: e.name,
          early: e.early,
          ...(e.batchId === undefined ? {} : { batch_id: e.batchId }),
        },
        `tool_started:${e.toolUseId}`,
      );
    case 'tool_finish':
      return event(
        'tool_finished',
        {
          iteration: e.iteration,
          tool_use_id: e.call.toolUseId,
          tool: e.call.name,
          worker: e.call.worker ?? null,
          duration_ms: e.call.runMs ?? e.call.latencyMs,
          outcome: e.call.outcome,
          is_error: e.call.isError,
        },
        `tool_finished:${e.call.toolUseId}`,
      );
    case 'tool_progress':
      return event('tool_progress', {
        iteration: e.iteration,
        tool_use_id: e.toolUseId,
        progress: e.progress,
        ...(e.total === undefined ? {} : { total: e.total }),
        ...(e.message === undefined ? {} : { message: e.message }),
      });
    case 'server_tool':
      return event('server_tool', { iteration: e.iteration, id: e.id, name: e.name });
    case 'max_tokens_retry':
      return event('max_tokens_retry', { iteration: e.iteration, max_tokens: e.maxTokens });
    default: {
      const unknown: never = e;
      return unknown;
    }
  }
}

export function doneEvent(status: string, text: string): RunEventInput {
  return event('done', { status, text });
}

export function failedEvent(error: { code: string; message: string }): RunEventInput {
  return event('failed', { error });
}
