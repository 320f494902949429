import {
  advisorIteration,
  advisorResult,
  executorIteration,
  type ReceivedToolResult,
  type Script,
  type ScriptContext,
  type ScriptedBlock,
  type ScriptedResponse,
  type ScriptedUsage,
  serverToolUse,
  text,
  thinking,
  toolUse,
} from './script.ts';
import { allToolResults } from './transcript.ts';

/**
 * The usual agent conversation as a script: N turns of parallel tool calls, then a final answer
 * written from the tool results the model actually received, so a test sees its results (and
 * errors) come back through the model rather than a canned reply.
 */

export interface ToolCall {
  name: string;
  input: Record<string, unknown>;
  id?: string;
  /** Streaming: wait this long before the call's block (lets a test see calls start before the turn ends). */
  delayMs?: number;
  /** Cut the call as a `max_tokens` stop does (see ToolUseSpec). */
  truncateInputAt?: number;
}

export interface ToolTurn {
  /** Said before the calls. */
  text?: string;
  thinking?: string;
  /** The calls, or a function of the conversation so far (e.g. to use an id an earlier result returned). */
  calls: ToolCall[] | ((ctx: ScriptContext) => ToolCall[]);
  /**
   * Advice the advisor gives at the start of this turn, when the request offers the advisor tool
   * (`advisor_20260301`): adds `server_tool_use` + `advisor_tool_result` and advisor usage iterations.
   */
  advice?: string;
  usage?: ScriptedUsage;
  stopReason?: ScriptedResponse['stopReason'];
  delayMs?: number;
}

export interface ToolTurnsOptions {
  turns: ToolTurn[];
  /** Builds the final answer from every tool result received (default: summarizeToolResults). */
  final?: (results: ReceivedToolResult[], ctx: ScriptContext) => string | ScriptedResponse;
}

export function toolTurnsScript(turnsOrOptions: ToolTurn[] | ToolTurnsOptions): Script {
  const { turns, final } = Array.isArray(turnsOrOptions)
    ? { turns: turnsOrOptions, final: undefined }
    : turnsOrOptions;
  return (ctx) => {
    // Keyed on the conversation, not the request count, so retries and concurrent runs replay the same turn.
    const spec = turns[ctx.turn];
    if (spec === undefined) {
      const results = allToolResults(ctx.messages);
      const answer = final ? final(results, ctx) : summarizeToolResults(results);
      return typeof answer === 'string' ? { content: [text(answer)], stopReason: 'end_turn' } : answer;
    }
    const calls = typeof spec.calls === 'function' ? spec.calls(ctx) : spec.calls;
    const content: ScriptedBlock[] = [];
    if (spec.thinking !== undefined) content.push(thinking(spec.thinking));
    const advisor = spec.advice === undefined ? undefined : advisorModel(ctx);
    let usage = spec.usage;
    if (advisor !== undefined && spec.advice !== undefined) {
      const call = serverToolUse('advisor', {}, { id: `srvtoolu_advisor_${ctx.turn + 1}` });
      content.push(call, advisorResult(call.id ?? '', spec.advice));
      usage ??= advisorUsage(ctx, advisor, spec.advice);
    }
    if (spec.text !== undefined) content.push(text(spec.text));
    for (const call of calls) {
      content.push(
        toolUse(call.name, call.input, {
          id: call.id ?? ctx.nextToolUseId(),
          ...(call.delayMs === undefined ? {} : { delayMs: call.delayMs }),
          ...(call.truncateInputAt === undefined ? {} : { truncateInputAt: call.truncateInputAt }),
        }),
      );
    }
    return {
      content,
      ...(spec.stopReason ? { stopReason: spec.stopReason } : {}),
      ...(usage ? { usage } : {}),
      ...(spec.delayMs === undefined ? {} : { delayMs: spec.delayMs }),
    };
  };
}

function advisorModel(ctx: ScriptContext): string | undefined {
  const tool = ctx.tools.find((t) => 'type' in t && t.type === 'advisor_20260301');
  return tool && 'model' in tool && typeof tool.model === 'string' ? tool.model : undefined;
}

/** Executor before and after the advice, advisor in between: as the API reports an advisor call. */
function advisorUsage(ctx: ScriptContext, advisor: string, advice: string): ScriptedUsage {
  const transcript = Math.ceil(JSON.stringify(ctx.messages).length / 4);
  const adviceTokens = Math.max(1, Math.ceil(advice.length / 4));
  return {
    iterations: [
      executorIteration(transcript, 8, ctx.model),
      advisorIteration(advisor, transcript, adviceTokens),
      executorIteration(transcript + adviceTokens, 40, ctx.model),
    ],
  };
}

const MAX_QUOTE = 160;

/** A deterministic final answer quoting every result, marking errors, in the order received. */
export function summarizeToolResults(results: readonly ReceivedToolResult[]): string {
  if (results.length === 0) return 'I did not receive any tool results.';
  const errors = results.filter((r) => r.isError);
  const lines = results.map((r, i) => {
    const quote = r.content.length > MAX_QUOTE ? `${r.content.slice(0, MAX_QUOTE)}…` : r.content;
    const call = `${r.name ?? 'unknown tool'} ${JSON.stringify(r.input ?? {})}`;
    return `${i + 1}. ${call} -> ${r.isError ? `ERROR: ${quote}` : quote}`;
  });
  const header = `I received ${results.length} tool result${results.length === 1 ? '' : 's'} (${errors.length} error${errors.length === 1 ? '' : 's'}).`;
  const footer =
    errors.length === 0
      ? 'All tool calls succeeded.'
      : `Failed: ${errors.map((r) => `${r.name ?? 'unknown tool'} (${r.toolUseId})`).join(', ')}.`;
  return [header, ...lines, footer].join('\n');
}
