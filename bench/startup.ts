/**
 * `tsx --conditions=toolq-source bench/startup.ts [runs]`: time from spawning a toolq process to its
 * first 200 on /readyz, for the TypeScript sources under tsx (as `pnpm coordinator` runs them) and
 * for the built output under plain node (as the image runs it), against one private redis-server.
 * tsx is measured cold (an empty transform cache, like a fresh container) and warm. Needs
 * `pnpm build` first. Prints one Markdown table.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../test-support/free-port.ts';
import { startRedisServer } from '../test-support/redis-server.ts';
import { RUN_SOURCES } from '../test-support/run-sources.ts';
import { stopChild } from '../test-support/stop-child.ts';
import { median } from './stats.ts';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const runs = Number(process.argv[2] ?? 5);

interface Variant {
  name: string;
  args: (component: Component, port: number) => string[];
  /** A fresh TMPDIR per run: tsx keeps its transform cache there. */
  coldCache?: boolean;
}
type Component = 'coordinator' | 'worker';

const componentArgs = (component: Component, port: number): string[] =>
  component === 'coordinator'
    ? ['--port', String(port)]
    : ['--tools', 'diagnostics', '--metrics-port', String(port), '--metrics-host', '127.0.0.1'];

const VARIANTS: Variant[] = [
  {
    name: 'tsx sources, cold cache',
    coldCache: true,
    args: (c, port) => [...RUN_SOURCES, join(REPO, `packages/${c}/src/cli.ts`), ...componentArgs(c, port)],
  },
  {
    name: 'tsx sources, warm cache',
    args: (c, port) => [...RUN_SOURCES, join(REPO, `packages/${c}/src/cli.ts`), ...componentArgs(c, port)],
  },
  {
    name: 'node built output',
    args: (c, port) => [join(REPO, `packages/${c}/dist/cli.js`), ...componentArgs(c, port)],
  },
];

async function untilReady(url: string, child: ChildProcess, started: number): Promise<number> {
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${url}: the process exited with ${child.exitCode}`);
    const ok = await fetch(url).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ok) return performance.now() - started;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

async function measure(variant: Variant, component: Component, redisUrl: string): Promise<number> {
  const port = await freePort();
  const tmp = variant.coldCache ? mkdtempSync(join(tmpdir(), 'toolq-startup-')) : undefined;
  const started = performance.now();
  const child = spawn(process.execPath, variant.args(component, port), {
    env: {
      PATH: process.env.PATH,
      REDIS_URL: redisUrl,
      TOOLQ_LOG_LEVEL: 'warn',
      ...(tmp ? { TMPDIR: tmp } : {}),
    },
    stdio: 'ignore',
  });
  try {
    return await untilReady(`http://127.0.0.1:${port}/readyz`, child, started);
  } finally {
    await stopChild(child);
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  for (const c of ['coordinator', 'worker'] as const) {
    if (!existsSync(join(REPO, `packages/${c}/dist/cli.js`))) throw new Error('run `pnpm build` first');
  }
  const redis = await startRedisServer();
  const rows: string[] = [];
  try {
    for (const component of ['coordinator', 'worker'] as const) {
      // One unmeasured start of each variant: the OS file cache, and the warm tsx cache.
      for (const v of VARIANTS) await measure(v, component, redis.url);
      for (const v of VARIANTS) {
        const ms: number[] = [];
        for (let i = 0; i < runs; i++) ms.push(await measure(v, component, redis.url));
        rows.push(
          `| ${component} | ${v.name} | ${Math.round(median(ms))} | ${Math.round(Math.min(...ms))} | ${Math.round(Math.max(...ms))} |`,
        );
      }
    }
  } finally {
    await redis.stop();
  }
  process.stdout.write(
    [
      `Process start → first 200 on /readyz, ${runs} runs each (Node ${process.version}).`,
      '',
      '| process | runs | median ms | min ms | max ms |',
      '| --- | --- | ---: | ---: | ---: |',
      ...rows,
      '',
    ].join('\n'),
  );
}

await main();
