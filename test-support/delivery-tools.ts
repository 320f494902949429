/**
 * Tools for the delivery tests (docs/delivery.md), served by worker processes: every start is
 * appended to the file named by TOOLQ_TEST_EXECUTIONS as `start <label> <idempotencyKey> <pid>`,
 * so a test counts how often each call really started, with which key, on which process.
 */
import { appendFileSync, existsSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { defineTool } from '@toolq/shared';
import { z } from 'zod';
import { recordedLines } from './record-file.ts';

function recordStart(label: string, key: string): void {
  const file = process.env.TOOLQ_TEST_EXECUTIONS;
  if (file) appendFileSync(file, `start ${label} ${key} ${process.pid}\n`);
}

const input = z.object({ label: z.string(), ms: z.number().int().min(0) });

/** A payment: never started twice. */
export const pay = defineTool({
  name: 'test_pay',
  description: 'Records its start, waits `ms`, returns its label. At most once.',
  input,
  delivery: 'at-most-once',
  timeoutMs: 120_000,
  run: async ({ label, ms }, { signal, idempotencyKey }) => {
    recordStart(label, idempotencyKey);
    await sleep(ms, undefined, { signal });
    return `paid ${label}`;
  },
});

/** A lookup: may run again. */
export const lookup = defineTool({
  name: 'test_lookup',
  description: 'Records its start, waits `ms`, returns its label. At least once (the default).',
  input,
  timeoutMs: 120_000,
  run: async ({ label, ms }, { signal, idempotencyKey }) => {
    recordStart(label, idempotencyKey);
    await sleep(ms, undefined, { signal });
    return `found ${label}`;
  },
});

/** A cached lookup, shared within the app for 60 s. */
export const cachedLookup = defineTool({
  name: 'test_cached',
  description: 'Records its start, waits `ms`, returns its label. Cached per app for 60 s.',
  input,
  cache: { ttlMs: 60_000, scope: 'app' },
  timeoutMs: 120_000,
  run: async ({ label, ms }, { signal, idempotencyKey }) => {
    recordStart(label, idempotencyKey);
    await sleep(ms, undefined, { signal });
    return `cached ${label}`;
  },
});

/** Blocks the worker's event loop for `ms` (a synchronous loop): nothing else of that process runs meanwhile. */
function spin(ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    // busy: no await, no timers, no I/O
  }
}

/** At least once, and blocks its worker's event loop while it runs. */
export const spinLookup = defineTool({
  name: 'test_spin',
  description: 'Records its start, blocks the event loop for `ms`, returns its label. At least once.',
  input,
  timeoutMs: 120_000,
  run: ({ label, ms }, { idempotencyKey }) => {
    recordStart(label, idempotencyKey);
    spin(ms);
    return Promise.resolve(`spun ${label}`);
  },
});

/** At most once, and blocks its worker's event loop while it runs. */
export const spinPay = defineTool({
  name: 'test_spin_pay',
  description: 'Records its start, blocks the event loop for `ms`, returns its label. At most once.',
  input,
  delivery: 'at-most-once',
  timeoutMs: 120_000,
  run: ({ label, ms }, { idempotencyKey }) => {
    recordStart(label, idempotencyKey);
    spin(ms);
    return Promise.resolve(`paid ${label}`);
  },
});

/**
 * At least once; its first run of a label kills its own worker process as it starts (SIGKILL, at
 * once: too soon for the worker to note the job), the next one returns. The marker of that first
 * run is a file beside the executions file.
 */
export const dieOnce = defineTool({
  name: 'test_die_once',
  description:
    'Records its start; the first run of a label SIGKILLs its worker at once, later ones return it.',
  input,
  timeoutMs: 120_000,
  run: ({ label }, { idempotencyKey }) => {
    recordStart(label, idempotencyKey);
    const marker = `${process.env.TOOLQ_TEST_EXECUTIONS ?? ''}.died-${label}`;
    if (!existsSync(marker)) {
      writeFileSync(marker, String(process.pid));
      process.kill(process.pid, 'SIGKILL');
    }
    return Promise.resolve(`survived ${label}`);
  },
});

export interface Start {
  label: string;
  key: string;
  pid: number;
}

/** The starts recorded in `file` so far. */
export function readStarts(file: string): Start[] {
  return recordedLines(file)
    .filter((line) => line.startsWith('start '))
    .map((line) => {
      const [, label = '', key = '', pid = '0'] = line.split(' ');
      return { label, key, pid: Number(pid) };
    });
}

const deliveryTools = [pay, lookup, cachedLookup, spinLookup, spinPay, dieOnce];
export default deliveryTools;
