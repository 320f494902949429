/**
 * Tools for operators and checks: sleep, echo, fail, crash. They make every recovery path of the
 * system reachable from the outside (`pnpm worker --tools diagnostics`).
 */
import { defineTool } from '@toolq/shared';
import { z } from 'zod';

export const diagSleep = defineTool({
  name: 'diag_sleep',
  description: 'Sleeps for `ms` milliseconds, then returns {"slept_ms": ms}. Safe to call in parallel.',
  input: z.object({ ms: z.number().int().min(0).max(3_600_000) }),
  timeoutMs: 3_600_000,
  run: ({ ms }, { signal }) =>
    new Promise<{ slept_ms: number }>((resolve, reject) => {
      const timer = setTimeout(() => resolve({ slept_ms: ms }), ms);
      signal.addEventListener('abort', () => {
        clearTimeout(timer);
        reject(signal.reason);
      });
    }),
});

export const diagEcho = defineTool({
  name: 'diag_echo',
  description: 'Returns `value` unchanged (a string as is, anything else as JSON). Safe to call in parallel.',
  input: z.object({ value: z.unknown() }),
  run: ({ value }) => value,
});

export const diagFail = defineTool({
  name: 'diag_fail',
  description: 'Always fails with `message`, to test error handling.',
  input: z.object({ message: z.string().max(10_000) }),
  run: ({ message }) => {
    throw new Error(message);
  },
});

export const diagCrash = defineTool({
  name: 'diag_crash',
  description:
    'Kills the worker process that runs it at once (SIGKILL), to test recovery. Never call this in production.',
  input: z.object({}),
  run: () => {
    process.kill(process.pid, 'SIGKILL');
    return 'unreachable';
  },
});

const diagnostics = [diagSleep, diagEcho, diagFail, diagCrash];
export default diagnostics;
