/**
 * Token accounting by model and role (src/agent/usage.ts), without a model or Redis: sums across
 * turns, cache writes and reads, the executor and the advisor told apart by `usage.iterations`
 * (never counted twice with the top-level usage), compaction and fallback iterations, fields a
 * response leaves out or sends as null, a resumed run's usage so far, and the token counter.
 */
import { createCoordinatorMetrics, createRegistry } from '@toolq/shared/internal';
import { describe, expect, it } from 'vitest';
import type { BetaMessage, UsageReport } from '../../src/agent/types.ts';
import { emptyCounts, UsageTracker, usageEntries } from '../../src/agent/usage.ts';
import { ADVISOR, EXECUTOR, iteration, message, text, usage } from './message-fixtures.ts';

const FALLBACK = 'claude-haiku-4-5';

/** A response carrying only top-level usage (no advisor, no iterations). */
function plain(
  input: number,
  output: number,
  cacheWrite: number | null = null,
  cacheRead: number | null = null,
) {
  return message('end_turn', [text('ok')], {
    usage: usage({
      input_tokens: input,
      output_tokens: output,
      cache_creation_input_tokens: cacheWrite,
      cache_read_input_tokens: cacheRead,
    }),
  });
}

/**
 * A response in which the executor consulted the advisor: the top-level usage is the API's
 * summary, the iterations are the truth per model.
 */
function advised(): BetaMessage {
  return message('end_turn', [text('ok')], {
    usage: usage({
      input_tokens: 999,
      output_tokens: 999,
      cache_creation_input_tokens: 999,
      cache_read_input_tokens: 999,
      iterations: [
        iteration('message', { input: 100, output: 20, cacheRead: 50 }),
        iteration('advisor_message', { input: 300, output: 40, cacheWrite: 7 }),
        iteration('message', { input: 130, output: 25, cacheRead: 60 }),
      ],
    }),
  });
}

async function counterValues(metrics: ReturnType<typeof createCoordinatorMetrics>) {
  const { values } = await metrics.modelTokens.get();
  return Object.fromEntries(
    values.map((v) => [`${v.labels.role}/${v.labels.model}/${v.labels.kind}`, v.value]),
  );
}

function freshMetrics() {
  return createCoordinatorMetrics(createRegistry({ defaultMetrics: false }));
}

describe('usageEntries', () => {
  it('without iterations: one executor entry from the top-level usage, null cache counts as 0', () => {
    expect(usageEntries(plain(1_200, 300))).toEqual([
      {
        model: EXECUTOR,
        role: 'executor',
        counts: { ...emptyCounts(), inputTokens: 1_200, outputTokens: 300 },
      },
    ]);
    expect(usageEntries(plain(10, 2, 4_000, 12_000))[0]?.counts).toEqual({
      inputTokens: 10,
      outputTokens: 2,
      cacheCreationInputTokens: 4_000,
      cacheReadInputTokens: 12_000,
    });
  });

  it('an empty iterations list is the same as none', () => {
    const response = plain(5, 6, 7, 8);
    const withEmpty = { ...response, usage: { ...response.usage, iterations: [] } };
    expect(usageEntries(withEmpty)).toEqual(usageEntries(response));
  });

  it('a response as older APIs and the scripted model send it: no cache fields, no iterations at all', () => {
    const response = plain(40, 9);
    const { cache_creation_input_tokens, cache_read_input_tokens, iterations, ...sparse } = response.usage;
    const old = { ...response, usage: sparse } as unknown as BetaMessage;
    expect(usageEntries(old)).toEqual([
      { model: EXECUTOR, role: 'executor', counts: { ...emptyCounts(), inputTokens: 40, outputTokens: 9 } },
    ]);
  });

  it('with iterations: one entry each, the advisor by its model, the top-level usage ignored', () => {
    expect(usageEntries(advised())).toEqual([
      {
        model: EXECUTOR,
        role: 'executor',
        counts: { inputTokens: 100, outputTokens: 20, cacheCreationInputTokens: 0, cacheReadInputTokens: 50 },
      },
      {
        model: ADVISOR,
        role: 'advisor',
        counts: { inputTokens: 300, outputTokens: 40, cacheCreationInputTokens: 7, cacheReadInputTokens: 0 },
      },
      {
        model: EXECUTOR,
        role: 'executor',
        counts: { inputTokens: 130, outputTokens: 25, cacheCreationInputTokens: 0, cacheReadInputTokens: 60 },
      },
    ]);
  });

  it("compaction and fallback iterations are the executor's: compaction under the response's model, fallback under its own", () => {
    const response = message('end_turn', [text('ok')], {
      usage: usage({
        input_tokens: 1,
        output_tokens: 1,
        iterations: [
          iteration('compaction', { input: 5_000, output: 800 }),
          iteration('message', { input: 20, output: 10 }, EXECUTOR),
          iteration('fallback_message', { input: 30, output: 15 }, FALLBACK),
        ],
      }),
    });
    expect(
      usageEntries(response).map(({ model, role, counts }) => [model, role, counts.inputTokens]),
    ).toEqual([
      [EXECUTOR, 'executor', 5_000],
      [EXECUTOR, 'executor', 20],
      [FALLBACK, 'executor', 30],
    ]);
  });
});

