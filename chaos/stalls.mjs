// @ts-check
/**
 * Event-loop stalls, measured by each process of a chaos run for itself: a 100 ms timer that fires
 * late was kept from running. The worker and coordinator processes preload this module
 * (`node --import`, TOOLQ_CHAOS_STALLS and TOOLQ_CHAOS_PROC name the file and the process); the
 * driver calls watchStalls. Each stall is a history line (history.ts `stall`) with the CPU the
 * process used meanwhile: a stall it spent running (its own blocking code) excuses nothing; the
 * rest of it (the machine or a SIGSTOP kept it off the CPU) is what the checker may excuse.
 *
 * A timer rather than perf_hooks' monitorEventLoopDelay: a histogram says how long, not when, and
 * the checker needs the window to match a stall with the batches it could have delayed.
 */
import { appendFileSync } from 'node:fs';

const TICK_MS = 100;
/** Shorter delays are the ordinary jitter of a loaded machine; recording them would only add lines. */
const MIN_STALL_MS = 200;

/**
 * Records this process's stalls to `file` (JSON lines) as `proc` (`driver`, a coordinator's URL,
 * `worker:<slot>`) until the returned function is called. The timer does not keep the process alive.
 * @param {string} file
 * @param {string} proc
 * @returns {() => void}
 */
export function watchStalls(file, proc) {
  let last = performance.now();
  let cpu = process.cpuUsage();
  const timer = setInterval(() => {
    const now = performance.now();
    const used = process.cpuUsage(cpu);
    const ms = Math.round(now - last - TICK_MS);
    last = now;
    cpu = process.cpuUsage();
    if (ms < MIN_STALL_MS) return;
    /** @type {import('./history.ts').EventOf<'stall'>} */
    const event = {
      type: 'stall',
      proc,
      pid: process.pid,
      ms,
      cpuMs: Math.round((used.user + used.system) / 1_000),
      at: Date.now(),
    };
    appendFileSync(file, `${JSON.stringify(event)}\n`);
  }, TICK_MS);
  timer.unref();
  return () => clearInterval(timer);
}

const file = process.env.TOOLQ_CHAOS_STALLS;
const proc = process.env.TOOLQ_CHAOS_PROC;
if (file && proc) watchStalls(file, proc);
