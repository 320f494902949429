/**
 * toolq as another team installs it: build, `pnpm pack` every publishable package, `npm install`
 * the tarballs into a fresh project outside the repo with production dependencies only (no tsx, no
 * typescript), then run what that project would: the installed `toolq-worker` serving the
 * project's own `tools.mjs`, the installed `toolq-coordinator` answering a batch over HTTP, a
 * Dispatcher and the agent loop from plain Node scripts, and `tsc --strict` over a consumer .ts
 * file against the installed declarations. Nothing of the workspace leaks in: the children get a
 * bare environment (no NODE_OPTIONS with the source condition) and the project's own cwd.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildablePackages, buildPackages, REPO_ROOT as REPO } from '../../test-support/built-packages.ts';
import { waitForReadyLine } from '../../test-support/ready-line.ts';
import { type RedisServer, startRedisServer } from '../../test-support/redis-server.ts';
import { stopChild } from '../../test-support/stop-child.ts';

const run = promisify(execFile);
const APP = fileURLToPath(new URL('./app/', import.meta.url));
const APP_FILES = ['tools.mjs', 'dispatch.mjs', 'agent.mjs', 'consumer.ts'];
const PREFIX = 'consumer';

/**
 * Packages under toolq that declare a newer Node than toolq's own `engines` (>= 20.12), with no
 * older version their dependents' ranges accept: npm notes them (EBADENGINE) on Node 20. Both are
 * plain JS that works there (the README says so); anything else with such a notice fails the test.
 */
const NODE_22_ONLY = ['content-disposition', 'cookie'];
const NODE_MAJOR = Number(process.versions.node.split('.')[0]);

/** The workspace packages users install: those that build and are not private. */
const publishablePackages = () => buildablePackages().filter((pkg) => !pkg.private);

interface PackageJson {
  name: string;
  version: string;
  exports?: unknown;
  bin?: Record<string, string>;
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
}

/** What a user's shell has: PATH and HOME (npm's cache), nothing from this workspace or vitest. */
function bareEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    TOOLQ_LOG_LEVEL: 'warn',
    ...extra,
  };
}

let dir: string;
let project: string;
let redis: RedisServer;
let packages: ReturnType<typeof publishablePackages>;
/** What `npm install` wrote on stderr (its warnings). */
let installWarnings: string;
const children: ChildProcess[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'toolq-consumer-'));
  project = join(dir, 'app');
  const tarballs = join(dir, 'tarballs');
  mkdirSync(project);
  mkdirSync(tarballs);
  packages = publishablePackages();
  await buildPackages();
  await Promise.all(
    packages.map((pkg) =>
      run('pnpm', ['pack', '--pack-destination', tarballs], { cwd: pkg.dir, env: bareEnv() }),
    ),
  );
  // The SDK too: consumer.ts hands results to its types, as a user's app does.
  const dependencies: Record<string, string> = { zod: '^4.6.7', '@anthropic-ai/sdk': '^1.14.0' };
  for (const file of readdirSync(tarballs)) {
    const pkg = packages.find((p) => file === `${p.name.slice(1).replace('/', '-')}-${p.version}.tgz`);
    if (pkg) dependencies[pkg.name] = `file:${join(tarballs, file)}`;
  }
  writeFileSync(
    join(project, 'package.json'),
    JSON.stringify(
      { name: 'their-app', version: '1.0.0', private: true, type: 'module', dependencies },
      null,
      2,
    ),
  );
  for (const file of APP_FILES) copyFileSync(join(APP, file), join(project, file));
  const install = await run(
    'npm',
    ['install', '--omit=dev', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=warn'],
    {
      cwd: project,
      env: bareEnv(),
    },
  );
  installWarnings = install.stderr;
  redis = await startRedisServer();
}, 240_000);

