/**
 * What the loop does with a response, by stop reason. One exhaustive switch, so a stop reason the
 * SDK adds later fails the type check here instead of falling through somewhere.
 */
import { ToolqError } from '@toolq/shared';
import type { ToolUse } from '../dispatcher.ts';
import type { AgentStatus, BetaMessage } from './types.ts';

export type Decision =
  /** Run these calls, append the assistant message and one user message with their results. */
  | { kind: 'tools'; toolUses: ToolUse[] }
  /** Append the assistant message and ask again: the API paused its own (server-side) work. */
  | { kind: 'continue' }
  /** Drop the response (cut inside a tool_use) and ask again with more room. */
  | { kind: 'retry'; maxTokens: number }
  | { kind: 'final'; status: Exclude<AgentStatus, 'max_iterations'>; keepMessage: boolean };

export function toolUsesOf(message: BetaMessage): ToolUse[] {
  return message.content.flatMap((b) =>
    b.type === 'tool_use' ? [{ id: b.id, name: b.name, input: b.input }] : [],
  );
}

/**
 * A response stopped by max_tokens is cut inside a tool_use when streaming saw its JSON end
 * unfinished, or (JSON responses carry `input: {}` for a cut call) when a tool_use is its last block:
 * a finished call ends the turn, so the limit can only have struck inside it.
 */
export function isCutInsideToolUse(message: BetaMessage, incomplete: ReadonlySet<string>): boolean {
  if (message.stop_reason !== 'max_tokens') return false;
  return incomplete.size > 0 || message.content.at(-1)?.type === 'tool_use';
}

export function decide(
  message: BetaMessage,
  incomplete: ReadonlySet<string>,
  limits: { maxTokens: number; maxTokensCeiling: number },
): Decision {
  const toolUses = toolUsesOf(message);
  const stop = message.stop_reason;
  switch (stop) {
    case 'tool_use':
      return toolUses.length > 0
        ? { kind: 'tools', toolUses }
        : { kind: 'final', status: 'end_turn', keepMessage: true };
    case 'max_tokens':
      if (isCutInsideToolUse(message, incomplete)) {
        if (limits.maxTokens >= limits.maxTokensCeiling) {
          return { kind: 'final', status: 'max_tokens', keepMessage: false };
        }
        return { kind: 'retry', maxTokens: Math.min(limits.maxTokens * 2, limits.maxTokensCeiling) };
      }
      // Complete calls before the limit struck: the model asked for them, so they run.
      return toolUses.length > 0
        ? { kind: 'tools', toolUses }
        : { kind: 'final', status: 'max_tokens', keepMessage: true };
    case 'pause_turn':
    case 'compaction':
      return toolUses.length > 0 ? { kind: 'tools', toolUses } : { kind: 'continue' };
    case 'end_turn':
    case 'stop_sequence':
    case 'refusal':
    case 'model_context_window_exceeded':
      return { kind: 'final', status: stop, keepMessage: true };
    case null:
      throw new ToolqError('MODEL_ERROR', `response ${message.id} arrived without a stop_reason`);
    default: {
      const unknown: never = stop;
      throw new ToolqError('MODEL_ERROR', `unexpected stop_reason ${String(unknown)} in ${message.id}`);
    }
  }
}

/** The text blocks of a response, in order. */
export function textOf(message: BetaMessage | undefined): string {
  if (!message) return '';
  return message.content
    .flatMap((b) => (b.type === 'text' ? [b.text] : []))
    .join('\n')
    .trim();
}
