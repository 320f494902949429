import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadToolModule } from '../src/tool-modules.ts';

describe('loadToolModule', () => {
  it('loads the built-in modules', async () => {
    expect((await loadToolModule('diagnostics')).map((t) => t.name)).toEqual([
      'diag_sleep',
      'diag_echo',
      'diag_fail',
      'diag_crash',
    ]);
  });

  it('loads a module by path', async () => {
    const tools = await loadToolModule(
      new URL('../../../test-support/test-tools.ts', import.meta.url).pathname,
    );
    expect(tools.length).toBeGreaterThan(3);
  });

  it('explains what is wrong with a missing or malformed module', async () => {
    await expect(loadToolModule('./nowhere.ts')).rejects.toThrow(
      /cannot load tool module "\.\/nowhere\.ts".*Use one of diagnostics or a path to a module/,
    );
    const dir = mkdtempSync(join(tmpdir(), 'toolq-mod-'));
    const file = join(dir, 'bad.mjs');
    writeFileSync(file, 'export default [{ name: 1 }];');
    await expect(loadToolModule(file)).rejects.toThrow(/must default-export a non-empty array of tools/);
  });
});
