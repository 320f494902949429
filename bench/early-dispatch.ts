/**
 * Benchmark 4: streaming early dispatch. The scripted Messages API streams one assistant turn with
 * several `tool_use` blocks, `gapMs` apart (as a model generating them would), then a final turn.
 * runAgent runs it through the real SDK with early dispatch on (each call dispatched at its
 * `content_block_stop`) and off (all dispatched at `message_stop`). Measured from the run's start:
 * the first tool dispatch, the message's end, and the turn's answer (the last tool result in).
 */
import type { Dispatcher } from '@toolq/coordinator';
import { startScriptedModel, toolTurnsScript } from '@toolq/scripted-model';
import type { Logger } from '@toolq/shared';
import { type Summary, summarize } from './stats.ts';

export interface EarlyDispatchScenario {
  name: string;
  /** diag_sleep ms of each call, in the order the model writes them. */
  sleepsMs: number[];
  /** Stream time before each tool_use block. */
  gapMs: number;
}

export interface EarlyDispatchConfig {
  scenarios: EarlyDispatchScenario[];
  iterations: number;
}

export interface EarlyDispatchRow {
  scenario: EarlyDispatchScenario;
  early: boolean;
  firstDispatch: Summary;
  messageEnd: Summary;
  turnAnswer: Summary;
  errors: number;
}

type RunAgent = typeof import('@toolq/coordinator').runAgent;

/** runAgent when the agent loop exists in this checkout; undefined otherwise. */
export async function loadRunAgent(): Promise<RunAgent | undefined> {
  try {
    const mod = await import('@toolq/coordinator');
    return typeof mod.runAgent === 'function' ? mod.runAgent : undefined;
  } catch {
    return undefined;
  }
}

export async function measureEarlyDispatch(
  dispatcher: Dispatcher,
  runAgent: RunAgent,
  cfg: EarlyDispatchConfig,
  logger: Logger,
): Promise<EarlyDispatchRow[]> {
  const rows: EarlyDispatchRow[] = [];
  for (const scenario of cfg.scenarios) {
    const script = toolTurnsScript([
      {
        text: 'Looking this up.',
        calls: scenario.sleepsMs.map((ms) => ({
          name: 'diag_sleep',
          input: { ms },
          delayMs: scenario.gapMs,
        })),
      },
    ]);
    const model = await startScriptedModel({ script });
    const acc = {
      on: { first: [] as number[], end: [] as number[], answer: [] as number[], errors: 0 },
      off: { first: [] as number[], end: [] as number[], answer: [] as number[], errors: 0 },
    };
    try {
      for (let i = 0; i < cfg.iterations; i++) {
        for (const early of i % 2 === 0 ? [true, false] : [false, true]) {
          const starts: number[] = [];
          const finishes: number[] = [];
          let messageEnd = Number.NaN;
          const result = await runAgent({
            dispatcher,
            apiKey: 'bench-offline',
            baseURL: model.url,
            model: 'claude-sonnet-4-6',
            prompt: 'Run the tools.',
            tools: ['diag_sleep'],
            stream: true,
            earlyDispatch: early,
            timeoutMs: 30_000,
            logger,
            onEvent: (event) => {
              if (event.iteration !== 1) return;
              if (event.type === 'tool_start') starts.push(event.atMs);
              if (event.type === 'tool_finish') finishes.push(event.atMs);
              if (event.type === 'model_response') messageEnd = event.atMs;
            },
          });
          const a = acc[early ? 'on' : 'off'];
          const failed = result.calls.filter((c) => c.isError).length;
          if (failed > 0 || starts.length !== scenario.sleepsMs.length) {
            a.errors += Math.max(1, failed);
            continue;
          }
          a.first.push(Math.min(...starts));
          a.end.push(messageEnd);
          a.answer.push(Math.max(...finishes));
        }
      }
    } finally {
      await model.close();
    }
    for (const early of [true, false]) {
      const a = acc[early ? 'on' : 'off'];
      rows.push({
        scenario,
        early,
        firstDispatch: summarize(a.first),
        messageEnd: summarize(a.end),
        turnAnswer: summarize(a.answer),
        errors: a.errors,
      });
    }
  }
  return rows;
}