afterAll(async () => {
  await Promise.all(children.map((child) => stopChild(child)));
  await redis?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function installed(name: string): PackageJson {
  return JSON.parse(readFileSync(join(project, 'node_modules', name, 'package.json'), 'utf8')) as PackageJson;
}

/** An installed bin, started the way the project's own scripts would (cwd = the project). */
async function startBin<T extends { event: 'ready' }>(bin: string, args: string[]): Promise<T> {
  const child = spawn(join(project, 'node_modules', '.bin', bin), args, {
    cwd: project,
    env: bareEnv({ REDIS_URL: redis.url, TOOLQ_PREFIX: PREFIX }),
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return waitForReadyLine<T>(child, exited, bin, 60_000);
}

async function node(script: string): Promise<string> {
  const { stdout } = await run(process.execPath, [script], {
    cwd: project,
    env: bareEnv({ REDIS_URL: redis.url, TOOLQ_PREFIX: PREFIX }),
  });
  return stdout;
}

describe('toolq installed from its packed tarballs into a project outside the repo', () => {
  it('installs built JS, declarations and source maps with production dependencies only', () => {
    expect(packages.map((p) => p.name)).toEqual(
      expect.arrayContaining([
        '@toolq/shared',
        '@toolq/worker',
        '@toolq/coordinator',
        '@toolq/client',
        '@toolq/scripted-model',
      ]),
    );
    // Versions move together, and the tarballs depend on each other at exactly that version.
    expect(new Set(packages.map((p) => p.version)).size).toBe(1);
    for (const { name, version } of packages) {
      const pkg = installed(name);
      const root = join(project, 'node_modules', name);
      expect(pkg.version).toBe(version);
      expect(existsSync(join(root, 'dist', 'index.js')), name).toBe(true);
      expect(existsSync(join(root, 'dist', 'index.d.ts')), name).toBe(true);
      expect(existsSync(join(root, 'dist', 'index.js.map')), name).toBe(true);
      expect(existsSync(join(root, 'test')), `${name} ships its tests`).toBe(false);
      // Its own README (what it is, how to install it from the tarball, an example): test/doc-blocks checks its code.
      expect(readFileSync(join(root, 'README.md'), 'utf8'), `${name} ships its README`).toContain(
        `# ${name}`,
      );
      const ranges = { ...pkg.dependencies, ...pkg.peerDependencies };
      for (const [dep, range] of Object.entries(ranges)) {
        expect(range, `${name} → ${dep}`).not.toMatch(/^workspace:/);
        if (dep.startsWith('@toolq/')) expect(range, `${name} → ${dep}`).toBe(version);
      }
      // Every export and bin of the installed package is built JS (the in-repo `toolq-source`
      // condition is left out of the tarball by publishConfig).
      const targets = JSON.stringify([pkg.exports, pkg.bin]).match(/"\.\/[^"]+"/g) ?? [];
      for (const target of targets) expect(target, `${name} exports ${target}`).not.toMatch(/(?<!\.d)\.ts"$/);
      for (const target of Object.values(pkg.bin ?? {})) {
        expect(readFileSync(join(root, target), 'utf8').startsWith('#!/usr/bin/env node\n'), target).toBe(
          true,
        );
      }
    }
    // One copy of each toolq package: npm used the tarballs, never a registry package of that name.
    for (const { name } of packages) {
      for (const other of packages) {
        expect(existsSync(join(project, 'node_modules', other.name, 'node_modules', name))).toBe(false);
      }
    }
    for (const dev of ['tsx', 'typescript', 'vitest', '@types/node']) {
      expect(existsSync(join(project, 'node_modules', dev)), `${dev} was installed`).toBe(false);
    }
  });

  it('installs without an engine warning, but for the two packages the README names on Node 20', () => {
    const engineWarnings = installWarnings.split('\n').filter((line) => /EBADENGINE/.test(line));
    const named = engineWarnings
      .map((line) => /package: '([^@']+)@/.exec(line)?.[1])
      .filter((name): name is string => name !== undefined);
    expect(named.length, installWarnings).toBe(engineWarnings.filter((l) => /package:/.test(l)).length);
    if (NODE_MAJOR >= 22) expect(engineWarnings).toEqual([]);
    else expect([...new Set(named)].filter((n) => !NODE_22_ONLY.includes(n))).toEqual([]);
  });

  it('each installed CLI answers --version with its package version, and toolq-report --help', async () => {
    const version = installed('@toolq/coordinator').version;
    for (const bin of ['toolq-worker', 'toolq-coordinator', 'toolq-report']) {
      const { stdout } = await run('npx', ['--no-install', bin, '--version'], {
        cwd: project,
        env: bareEnv(),
      });
      expect(stdout.trim(), bin).toBe(version);
    }
    const { stdout } = await run('npx', ['--no-install', 'toolq-report', '--help'], {
      cwd: project,
      env: bareEnv(),
    });
    expect(stdout).toMatch(/^Usage: toolq-report/);
    expect(stdout).toContain('--window');
  });

  it('toolq-worker --tools ./tools.mjs and toolq-coordinator from node_modules/.bin answer a batch over HTTP', async () => {
    const worker = await startBin<{ event: 'ready'; worker: string }>('toolq-worker', [
      '--tools',
      './tools.mjs',
      '--no-metrics',
    ]);
    const { url } = await startBin<{ event: 'ready'; url: string }>('toolq-coordinator', ['--port', '0']);
    const res = await fetch(`${url}/v1/tool-batches`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        tool_uses: [
          { id: 'toolu_a', name: 'get_weather', input: { city: 'Paris' } },
          { id: 'toolu_b', name: 'get_weather', input: { city: 'Reykjavik' } },
        ],
        timeout_ms: 10_000,
      }),
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as {
      tool_results: { tool_use_id: string; content: string; is_error?: boolean }[];
      stats: { calls: { worker?: string }[] };
    };
    expect(body.tool_results).toEqual([
      { type: 'tool_result', tool_use_id: 'toolu_a', content: '{"city":"Paris","celsius":15}' },
      { type: 'tool_result', tool_use_id: 'toolu_b', content: '{"city":"Reykjavik","celsius":19}' },
    ]);
    expect(body.stats.calls.map((c) => c.worker)).toEqual([worker.worker, worker.worker]);
    const ready = await fetch(`${url}/readyz`);
    expect(ready.status).toBe(200);
  });

  it('a Dispatcher from a plain Node script gets one result per block, in order, bad input marked is_error', async () => {
    const results = JSON.parse(await node('dispatch.mjs')) as {
      tool_use_id: string;
      content: string;
      is_error?: boolean;
    }[];
    expect(results.map((r) => r.tool_use_id)).toEqual(['toolu_1', 'toolu_2', 'toolu_3']);
    expect(results[0]).toMatchObject({ content: '{"city":"Paris","celsius":15}' });
    expect(results[0]?.is_error).toBeUndefined();
    expect(results[1]).toMatchObject({ content: '{"city":"Oslo","celsius":14}' });
    expect(results[2]?.is_error).toBe(true);
    expect(results[2]?.content).toMatch(/city/);
  });

  it('the agent loop runs offline against @toolq/scripted-model from a plain Node script', async () => {
    const result = JSON.parse(await node('agent.mjs')) as { status: string; text: string; calls: number };
    expect(result.status).toBe('end_turn');
    expect(result.calls).toBe(2);
    expect(result.text).toContain('Lima');
  });

  it('tsc --strict type-checks a consumer .ts file against the installed declarations', async () => {
    // typescript and @types/node are the consumer's dev tools; they come from the repo for this step only.
    const tsc = join(REPO, 'node_modules', 'typescript', 'bin', 'tsc');
    const args = (files: string[]) => [
      tsc,
      '--strict',
      '--noEmit',
      '--target',
      'es2022',
      '--module',
      'nodenext',
      '--moduleResolution',
      'nodenext',
      '--typeRoots',
      join(REPO, 'node_modules', '@types'),
      '--types',
      'node',
      // As `tsc --init` sets it; consumer.ts's @ts-expect-error lines still catch declarations gone `any`.
      '--skipLibCheck',
      ...files,
    ];
    const { code, out } = await run(process.execPath, args(['consumer.ts']), {
      cwd: project,
      env: bareEnv(),
    }).then(
      (r) => ({ code: 0, out: r.stdout }),
      (err: { code: number; stdout: string }) => ({ code: err.code, out: err.stdout }),
    );
    expect({ code, out }).toEqual({ code: 0, out: '' });
  });
});