describe('UsageTracker', () => {
  it('sums a run across turns per role and model, cache tokens included, counting calls', () => {
    const tracker = new UsageTracker();
    expect(tracker.add(plain(1_000, 100, 2_000, null))).toEqual({
      executor: {
        inputTokens: 1_000,
        outputTokens: 100,
        cacheCreationInputTokens: 2_000,
        cacheReadInputTokens: 0,
      },
      advisor: emptyCounts(),
    });
    // The turn's own usage, split by role: both executor iterations in one sum.
    expect(tracker.add(advised())).toEqual({
      executor: {
        inputTokens: 230,
        outputTokens: 45,
        cacheCreationInputTokens: 0,
        cacheReadInputTokens: 110,
      },
      advisor: { inputTokens: 300, outputTokens: 40, cacheCreationInputTokens: 7, cacheReadInputTokens: 0 },
    });
    tracker.add(plain(50, 5, null, 2_000));
    expect(tracker.report()).toEqual({
      executor: {
        inputTokens: 1_280,
        outputTokens: 150,
        cacheCreationInputTokens: 2_000,
        cacheReadInputTokens: 2_110,
      },
      advisor: { inputTokens: 300, outputTokens: 40, cacheCreationInputTokens: 7, cacheReadInputTokens: 0 },
      byModel: [
        {
          model: EXECUTOR,
          role: 'executor',
          calls: 4, // three turns, one of them two inferences
          inputTokens: 1_280,
          outputTokens: 150,
          cacheCreationInputTokens: 2_000,
          cacheReadInputTokens: 2_110,
        },
        {
          model: ADVISOR,
          role: 'advisor',
          calls: 1,
          inputTokens: 300,
          outputTokens: 40,
          cacheCreationInputTokens: 7,
          cacheReadInputTokens: 0,
        },
      ],
    } satisfies UsageReport);
  });

  it('keeps one model in two roles apart, and two executor models apart', () => {
    const tracker = new UsageTracker();
    // The same model as executor (by its response) and as advisor (by its iteration), then a fallback.
    tracker.add(
      message('tool_use', [text('x')], {
        model: ADVISOR,
        usage: usage({
          input_tokens: 0,
          output_tokens: 0,
          iterations: [
            iteration('message', { input: 1, output: 1 }),
            iteration('advisor_message', { input: 2, output: 2 }, ADVISOR),
            iteration('fallback_message', { input: 3, output: 3 }, FALLBACK),
          ],
        }),
      }),
    );
    const byModel = tracker.report().byModel.map((e) => [e.role, e.model, e.inputTokens, e.calls]);
    expect(byModel).toEqual([
      ['executor', ADVISOR, 1, 1],
      ['advisor', ADVISOR, 2, 1],
      ['executor', FALLBACK, 3, 1],
    ]);
    expect(tracker.report().executor.inputTokens).toBe(4);
    expect(tracker.report().advisor.inputTokens).toBe(2);
  });

  it('reports zeros and no models before any response', () => {
    expect(new UsageTracker().report()).toEqual({
      executor: emptyCounts(),
      advisor: emptyCounts(),
      byModel: [],
    });
  });

  it("continues a resumed run's usage, without changing the report it was given", () => {
    const first = new UsageTracker();
    first.add(advised());
    const saved = first.report();
    const savedCopy = structuredClone(saved);

    const resumed = new UsageTracker(undefined, saved);
    resumed.add(plain(1, 1));
    const report = resumed.report();
    expect(report.executor.inputTokens).toBe(231);
    expect(report.advisor.inputTokens).toBe(300);
    expect(report.byModel.find((e) => e.role === 'executor')?.calls).toBe(3);
    expect(saved).toEqual(savedCopy);
  });

  it('hands out copies: changing a report changes neither the tracker nor the next report', () => {
    const tracker = new UsageTracker();
    tracker.add(plain(10, 1));
    const report = tracker.report();
    report.executor.inputTokens = 1e9;
    const entry = report.byModel[0];
    if (entry) entry.inputTokens = 1e9;
    expect(tracker.report().executor.inputTokens).toBe(10);
    expect(tracker.report().byModel[0]?.inputTokens).toBe(10);
  });

  it('counts tokens by model, role and kind in the metrics; skips zeros and what a resumed run had', async () => {
    const metrics = freshMetrics();
    const before = new UsageTracker();
    before.add(plain(7_777, 7_777));
    const tracker = new UsageTracker(metrics, before.report());
    tracker.add(advised());
    tracker.add(plain(10, 1, 0, 3));
    expect(await counterValues(metrics)).toEqual({
      [`executor/${EXECUTOR}/input`]: 240,
      [`executor/${EXECUTOR}/output`]: 46,
      [`executor/${EXECUTOR}/cache_read`]: 113,
      [`advisor/${ADVISOR}/input`]: 300,
      [`advisor/${ADVISOR}/output`]: 40,
      [`advisor/${ADVISOR}/cache_creation`]: 7,
    });
  });
});
