/** One toolq batch, measured from the caller's side the same way as the baselines. */
import type { Dispatcher } from '@toolq/coordinator';

export interface ToolqBatchResult {
  wallMs: number;
  slowestRunMs: number;
  sumRunMs: number;
  /** Calls the coordinator had to answer itself at the deadline: no result arrived in time. */
  lost: number;
  /** Calls answered with any other error. */
  errors: number;
  latenciesMs: number[];
}

export async function runToolq(
  dispatcher: Dispatcher,
  calls: readonly { name: string; input: unknown }[],
  timeoutMs: number,
): Promise<ToolqBatchResult> {
  const uses = calls.map((c, i) => ({ id: `toolu_${i}`, name: c.name, input: c.input }));
  const t0 = performance.now();
  const result = await dispatcher.dispatch(uses, { timeoutMs });
  const wallMs = performance.now() - t0;
  let lost = 0;
  let errors = 0;
  let sumRunMs = 0;
  for (const call of result.calls) {
    if (call.outcome === 'timeout') lost++;
    else if (call.outcome !== 'ok') errors++;
    sumRunMs += call.runMs ?? 0;
  }
  return {
    wallMs,
    slowestRunMs: result.slowestRunMs,
    sumRunMs,
    lost,
    errors,
    latenciesMs: result.calls.map((c) => c.latencyMs),
  };
}

export const echoBatch = (size: number, tag = 0) =>
  Array.from({ length: size }, (_, i) => ({ name: 'diag_echo', input: { value: `${tag}:${i}` } }));

export const sleepBatch = (size: number, ms: number) =>
  Array.from({ length: size }, () => ({ name: 'diag_sleep', input: { ms } }));
