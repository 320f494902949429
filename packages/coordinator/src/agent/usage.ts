/**
 * Token usage by model and role. With the advisor tool one response carries the work of two
 * models; the API tells them apart only in `usage.iterations` (`message` for the executor,
 * `advisor_message` for the advisor), so those are the source whenever they are present.
 */
import type { CoordinatorMetrics } from '@toolq/shared/internal';
import type { BetaMessage, ModelRole, ModelUsage, TokenCounts, UsageReport } from './types.ts';

type Iteration = NonNullable<BetaMessage['usage']['iterations']>[number];

export function emptyCounts(): TokenCounts {
  return { inputTokens: 0, outputTokens: 0, cacheCreationInputTokens: 0, cacheReadInputTokens: 0 };
}

function countsOf(u: {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens?: number | null;
  cache_read_input_tokens?: number | null;
}): TokenCounts {
  return {
    inputTokens: u.input_tokens,
    outputTokens: u.output_tokens,
    cacheCreationInputTokens: u.cache_creation_input_tokens ?? 0,
    cacheReadInputTokens: u.cache_read_input_tokens ?? 0,
  };
}

function addInto(target: TokenCounts, add: TokenCounts): void {
  target.inputTokens += add.inputTokens;
  target.outputTokens += add.outputTokens;
  target.cacheCreationInputTokens += add.cacheCreationInputTokens;
  target.cacheReadInputTokens += add.cacheReadInputTokens;
}

interface Entry {
  model: string;
  role: ModelRole;
  counts: TokenCounts;
}

/** The entries of one response: from its iterations when present, else its top-level usage. */
export function usageEntries(message: BetaMessage): Entry[] {
  const iterations: readonly Iteration[] = message.usage.iterations ?? [];
  if (iterations.length === 0) {
    return [{ model: message.model, role: 'executor', counts: countsOf(message.usage) }];
  }
  return iterations.map((it) => {
    const role: ModelRole = it.type === 'advisor_message' ? 'advisor' : 'executor';
    // Compaction and fallback iterations are the executor's work; `model` is null for the main model.
    const model = 'model' in it && it.model ? it.model : message.model;
    return { model, role, counts: countsOf(it) };
  });
}

export class UsageTracker {
  private readonly byKey = new Map<string, ModelUsage>();

  /** `from`: the usage of a resumed run so far (not counted in the metrics again). */
  constructor(
    private readonly metrics?: Pick<CoordinatorMetrics, 'modelTokens'>,
    from?: UsageReport,
  ) {
    for (const entry of from?.byModel ?? [])
      this.byKey.set(`${entry.role}\u0000${entry.model}`, { ...entry });
  }

  /** Counts one response; returns its usage split by role. */
  add(message: BetaMessage): { executor: TokenCounts; advisor: TokenCounts } {
    const turn = { executor: emptyCounts(), advisor: emptyCounts() };
    for (const { model, role, counts } of usageEntries(message)) {
      addInto(turn[role], counts);
      const key = `${role}\u0000${model}`;
      const entry = this.byKey.get(key) ?? { model, role, calls: 0, ...emptyCounts() };
      addInto(entry, counts);
      entry.calls += 1;
      this.byKey.set(key, entry);
      this.observe(model, role, counts);
    }
    return turn;
  }

  report(): UsageReport {
    const byModel = [...this.byKey.values()].map((e) => ({ ...e }));
    const total = (role: ModelRole) => {
      const sum = emptyCounts();
      for (const e of byModel) if (e.role === role) addInto(sum, e);
      return sum;
    };
    return { executor: total('executor'), advisor: total('advisor'), byModel };
  }

  private observe(model: string, role: ModelRole, counts: TokenCounts): void {
    if (!this.metrics) return;
    const kinds: [string, number][] = [
      ['input', counts.inputTokens],
      ['output', counts.outputTokens],
      ['cache_creation', counts.cacheCreationInputTokens],
      ['cache_read', counts.cacheReadInputTokens],
    ];
    for (const [kind, n] of kinds) if (n > 0) this.metrics.modelTokens.inc({ model, role, kind }, n);
  }
}
