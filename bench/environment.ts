/** Where a benchmark ran: machine, runtimes and the library versions actually installed. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from './processes.ts';

export interface Environment {
  date: string;
  cpuModel: string;
  cores: number;
  memoryGiB: number;
  loadAverage: number[];
  node: string;
  redisServer: string;
  libraries: Record<string, string>;
}

/** Version from a package's installed package.json, resolved the way the package that uses it would. */
export function installedVersion(name: string, fromPackageDir = REPO_ROOT): string {
  try {
    const require = createRequire(join(fromPackageDir, 'package.json'));
    const pkgJson = require.resolve(`${name}/package.json`);
    return (JSON.parse(readFileSync(pkgJson, 'utf8')) as { version: string }).version;
  } catch {
    // Packages whose exports hide package.json: look in node_modules directly.
    try {
      const path = join(fromPackageDir, 'node_modules', name, 'package.json');
      return (JSON.parse(readFileSync(path, 'utf8')) as { version: string }).version;
    } catch {
      return 'not installed';
    }
  }
}

export function redisServerVersion(): string {
  try {
    const out = execFileSync('redis-server', ['--version'], { encoding: 'utf8' });
    return /v=([0-9.]+)/.exec(out)?.[1] ?? out.trim();
  } catch {
    return 'unknown';
  }
}

export function collectEnvironment(): Environment {
  const cpuList = cpus();
  const coordinatorDir = join(REPO_ROOT, 'packages', 'coordinator');
  return {
    date: new Date().toISOString(),
    cpuModel: cpuList[0]?.model.trim() ?? 'unknown',
    cores: cpuList.length,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    loadAverage: loadavg().map((x) => Math.round(x * 100) / 100),
    node: process.version,
    redisServer: redisServerVersion(),
    libraries: {
      bullmq: installedVersion('bullmq'),
      ioredis: installedVersion('ioredis'),
      '@anthropic-ai/sdk': installedVersion('@anthropic-ai/sdk', coordinatorDir),
      zod: installedVersion('zod'),
      tsx: installedVersion('tsx'),
    },
  };
}
