/**
 * Benchmark 5: coordinator heap per pending call with many single-call batches in flight, and the
 * time to answer all of them. The coordinator runs in a child process (`--expose-gc`) so its heap
 * holds nothing of the bench; the workers get enough concurrency to run every call at once, so the
 * time measured is the coordinator's and Redis's, not a queue waiting for a free worker.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { RUN_SOURCES } from '../test-support/run-sources.ts';
import type { MemoryChildInput, MemoryChildOutput } from './memory-child.ts';
import { REPO_ROOT, startToolqWorker } from './processes.ts';
import { type Summary, summarize } from './stats.ts';

const CHILD = fileURLToPath(new URL('./memory-child.ts', import.meta.url));

export interface MemoryConfig {
  batches: number;
  sleepMs: number;
  workers: number;
  /** The coordinator's deadWorkerAfterMs; default its own. */
  deadWorkerAfterMs?: number;
}

export interface MemoryResult extends Omit<MemoryChildOutput, 'latenciesMs'> {
  latency: Summary;
  workers: number;
  concurrencyPerWorker: number;
}

export async function measureMemory(redisUrl: string, cfg: MemoryConfig): Promise<MemoryResult> {
  const prefix = 'toolqmem';
  const concurrencyPerWorker = Math.ceil(cfg.batches / cfg.workers) + 10;
  const workers = await Promise.all(
    Array.from({ length: cfg.workers }, () =>
      startToolqWorker({ redisUrl, concurrency: concurrencyPerWorker, prefix }),
    ),
  );
  try {
    const input: MemoryChildInput = {
      redisUrl,
      prefix,
      batches: cfg.batches,
      sleepMs: cfg.sleepMs,
      ...(cfg.deadWorkerAfterMs ? { deadWorkerAfterMs: cfg.deadWorkerAfterMs } : {}),
    };
    const child = spawn(process.execPath, ['--expose-gc', ...RUN_SOURCES, CHILD, JSON.stringify(input)], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      out += chunk;
    });
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    const line = out.split('\n').find((l) => l.startsWith('{'));
    if (code !== 0 || !line)
      throw new Error(`memory benchmark child exited with ${code}: ${out.slice(0, 500)}`);
    const { latenciesMs, ...rest } = JSON.parse(line) as MemoryChildOutput;
    return { ...rest, latency: summarize(latenciesMs), workers: cfg.workers, concurrencyPerWorker };
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
  }
}
