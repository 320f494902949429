/**
 * The benchmark code paths of `pnpm bench --quick`, in a tiny configuration: every benchmark runs,
 * the report has every table, and toolq loses nothing. No timing is asserted: this machine's
 * timings belong in docs/benchmarks.md, not in a test.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { RUN_SOURCES } from '../../test-support/run-sources.ts';
import { TINY } from '../config.ts';
import { benchMain } from '../main.ts';
import { REPO_ROOT } from '../processes.ts';
import { checkTargets, toolqLostTotal } from '../report.ts';
import { percentile, summarize } from '../stats.ts';
import type { SuiteResult } from '../suite.ts';

const dir = mkdtempSync(join(tmpdir(), 'toolq-bench-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('pnpm bench (tiny configuration)', () => {
  it('runs every benchmark and writes a report with every table, toolq losing nothing', async () => {
    const out = join(dir, 'benchmarks.md');
    let result: SuiteResult | undefined;
    const printed: string[] = [];
    const code = await benchMain(['--quick', '--out', out], {
      config: TINY,
      io: { stdout: (t) => printed.push(t), stderr: () => undefined },
      onResult: (r) => {
        result = r;
      },
    });
    expect(code).toBe(0);
    const md = readFileSync(out, 'utf8');
    expect(printed.join('')).toContain(md.trim());

    for (const heading of [
      '# toolq benchmarks',
      '## Targets (issue 5)',
      '## 1. Barrier overhead',
      '**Start-up burst.**',
      '## 2. Throughput',
      '## 3. The competitor scenario',
      '## 4. Streaming early dispatch',
      '## 5. Memory and scale',
      '## 6. HTTP front door vs the library',
    ]) {
      expect(md).toContain(heading);
    }
    for (const field of [
      'CPU',
      'Node',
      'redis-server',
      'bullmq',
      'ioredis',
      '@anthropic-ai/sdk',
      'command',
    ]) {
      expect(md).toMatch(new RegExp(`^\\| ${field.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} \\|`, 'm'));
    }
    expect(md).toContain('`pnpm bench --quick --out');

    const r = result as SuiteResult;
    // Every table has its rows: 3 systems per batch size, 2 per worker count, 3 competitor rows.
    expect(r.overhead).toHaveLength(TINY.overhead.batchSizes.length * 3);
    expect(r.throughput).toHaveLength(TINY.throughput.workerCounts.length * 2);
    expect(r.competitor).toHaveLength(3);
    expect(Array.isArray(r.earlyDispatch) ? r.earlyDispatch.length : 0).toBe(
      TINY.earlyDispatch.scenarios.length * 2,
    );
    for (const row of r.overhead) expect(row.overhead.n).toBeGreaterThan(0);
    // HTTP vs library: every path for every size, every batch answered without an error.
    expect(r.http.rows).toHaveLength(TINY.http.batchSizes.length * 3);
    for (const row of r.http.rows) expect(row).toMatchObject({ errors: 0, wall: { n: 5 } });
    expect(r.http.healthz.n).toBeGreaterThan(0);

    // Nothing lost, nothing failed on the toolq side, anywhere.
    expect(toolqLostTotal(r).lost).toBe(0);
    expect(r.startup.toolq).toMatchObject({ lost: 0, errors: 0 });
    for (const row of r.overhead.filter((o) => o.system === 'toolq'))
      expect(row).toMatchObject({ lost: 0, errors: 0 });
    for (const row of r.throughput) expect(row).toMatchObject({ lost: 0, errors: 0 });
    expect(r.competitor.find((c) => c.system === 'toolq')).toMatchObject({ lost: 0, errors: 0 });
    expect(r.memory).toMatchObject({ lost: 0, errors: 0, pendingAtMeasure: TINY.memory.batches });
    if (Array.isArray(r.earlyDispatch)) for (const row of r.earlyDispatch) expect(row.errors).toBe(0);

    // Every target gets a verdict line.
    const checks = checkTargets(r);
    expect(checks).toHaveLength(7);
    for (const c of checks) expect(md).toContain(c.target);
  });

  it('prints its usage with --help and rejects unknown flags', () => {
    const run = (args: string[]) =>
      spawnSync(process.execPath, [...RUN_SOURCES, join(REPO_ROOT, 'bench/run.ts'), ...args], {
        cwd: REPO_ROOT,
        encoding: 'utf8',
        timeout: 30_000,
      });
    const help = run(['--help']);
    expect(help.status).toBe(0);
    expect(help.stdout).toContain('Usage: pnpm bench [--quick] [--out <file>]');
    const bad = run(['--fast']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain("Unknown option '--fast'");
  });
});

describe('stats', () => {
  it('takes nearest-rank percentiles', () => {
    const xs = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(xs, 50)).toBe(50);
    expect(percentile(xs, 99)).toBe(99);
    expect(percentile([7], 99)).toBe(7);
    expect(percentile([], 50)).toBeNaN();
    expect(summarize([3, 1, 2])).toMatchObject({ n: 3, min: 1, p50: 2, max: 3, mean: 2 });
  });
});
