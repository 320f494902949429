import type { ChildProcess } from 'node:child_process';

/**
 * Sends `signal` (SIGTERM: a graceful stop) and resolves with the exit code once the child has
 * exited; SIGKILL if it is still running after the grace period, so a stuck child never outlives
 * the test, benchmark or demo that started it.
 */
export async function stopChild(
  child: ChildProcess,
  signal: NodeJS.Signals = 'SIGTERM',
  graceMs = 10_000,
): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return child.exitCode;
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  timer.unref();
  try {
    return await exited;
  } finally {
    clearTimeout(timer);
  }
}
