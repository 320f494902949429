/**
 * The demo's human output: a live line per model turn and tool call, then the answer, the parallel
 * speed-up and the seed's performance report.
 */
import type { AgentEvent, PerformanceReport } from '@toolq/coordinator';
import type { DemoReport } from './run-demo.ts';

const seconds = (ms: number) => `${(ms / 1000).toFixed(2)}s`;
const clock = (ms: number) => `[${seconds(ms).padStart(6)}]`;

function brief(value: unknown, max = 60): string {
  const text = JSON.stringify(value) ?? '';
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** Worker ids are `<host>-<pid>-<random>`; the pid is what tells two local workers apart. */
function shortWorker(id: string | undefined): string {
  if (!id) return 'no worker';
  const parts = id.split('-');
  return parts.length >= 3 ? `worker ${parts.at(-2)}` : `worker ${id}`;
}

export function formatEvent(event: AgentEvent): string | undefined {
  const at = clock(event.atMs);
  switch (event.type) {
    case 'model_request':
      return `${at} model turn ${event.iteration}: ${event.model}${event.stream ? ' (streaming)' : ''}`;
    case 'model_response':
      return (
        `${at} model turn ${event.iteration} done in ${seconds(event.modelMs)}: stop_reason=${event.stopReason}` +
        (event.toolUses > 0 ? `, ${event.toolUses} tool call${event.toolUses === 1 ? '' : 's'}` : '')
      );
    case 'server_tool':
      return `${at}   ${event.name} (server-side tool, run by the API)`;
    case 'tool_start':
      return `${at}   → ${event.name} ${brief(event.input)}${event.early ? '  (dispatched while the model streams)' : ''}`;
    case 'tool_finish': {
      const c = event.call;
      const took = c.runMs === undefined ? `answered in ${seconds(c.latencyMs)}` : `ran ${seconds(c.runMs)}`;
      return `${at}   ${c.isError ? '✗' : '✓'} ${c.name} ${took} on ${shortWorker(c.worker)}${c.isError ? ` (${c.outcome})` : ''}`;
    }
    case 'max_tokens_retry':
      return `${at} response cut inside a tool call: asking again with max_tokens=${event.maxTokens}`;
  }
}

export function formatPerformance(report: PerformanceReport): string {
  const lines = ['=== Tool Call Performance Report ==='];
  for (const t of report.tools) {
    lines.push(
      `${t.tool.padEnd(30)} calls=${t.calls}  avg=${seconds(t.avgMs)}  p95=${seconds(t.p95Ms)}  max=${seconds(t.maxMs)}${t.notStarted ? `  not started=${t.notStarted}` : ''}`,
    );
  }
  const pct = (100 * report.successRate).toFixed(1);
  const apart = report.notStarted > 0 ? `; not started: ${report.notStarted}` : '';
  lines.push('', `Success rate: ${report.succeeded}/${report.calls - report.notStarted} (${pct}%)${apart}`);
  return lines.join('\n');
}

export function formatSummary(report: DemoReport): string {
  const s = report.stats;
  const turns = report.iterations.filter((it) => it.toolCalls > 0).length;
  const parallel =
    s.toolCalls === 0
      ? 'No tool calls were made.'
      : `Parallel: ${s.toolCalls} tool calls in ${turns} turn${turns === 1 ? '' : 's'}; ` +
        `one after another they would take ${seconds(s.sumToolMs)}, in parallel they took ${seconds(s.toolWallMs)} ` +
        `(${s.speedup}× faster).`;
  const early =
    s.headStartMs > 0
      ? `Early dispatch: tools started ${seconds(s.headStartMs)} before the model finished its messages.`
      : undefined;
  const tokens = `Tokens: executor ${report.usage.executor.inputTokens} in / ${report.usage.executor.outputTokens} out`;
  return [
    '=== Answer ===',
    report.answer,
    '',
    parallel,
    ...(early ? [early] : []),
    `Run: ${seconds(report.runMs)} (model ${seconds(s.modelMs)}, waiting for tools ${seconds(s.toolWaitMs)}); ${tokens}.`,
    '',
    formatPerformance(report.performance),
  ].join('\n');
}
