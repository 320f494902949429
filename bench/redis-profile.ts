/**
 * What a piece of work cost the bench Redis: `INFO commandstats` (time spent inside commands and
 * scripts) and `INFO cpu` (the whole process: commands, networking, event loop), reset/sampled
 * around the work. Every other client of the same Redis is counted too, so run nothing else then.
 */
import { Redis } from 'ioredis';

export interface RedisCost {
  /** µs of CPU the redis-server process used (user + sys). */
  cpuUsec: number;
  /** Commands executed, scripts counted once per EVALSHA/FCALL. */
  commands: number;
  /** The commands that cost most, by total µs. */
  top: { command: string; calls: number; usec: number }[];
}

export async function withRedisCost<T>(
  redisUrl: string,
  work: () => Promise<T>,
): Promise<{ result: T; cost: RedisCost }> {
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
  try {
    await redis.config('RESETSTAT');
    const cpuBefore = parseCpu(await redis.info('cpu'));
    const result = await work();
    const cpuAfter = parseCpu(await redis.info('cpu'));
    const stats = parseCommandStats(await redis.info('commandstats'));
    // The INFO/CONFIG calls of this measurement are not the work's.
    const own = new Set(['info', 'config|resetstat', 'config']);
    const rows = stats.filter((s) => !own.has(s.command));
    return {
      result,
      cost: {
        cpuUsec: (cpuAfter - cpuBefore) * 1e6,
        commands: rows.reduce((n, s) => n + s.calls, 0),
        top: rows.sort((a, b) => b.usec - a.usec).slice(0, 8),
      },
    };
  } finally {
    redis.disconnect();
  }
}

function parseCpu(info: string): number {
  const get = (k: string) => Number(new RegExp(`^${k}:([0-9.]+)`, 'm').exec(info)?.[1] ?? 0);
  return get('used_cpu_user') + get('used_cpu_sys');
}

export function parseCommandStats(info: string): { command: string; calls: number; usec: number }[] {
  const out: { command: string; calls: number; usec: number }[] = [];
  for (const line of info.split(/\r?\n/)) {
    const m = /^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/.exec(line);
    if (m) out.push({ command: m[1] as string, calls: Number(m[2]), usec: Number(m[3]) });
  }
  return out;
}
