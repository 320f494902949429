import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

/**
 * Waits for the `{"event":"ready", ...}` line the toolq CLIs print on stdout once they serve. The
 * default is generous (under the 120 s hook and test timeouts): a CLI loads its TypeScript through
 * tsx at start-up, and on two busy cores that alone took over 30 s; three coordinators started at
 * once in a beforeAll at load 25-33 did not all print it within 50 s.
 */
export function waitForReadyLine<T extends { event: 'ready' }>(
  child: ChildProcess,
  exited: Promise<number | null>,
  what: string,
  timeoutMs = 100_000,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${what} did not become ready in ${timeoutMs} ms`)),
      timeoutMs,
    );
    timer.unref();
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      try {
        const event = JSON.parse(line) as T;
        if (event.event === 'ready') {
          clearTimeout(timer);
          resolve(event);
        }
      } catch {
        // a log line
      }
    });
    exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited with ${code} before it was ready`));
    });
  });
}
