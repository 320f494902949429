/**
 * The coordinator's view of flow control (docs/flow-control.md): which tools go through their own
 * fleet-wide queue (`tool=<name>`) and what limits hold for them. Read with the catalog, every
 * second, so an operator's change reaches every coordinator within about a second.
 */
import {
  type EffectiveLimits,
  effectiveLimits,
  type FlowKeys,
  type FlowState,
  flowKeys,
  type Keys,
  type Redis,
  readFlowState,
  type ToolSpec,
} from '@toolq/shared/internal';

/** The HTTP API's shape of a tool's limits. */
export interface ToolLimitsView {
  tool: string;
  concurrency: number | null;
  rate_limit: { max: number; per_ms: number } | null;
  paused: boolean;
}

export function limitsView(tool: string, limits: EffectiveLimits): ToolLimitsView {
  return {
    tool,
    concurrency: limits.concurrency,
    rate_limit: limits.rateLimit ? { max: limits.rateLimit.max, per_ms: limits.rateLimit.perMs } : null,
    paused: limits.paused,
  };
}

export class FlowView {
  readonly keys: FlowKeys;
  private state: FlowState = { overrides: new Map(), held: new Map() };

  constructor(keys: Keys) {
    this.keys = flowKeys(keys.prefix);
  }

  async refresh(redis: Redis): Promise<void> {
    this.state = await readFlowState(redis, this.keys);
  }

  /** A definition's limit, an operator's override or a downstream's hold routes the tool through its queue. */
  isFlowControlled(spec: Pick<ToolSpec, 'name' | 'concurrency' | 'rateLimit'>): boolean {
    return (
      spec.concurrency !== undefined ||
      spec.rateLimit !== undefined ||
      this.state.overrides.has(spec.name) ||
      this.state.held.has(spec.name)
    );
  }

  limitsOf(spec: Pick<ToolSpec, 'name' | 'concurrency' | 'rateLimit'>): EffectiveLimits {
    return effectiveLimits(
      {
        ...(spec.concurrency !== undefined ? { concurrency: spec.concurrency } : {}),
        ...(spec.rateLimit !== undefined ? { rateLimit: spec.rateLimit } : {}),
      },
      this.state.overrides.get(spec.name),
    );
  }

  /** Tools with an override or a hold, whether or not a live worker serves them now. */
  namedTools(): string[] {
    return [...new Set([...this.state.overrides.keys(), ...this.state.held.keys()])];
  }

  /** Why a flow-controlled tool's call may still be waiting, as a reason for a `not_started` answer. */
  whyWaiting(tool: string): string {
    if (this.state.overrides.get(tool)?.paused) return 'an operator paused the tool';
    const held = this.heldUntil(tool);
    if (held !== undefined)
      return `the service it calls asked for no calls until ${new Date(held).toISOString()}`;
    return "it waited for a free slot under the tool's concurrency cap or rate limit";
  }

  /** Until when the tool's downstream asked for no calls, if that is still ahead. */
  heldUntil(tool: string, now = Date.now()): number | undefined {
    const until = this.state.held.get(tool);
    return until !== undefined && until > now ? until : undefined;
  }
}
