/**
 * The last calls this coordinator answered, for the performance report over HTTP (GET /v1/report):
 * a fixed-size ring, so the report covers a recent window and memory stays bounded.
 */

import type { BatchResult } from './batch-result.ts';
import { UNKNOWN_TOOL_LABEL } from './batch-result.ts';
import type { ReportedCall } from './performance-report.ts';

export class RecentCalls {
  private readonly ring: ReportedCall[] = [];
  private next = 0;

  /** Default: the last 10,000 calls. */
  constructor(private readonly max = 10_000) {}

  addBatch(result: BatchResult): void {
    for (const call of result.calls) {
      this.add({
        // Unknown names come from callers: one name for all of them, as in the metrics.
        name: call.outcome === 'unknown_tool' ? UNKNOWN_TOOL_LABEL : call.tool,
        isError: call.outcome !== 'ok',
        latencyMs: call.latencyMs,
        ...(call.runMs === undefined ? {} : { runMs: call.runMs }),
      });
    }
  }

  private add(call: ReportedCall): void {
    if (this.ring.length < this.max) this.ring.push(call);
    else this.ring[this.next] = call;
    this.next = (this.next + 1) % this.max;
  }

  list(): readonly ReportedCall[] {
    return this.ring;
  }
}
