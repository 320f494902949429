/**
 * docs/configuration.md and docs/metrics.md are generated (scripts/docs.ts) from the environment
 * schema and the metric table: a variable or metric added, renamed or re-described without
 * `pnpm run docs` fails here.
 */
import { readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { envVariables, generatedDocs } from '../scripts/docs.ts';
import { REPO_ROOT } from '../test-support/built-packages.ts';

describe('generated docs pages', () => {
  for (const doc of generatedDocs()) {
    it(`${relative(REPO_ROOT, doc.path)} is what pnpm run docs writes`, () => {
      expect(readFileSync(doc.path, 'utf8'), 'stale: run pnpm run docs').toBe(doc.content);
    });
  }

  it('documents every variable loadConfig reads, each with a meaning and a default', () => {
    const vars = envVariables();
    expect(vars.map((v) => v.name)).toEqual(
      expect.arrayContaining([
        'REDIS_URL',
        'TOOLQ_PREFIX',
        'ANTHROPIC_API_KEY',
        'OTEL_EXPORTER_OTLP_ENDPOINT',
      ]),
    );
    for (const v of vars) {
      expect(v.meaning, v.name).not.toBe('');
      expect(v.default, v.name).not.toBe('');
    }
  });

  it('lists every variable loadConfig reads (e.X in config.ts)', () => {
    const source = readFileSync(join(REPO_ROOT, 'packages/shared/src/config.ts'), 'utf8');
    const read = new Set([...source.matchAll(/\be\.([A-Z][A-Z0-9_]+)/g)].map((m) => m[1]));
    const documented = new Set(envVariables().map((v) => v.name));
    expect([...read].filter((name) => name && !documented.has(name))).toEqual([]);
  });

  it('refuses a variable without a doc comment, so the page cannot lose a row silently', () => {
    const source = `const envSchema = z.object({\n  /** Documented. */\n  A: z.string().optional(),\n  B: z.string().optional(),\n});`;
    expect(() => envVariables(source)).toThrow(/B has no doc comment/);
  });
});
