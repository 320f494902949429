/** The real coordinator CLI as a child process. */
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../packages/coordinator/src/cli.ts', import.meta.url));

export async function startCoordinatorProcess(env: Record<string, string>): Promise<{
  url: string;
  child: ChildProcess;
  exited: Promise<number | null>;
}> {
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, '--port', '0'], {
    env: { ...process.env, TOOLQ_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('coordinator did not become ready in 30 s')), 30_000);
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      try {
        const event = JSON.parse(line) as { event?: string; url?: string };
        if (event.event === 'ready' && event.url) {
          clearTimeout(timer);
          resolve(event.url);
        }
      } catch {
        // log lines
      }
    });
    exited.then((code) => reject(new Error(`coordinator exited with ${code} before it was ready`)));
  });
  return { url, child, exited };
}
