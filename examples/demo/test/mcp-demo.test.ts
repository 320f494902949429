/**
 * `pnpm demo files`: the agent works through the real MCP filesystem server on a temp folder, its
 * tools running on worker processes as fs__<tool>, with the offline scripted model.
 */
import { describe, expect, it } from 'vitest';
import { runDemo } from '../run-demo.ts';

describe('pnpm demo files', () => {
  it('lists, reads the notes in parallel and writes a summary through MCP tools on the fleet', async () => {
    const env: NodeJS.ProcessEnv = { ...process.env, TOOLQ_LOG_LEVEL: 'warn' };
    delete env.REDIS_URL;
    delete env.ANTHROPIC_API_KEY;
    delete env.ANTHROPIC_BASE_URL;
    const report = await runDemo({ scenario: 'files', env, model: 'scripted', workers: 1 });
    expect(report.status).toBe('end_turn');
    expect(report.calls.map((c) => c.name)).toEqual([
      'fs__list_allowed_directories',
      'fs__list_directory',
      'fs__read_text_file',
      'fs__read_text_file',
      'fs__read_text_file',
      'fs__write_file',
    ]);
    expect(report.calls.every((c) => !c.isError)).toBe(true);
    // Three reads in one model turn: one batch.
    expect(report.iterations.map((i) => i.toolCalls)).toEqual([1, 1, 3, 1, 0]);
    expect(report.answer).toMatch(/^Successfully wrote to \/.*\/notes\/summary\.md/);
    expect(report.answer).toContain(
      '- Retro: keep the offline demo in CI. (action: Grace adds the files scenario to the README.)',
    );
    expect(report.performance.successRate).toBe(1);
  });
});
