/** CPU time of processes (Linux /proc; NaN elsewhere), to see which process a benchmark saturates. */
import { readFileSync } from 'node:fs';

const TICKS_PER_SECOND = 100; // USER_HZ on every Linux we run on

/** User + system CPU ms of a process; NaN when unknown. */
export function processCpuMs(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN;
  if (pid === process.pid) {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1000;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces) start at state = field 3.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    return ((utime + stime) / TICKS_PER_SECOND) * 1000;
  } catch {
    return Number.NaN;
  }
}

export interface CpuGroups {
  [group: string]: (number | undefined)[];
}

/** CPU ms each group of processes used while `work` ran. */
export async function withCpu<T>(
  groups: CpuGroups,
  work: () => Promise<T>,
): Promise<{ result: T; cpuMs: Record<string, number> }> {
  const sample = () =>
    Object.fromEntries(
      Object.entries(groups).map(([g, pids]) => [
        g,
        pids.reduce((n: number, pid) => n + processCpuMs(pid), 0),
      ]),
    );
  const before = sample();
  const result = await work();
  const after = sample();
  return {
    result,
    cpuMs: Object.fromEntries(
      Object.keys(groups).map((g) => [g, (after[g] ?? Number.NaN) - (before[g] ?? Number.NaN)]),
    ),
  };
}
