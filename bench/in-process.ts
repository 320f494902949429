/**
 * The in-process baseline: the same tool functions, validated with the same zod schemas, run with
 * `Promise.all` in this process. No queue, no Redis, no other process: the floor of what a barrier
 * can cost, and the ceiling of what a single process can do.
 */
import type { AnyTool } from '@toolq/shared';
import { diagEcho, diagSleep } from '@toolq/worker/diagnostics';

const tools = new Map<string, AnyTool>([
  [diagEcho.name, diagEcho],
  [diagSleep.name, diagSleep],
]);

export interface InProcessResult {
  wallMs: number;
  slowestRunMs: number;
  sumRunMs: number;
}

export async function runInProcess(
  calls: readonly { name: string; input: unknown }[],
): Promise<InProcessResult> {
  const signal = new AbortController().signal;
  const t0 = performance.now();
  const runs = await Promise.all(
    calls.map(async (call, index) => {
      const tool = tools.get(call.name);
      if (!tool) throw new Error(`Unknown tool: ${call.name}`);
      const started = performance.now();
      await tool.run(tool.input.parse(call.input), {
        signal,
        attempt: 1,
        app: 'default',
        context: {},
        toolUseId: `inproc_${index}`,
        idempotencyKey: `inproc_${index}`,
        batchUid: 'inproc',
        reportProgress: () => undefined,
        batchId: 'inproc',
      });
      return performance.now() - started;
    }),
  );
  const wallMs = performance.now() - t0;
  return { wallMs, slowestRunMs: Math.max(0, ...runs), sumRunMs: runs.reduce((a, b) => a + b, 0) };
}
