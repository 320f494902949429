/**
 * Static checks of deploy/examples/Dockerfile.tools (no Docker engine here): it builds on the toolq
 * image, copies files that exist to where the worker resolves their imports, runs the worker's
 * built bin with plain node as in deploy/Dockerfile, and the module and MCP config it serves load.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';

const DEPLOY = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const EXAMPLES = join(DEPLOY, 'examples');
const ROOT = resolve(DEPLOY, '..');

const dockerfile = readFileSync(join(EXAMPLES, 'Dockerfile.tools'), 'utf8');
// Instructions with their continuation lines joined, comments dropped.
const lines = dockerfile
  .replace(/\\\n/g, ' ')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l && !l.startsWith('#'));
const cmd = JSON.parse((lines.find((l) => l.startsWith('CMD ')) ?? 'CMD []').slice(4)) as string[];
const workerBin = (
  Object.values(
    (
      JSON.parse(readFileSync(join(ROOT, 'packages/worker/package.json'), 'utf8')) as {
        bin: Record<string, string>;
      }
    ).bin,
  )[0] ?? ''
).replace(/^\.\//, '');
/** Image path → file of deploy/examples, from the COPY lines (`COPY a b /dir/`). */
const copied = new Map<string, string>(
  lines
    .filter((l) => l.startsWith('COPY '))
    .flatMap((l) => {
      const parts = l.split(/\s+/).slice(1);
      const dest = parts.pop() ?? '';
      return parts.map((src) => [`${dest.replace(/\/$/, '')}/${src}`, join(EXAMPLES, src)] as const);
    }),
);
const flag = (name: string) => cmd[cmd.indexOf(name) + 1] ?? '';

describe('deploy/examples/Dockerfile.tools', () => {
  it('builds FROM the toolq image, by default the tag deploy/README.md builds', () => {
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a Dockerfile build argument, not a template
    expect(lines.filter((l) => /^FROM\s/i.test(l))).toEqual(['FROM ${TOOLQ_IMAGE}']);
    expect(lines).toContain('ARG TOOLQ_IMAGE=toolq');
  });

  it('copies files that exist, under /app/worker/ so they resolve @toolq/shared and zod from the worker', () => {
    expect(copied.size).toBeGreaterThan(0);
    for (const [dest, src] of copied) {
      expect(existsSync(src), src).toBe(true);
      expect(dest).toMatch(/^\/app\/worker\//);
    }
  });

  it('runs the worker bin under plain node, with the copied module and MCP config, as an unprivileged user', () => {
    expect(cmd.slice(0, 2)).toEqual(['node', `/app/worker/${workerBin}`]);
    expect(copied.has(flag('--tools'))).toBe(true);
    expect(flag('--tools')).toMatch(/\.mjs$/);
    expect(copied.has(flag('--mcp'))).toBe(true);
    expect(lines.filter((l) => l.startsWith('USER ')).at(-1)).toBe('USER node');
  });

  it('serves a tool module that loads, and an MCP server installed by the image, pinned to the tested version', async () => {
    const mod = (await import(pathToFileURL(copied.get(flag('--tools')) ?? '').href)) as {
      default: { name: string }[];
    };
    expect(mod.default.map((t) => t.name)).toEqual(['get_weather']);
    const mcp = JSON.parse(readFileSync(copied.get(flag('--mcp')) ?? '', 'utf8')) as {
      mcpServers: Record<string, { command: string; args: string[] }>;
    };
    const install = lines.find((l) => /^RUN .*npm install --prefix \/app\/mcp /.test(l)) ?? '';
    const [, pkg, version] = /(@modelcontextprotocol\/server-filesystem)@(\S+)/.exec(install) ?? [];
    expect(version).toBeDefined();
    expect(readFileSync(join(ROOT, 'pnpm-lock.yaml'), 'utf8')).toContain(`'${pkg}@${version}'`);
    for (const server of Object.values(mcp.mcpServers)) {
      expect(server.command).toBe('node');
      expect(server.args[0]).toMatch(new RegExp(`^/app/mcp/node_modules/${pkg}/`));
    }
  });
});
