// Type-checked with `tsc --strict` against the installed declarations only. Each @ts-expect-error
// fails the check if its line type-checks, i.e. if a declaration resolved to `any`.
import type Anthropic from '@anthropic-ai/sdk';
import { ToolqClient } from '@toolq/client';
import {
  Dispatcher,
  type DispatchOptions,
  type PerformanceReport,
  performanceReport,
} from '@toolq/coordinator';
import { startScriptedModel, toolTurnsScript } from '@toolq/scripted-model';
import { type AnyTool, defineTool, ToolqError, type ToolResultBlock } from '@toolq/shared';
import { startWorker, type WorkerOptions } from '@toolq/worker';
import { diagEcho } from '@toolq/worker/diagnostics';
import { z } from 'zod';

const add = defineTool({
  name: 'add',
  description: 'Adds two numbers.',
  input: z.object({ a: z.number(), b: z.number() }),
  run: ({ a, b }) => {
    // @ts-expect-error the input's types come from the zod schema: a is a number
    const wrong: string = a;
    return { sum: a + b, wrong };
  },
});
// @ts-expect-error a tool's input is a zod schema, not a plain object
defineTool({ name: 'bad', description: 'Bad.', input: { a: 1 }, run: () => 1 });
const tools: AnyTool[] = [add, diagEcho];

export async function main(redisUrl: string): Promise<ToolResultBlock[]> {
  const options: WorkerOptions = { redisUrl, tools };
  const worker = await startWorker(options);
  const dispatcher = new Dispatcher({ redisUrl });
  await dispatcher.start();
  const dispatchOptions: DispatchOptions = { timeoutMs: 5_000, failurePolicy: 'continue' };
  // @ts-expect-error timeoutMs is a number of milliseconds
  const misuse: DispatchOptions = { timeoutMs: 'soon' };
  const { toolResults } = await dispatcher.dispatch(
    [{ id: 'toolu_1', name: 'add', input: { a: 1, b: 2 } }],
    dispatchOptions,
  );
  const report: PerformanceReport = performanceReport([{ name: 'add', isError: false, latencyMs: 3 }]);
  const rate: number = report.successRate;
  const model = await startScriptedModel(toolTurnsScript([]));
  // @ts-expect-error the scripted model takes a script or options
  await startScriptedModel(42);
  const url: string = model.url;
  await Promise.all([dispatcher.close(), worker.close(), model.close()]);
  if (rate > 1 || url === '' || misuse.timeoutMs === 0) throw new ToolqError('INVALID_INPUT', 'unreachable');
  return toolResults;
}

/**
 * The README's own agent loop as a user writes it: a response's whole content goes to dispatch(),
 * and the results go into the SDK's own message types without a cast.
 */
export async function nextTurn(
  client: Anthropic,
  dispatcher: Dispatcher,
  messages: Anthropic.MessageParam[],
): Promise<Anthropic.MessageParam[]> {
  const response = await client.messages.create({ model: 'claude-sonnet-5-5', max_tokens: 1024, messages });
  const { toolResults } = await dispatcher.dispatch(response.content, {
    timeoutMs: 10_000,
    failurePolicy: 'continue',
  });
  messages.push({ role: 'assistant', content: response.content }, { role: 'user', content: toolResults });
  const beta: Anthropic.Beta.BetaMessageParam = { role: 'user', content: toolResults };
  // The HTTP client's tool_results assign to the SDK's types as well.
  const batch = await new ToolqClient({ baseUrl: 'http://127.0.0.1:8080' }).createToolBatch(
    response.content.filter((b) => b.type === 'tool_use'),
  );
  messages.push({ role: 'user', content: batch.tool_results });
  return beta.role === 'user' ? messages : [];
}
