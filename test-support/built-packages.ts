/**
 * The workspace's built output for tests that exercise it (the consumer install, the image's
 * `pnpm deploy`). `tsc -b` is incremental: a no-op after `.ci/run`'s `pnpm build`. Test files run
 * in parallel, so one build at a time, under a lock directory, or two would write dist/ at once.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
export const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));
const LOCK = join(REPO_ROOT, '.tmp', 'build.lock');
const STALE_LOCK_MS = 5 * 60_000;

export interface BuiltPackage {
  dir: string;
  name: string;
  version: string;
  private?: boolean;
}

/** The packages that build (a tsconfig.build.json under packages/*), whatever is added later. */
export function buildablePackages(): BuiltPackage[] {
  return readdirSync(join(REPO_ROOT, 'packages'))
    .map((entry) => join(REPO_ROOT, 'packages', entry))
    .filter((dir) => existsSync(join(dir, 'tsconfig.build.json')))
    .map((dir) => {
      const {
        name,
        version,
        private: isPrivate,
      } = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as Omit<BuiltPackage, 'dir'>;
      return { dir, name, version, ...(isPrivate ? { private: true } : {}) };
    });
}

export async function buildPackages(): Promise<void> {
  await withLock(async () => {
    const tsc = join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    const projects = buildablePackages().map((p) => join(p.dir, 'tsconfig.build.json'));
    await run(process.execPath, [tsc, '-b', ...projects], { cwd: REPO_ROOT });
  });
}

async function withLock(fn: () => Promise<void>): Promise<void> {
  mkdirSync(join(REPO_ROOT, '.tmp'), { recursive: true });
  const deadline = Date.now() + STALE_LOCK_MS;
  for (;;) {
    try {
      mkdirSync(LOCK);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      // A lock older than any build is left over from a killed run.
      if (Date.now() > deadline) rmSync(LOCK, { recursive: true, force: true });
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
  try {
    await fn();
  } finally {
    rmSync(LOCK, { recursive: true, force: true });
  }
}
