/**
 * Reads a chaos run's whole history and lists every broken promise. Each promise is one function
 * of the history, so each can be tested on a hand-made history that keeps or breaks it.
 *
 * A finding is a violation, or excused when a fault explains it and toolq does not promise to
 * survive that fault (e.g. a result written to a Redis restarted without persistence): excused
 * findings are counted and printed, never hidden.
 */
import type { EventOf, FaultKind, HistoryEvent } from './history.ts';

export const PROMISES = {
  one_answer: 'every tool_use gets exactly one answer',
  order: 'answers come in the order of the tool_uses, ids matching',
  deadline: 'every batch is answered by its deadline plus the grace',
  at_most_once: 'a call of an at-most-once tool is never started twice',
  cap: 'a capped tool never runs more calls at once than its cap',
  durable_call_once:
    'a durable run never runs a call again once its result is saved, nor re-sends one still running on a live worker',
  durable_turn_once: 'a durable run never asks the model again for a turn whose response was saved',
  run_finishes: 'every durable run finishes (done)',
  result_delivered: 'a result a worker wrote before the deadline reaches the caller',
} as const;
export type PromiseName = keyof typeof PROMISES;

export interface Finding {
  promise: PromiseName;
  /** The batch, run or call it is about. */
  subject: string;
  detail: string;
}

export interface CheckOptions {
  /** How late past its deadline a batch's answer may come (HTTP, the deadline's last record read, load). */
  graceMs: number;
  /** `none`: Redis restarts lose everything, and findings a restart explains are excused. */
  persistence: 'aof' | 'none';
  /** A worker's result is written this long after the tool's end line at most (when nothing stops it). */
  writeMarginMs?: number;
}

export interface CheckResult {
  violations: Finding[];
  excused: Finding[];
}

export interface CheckReport extends CheckResult {
  /** Promises nothing in the history could break (e.g. no tool declares at-most-once). */
  vacuous: { promise: PromiseName; why: string }[];
  figures: Record<string, number>;
}

/** The history indexed once for every check. */
export class History {
  readonly batches: EventOf<'batch_sent'>[] = [];
  readonly answers = new Map<string, EventOf<'batch_answer'>[]>();
  readonly lost = new Map<string, EventOf<'batch_lost'>>();
  readonly starts = new Map<string, EventOf<'call_start'>[]>();
  readonly ends = new Map<string, (EventOf<'call_end'> | EventOf<'call_abort'>)[]>();
  readonly faults: EventOf<'fault'>[] = [];
  readonly props = new Map<string, EventOf<'tool_props'>>();
  readonly runsStarted: EventOf<'run_started'>[] = [];
  readonly runsFinished = new Map<string, EventOf<'run_finished'>>();
  readonly runsLost = new Map<string, EventOf<'run_lost'>>();
  readonly asks: EventOf<'model_ask'>[] = [];
  readonly stalls: EventOf<'stall'>[] = [];
  readonly lastAt: number;

  constructor(readonly events: readonly HistoryEvent[]) {
    const push = <K, V>(map: Map<K, V[]>, key: K, value: V) => {
      const list = map.get(key);
      if (list) list.push(value);
      else map.set(key, [value]);
    };
    for (const e of [...events].sort((a, b) => a.at - b.at)) {
      switch (e.type) {
        case 'batch_sent':
          this.batches.push(e);
          break;
        case 'batch_answer':
          push(this.answers, e.batch, e);
          break;
        case 'batch_lost':
          this.lost.set(e.batch, e);
          break;
        case 'call_start':
          push(this.starts, e.key, e);
          break;
        case 'call_end':
        case 'call_abort':
          push(this.ends, e.key, e);
          break;
        case 'fault':
          this.faults.push(e);
          break;
        case 'tool_props':
          this.props.set(e.tool, e);
          break;
        case 'run_started':
          this.runsStarted.push(e);
          break;
        case 'run_finished':
          this.runsFinished.set(e.run, e);
          break;
        case 'run_lost':
          this.runsLost.set(e.run, e);
          break;
        case 'model_ask':
          this.asks.push(e);
          break;
        case 'stall':
          this.stalls.push(e);
          break;
      }
    }
    this.lastAt = events.reduce((max, e) => Math.max(max, 'until' in e ? e.until : e.at), 0);
  }

  /** Faults of these kinds whose window [at, until] meets [from, to]. */
  faultsIn(kinds: readonly FaultKind[], from: number, to: number, target?: (f: EventOf<'fault'>) => boolean) {
    return this.faults.filter(
      (f) => kinds.includes(f.kind) && f.at <= to && f.until >= from && (target ? target(f) : true),
    );
  }

  /** When this process was SIGKILLed after `from`, if it was. */
  killedAfter(pid: number, from: number): number | undefined {
    return this.faults.find(
      (f) => (f.kind === 'worker_kill' || f.kind === 'coordinator_kill') && f.pid === pid && f.at >= from,
    )?.at;
  }

  /** Whether this process was killed or frozen at some time in [from, to]. */
  processHit(pid: number, from: number, to: number): boolean {
    return this.faultsIn(['worker_kill', 'worker_stop'], from, to, (f) => f.pid === pid).length > 0;
  }

  firstAnswer(batch: string): EventOf<'batch_answer'> | undefined {
    return this.answers.get(batch)?.[0];
  }

  /**
   * How long, within [from, to], at least one of these processes could not run: the union of
   * their stalls, each less the CPU the process used meanwhile (a stall it spent running its own
   * code is its own doing, not the machine's) and taken as the end of its window.
   */
  starvedMs(from: number, to: number, proc: (s: EventOf<'stall'>) => boolean): number {
    const windows = this.stalls
      .filter(proc)
      .map((s) => [Math.max(from, s.at - Math.max(0, s.ms - s.cpuMs)), Math.min(to, s.at)] as const)
      .filter(([a, b]) => b > a)
      .sort((x, y) => x[0] - y[0]);
    let total = 0;
    let reached = Number.NEGATIVE_INFINITY;
    for (const [a, b] of windows) {
      if (b <= reached) continue;
      total += b - Math.max(a, reached);
      reached = b;
    }
    return total;
  }

  /** Whether Redis lost (or may have lost) its data between these times: a restart without persistence. */
  redisLostData(from: number, to: number, persistence: CheckOptions['persistence']): boolean {
    return persistence === 'none' && this.faultsIn(['redis_restart'], from, to).length > 0;
  }
}

const REDIS_OUTAGES: readonly FaultKind[] = ['redis_restart', 'cluster_master_kill', 'client_pause'];

function result(): CheckResult {
  return { violations: [], excused: [] };
}

/** Exactly one answer per tool_use: none missing, none twice, none for an id not sent, and answers that agree. */
export function checkOneAnswer(h: History, options: CheckOptions): CheckResult {
  const out = result();
  for (const sent of h.batches) {
    const answers = h.answers.get(sent.batch) ?? [];
    if (answers.length === 0) {
      const lost = h.lost.get(sent.batch);
      const finding: Finding = {
        promise: 'one_answer',
        subject: sent.batch,
        detail: `no answer to its ${sent.calls.length} tool_use(s)${lost ? `: ${lost.reason}` : ''}`,
      };
      const excused = lost && h.redisLostData(sent.at, lost.at, options.persistence);
      (excused ? out.excused : out.violations).push(finding);
      continue;
    }
    const sentIds = new Set(sent.calls.map((c) => c.id));
    for (const answer of answers) {
      const counts = new Map<string, number>();
      for (const r of answer.results) counts.set(r.id, (counts.get(r.id) ?? 0) + 1);
      for (const id of sentIds) {
        const n = counts.get(id) ?? 0;
        if (n !== 1)
          out.violations.push({
            promise: 'one_answer',
            subject: `${sent.batch}/${id}`,
            detail: `${n} answers`,
          });
      }
      for (const id of counts.keys())
        if (!sentIds.has(id))
          out.violations.push({
            promise: 'one_answer',
            subject: `${sent.batch}/${id}`,
            detail: 'an answer to a tool_use never sent',
          });
    }
    // Collected twice (or posted and collected): the answers must be the same answer.
    const [first, ...others] = answers;
    for (const other of others) {
      for (const r of other.results) {
        const was = first?.results.find((f) => f.id === r.id);
        if (was && (was.content !== r.content || was.isError !== r.isError))
          out.violations.push({
            promise: 'one_answer',
            subject: `${sent.batch}/${r.id}`,
            detail: `two different answers: ${JSON.stringify(was.content)} and ${JSON.stringify(r.content)}`,
          });
      }
    }
  }
  return out;
}

export function checkOrder(h: History): CheckResult {
  const out = result();
  for (const sent of h.batches) {
    const want = sent.calls.map((c) => c.id);
    for (const answer of h.answers.get(sent.batch) ?? []) {
      const got = answer.results.map((r) => r.id);
      // A missing or doubled id is one_answer's finding; order is judged on the same ids.
      const sameIds = [...got].sort().join(',') === [...want].sort().join(',');
      if (sameIds && got.some((id, i) => id !== want[i]))
        out.violations.push({
          promise: 'order',
          subject: sent.batch,
          detail: `sent ${want.join(',')}, answered ${got.join(',')}`,
        });
    }
  }
  return out;
}

/**
 * The first answer by the deadline plus the grace. A batch whose coordinator was killed under it
 * is answered when the caller collects it from another: late, excused (the caller's own retry).
 * So is a lateness no longer than the time the machine kept the processes that carry the answer
 * (the driver that sent and timed it, the coordinators it went to and came from) off the CPU in
 * the batch's life, as they measured it; a later answer than that is a violation.
 */
export function checkDeadlines(h: History, options: CheckOptions): CheckResult {
  const out = result();
  for (const sent of h.batches) {
    const answer = h.firstAnswer(sent.batch);
    if (!answer) continue; // one_answer's finding
    const late = answer.at - (sent.at + sent.timeoutMs);
    if (late <= options.graceMs) continue;
    const finding: Finding = {
      promise: 'deadline',
      subject: sent.batch,
      detail: `answered ${late} ms after its ${sent.timeoutMs} ms deadline (grace ${options.graceMs} ms, via ${answer.via})`,
    };
    const coordinatorDied =
      h.faultsIn(['coordinator_kill'], sent.at, answer.at, (f) => f.target === sent.coordinator).length > 0;
    const carriers = new Set(['driver', sent.coordinator, answer.coordinator]);
    const starved = h.starvedMs(sent.at, answer.at, (s) => carriers.has(s.proc));
    if (!coordinatorDied && starved > 0)
      finding.detail += `; the machine kept the driver and its coordinator(s) off the CPU for ${starved} ms in its life (their event-loop stalls less their own CPU)`;
    const stalled = late - options.graceMs <= starved;
    (coordinatorDied || stalled ? out.excused : out.violations).push(finding);
  }
  return out;
}

export function checkAtMostOnce(h: History): CheckResult {
  const out = result();
  const tools = new Set([...h.props.values()].filter((p) => p.atMostOnce).map((p) => p.tool));
  for (const [key, starts] of h.starts) {
    const tool = starts[0]?.tool;
    if (tool && tools.has(tool) && starts.length > 1)
      out.violations.push({
        promise: 'at_most_once',
        subject: key,
        detail: `${tool} started ${starts.length} times (pids ${starts.map((s) => s.pid).join(', ')})`,
      });
  }
  return out;
}

/**
 * A call runs from its start to its end or abort on the same process, or to that process's
 * SIGKILL; a frozen (SIGSTOPped) call still holds its place under the cap.
 */
export function checkCaps(h: History): CheckResult {
  const out = result();
  for (const props of h.props.values()) {
    if (props.cap === undefined) continue;
    const cap = props.cap;
    const edges: { at: number; delta: number; key: string }[] = [];
    for (const [key, starts] of h.starts) {
      for (const start of starts) {
        if (start.tool !== props.tool) continue;
        const end = (h.ends.get(key) ?? []).find((e) => e.pid === start.pid && e.at >= start.at)?.at;
        const killed = h.killedAfter(start.pid, start.at);
        const until = Math.min(end ?? Number.POSITIVE_INFINITY, killed ?? Number.POSITIVE_INFINITY, h.lastAt);
        edges.push({ at: start.at, delta: 1, key }, { at: until, delta: -1, key });
      }
    }
    // Ends before starts at the same instant: a call that ends as another starts is not overlap.
    edges.sort((a, b) => a.at - b.at || a.delta - b.delta);
    let running = 0;
    let over = false;
    for (const edge of edges) {
      running += edge.delta;
      if (running > cap && !over)
        out.violations.push({
          promise: 'cap',
          subject: props.tool,
          detail: `${running} calls running at once (cap ${cap}) at ${edge.at}, when ${edge.key} started`,
        });
      over = running > cap;
    }
  }
  return out;
}

/** The run (by its tag) the model was asked for. */
function runByTag(h: History, tag: string): EventOf<'run_finished'> | undefined {
  for (const run of h.runsFinished.values()) if (run.tag === tag) return run;
  return undefined;
}

/**
 * A durable run's call (its tool_use id is the call's key) starts again after its tool_finished
 * was saved, or is started again while an earlier start of it still runs on a process that was
 * neither killed nor frozen.
 */
export function checkDurableCalls(h: History): CheckResult {
  const out = result();
  for (const run of h.runsFinished.values()) {
    const ids = new Set(run.events.flatMap((e) => (e.toolUseId ? [e.toolUseId] : [])));
    for (const id of ids) {
      const starts = h.starts.get(id) ?? [];
      const saved = run.events.find((e) => e.type === 'tool_finished' && e.toolUseId === id);
      const again = saved ? starts.filter((s) => s.at > saved.at) : [];
      if (saved && again.length > 0)
        out.violations.push({
          promise: 'durable_call_once',
          subject: `${run.run}/${id}`,
          detail: `started again ${again.length} time(s) after its result was saved (tool_finished at ${saved.at})`,
        });
      for (const [i, start] of starts.entries()) {
        for (const earlier of starts.slice(0, i)) {
          const ended = (h.ends.get(id) ?? []).some(
            (e) => e.pid === earlier.pid && e.at >= earlier.at && e.at <= start.at,
          );
          if (!ended && !h.processHit(earlier.pid, earlier.at, start.at))
            out.violations.push({
              promise: 'durable_call_once',
              subject: `${run.run}/${id}`,
              detail: `started on pid ${start.pid} while still running on live pid ${earlier.pid}`,
            });
        }
      }
    }
  }
  return out;
}

/**
 * A turn asked for twice is a violation when the first answer was saved (its turn_finished) before
 * the second ask. Excused: an ask before the save (toolq asks again for an unsaved response), and a
 * stale owner's ask: the asking coordinator had owned the run but another had taken it over by then
 * (a later run_started/run_resumed), and the asker was kept off the CPU (its measured stalls less
 * its own CPU) between taking the run and that ask. A lease checked before a request cannot cover a
 * process frozen between the check and the request going out, and the stale owner can save nothing
 * of what it gets (docs/durable-runs.md). The owner's own ask again is never excused.
 */
export function checkModelTurns(h: History): CheckResult {
  const out = result();
  const byTurn = new Map<string, EventOf<'model_ask'>[]>();
  for (const ask of h.asks) {
    const key = `${ask.tag}#${ask.turn}`;
    byTurn.set(key, [...(byTurn.get(key) ?? []), ask]);
  }
  for (const [key, asks] of byTurn) {
    if (asks.length < 2) continue;
    const [first] = asks;
    if (!first) continue;
    const run = runByTag(h, first.tag);
    const saved = run?.events.find((e) => e.type === 'turn_finished' && e.iteration === first.turn + 1);
    const late = asks.slice(1).filter((a) => saved && a.at > saved.at);
    const owners = (run?.events ?? []).filter((e) => e.coordinator !== undefined);
    const stale = late.map((a) => staleAsk(h, a, owners));
    const broken = late.filter((_, i) => stale[i] === undefined);
    const detail = saved
      ? `model asked ${asks.length} times for this turn; its response was saved at ${saved.at}, ${late.length > 0 ? `${late.length} ask(s) after that` : 'after every ask'}`
      : `model asked ${asks.length} times for this turn; no response of it was ever saved`;
    const why = stale.filter((w): w is string => w !== undefined);
    const asked = broken.map((a) => ` (${a.asker ?? 'a coordinator'} asked at ${a.at})`).join('');
    const finding: Finding = {
      promise: 'durable_turn_once',
      subject: key,
      detail: `${detail}${asked}${why.length > 0 ? `; ${why.join('; ')}` : ''}`,
    };
    (broken.length > 0 ? out.violations : out.excused).push(finding);
  }
  return out;
}

/** Why an ask came from a stale owner that was kept off the CPU, or undefined (not such an ask). */
function staleAsk(
  h: History,
  ask: EventOf<'model_ask'>,
  owners: readonly { coordinator?: string; at: number }[],
): string | undefined {
  if (ask.asker === undefined) return undefined;
  const before = owners.filter((o) => o.at <= ask.at);
  const owner = before.at(-1)?.coordinator;
  const took = before.filter((o) => o.coordinator === ask.asker).at(-1);
  if (!took || owner === undefined || owner === ask.asker) return undefined;
  const starved = h.starvedMs(took.at, ask.at, (s) => s.proc === ask.asker);
  if (starved <= 0) return undefined;
  return `the ask at ${ask.at} was ${ask.asker}'s, a stale owner (${owner} had taken the run over), kept off the CPU for ${starved} ms since it took the run`;
}

export function checkRunsFinish(h: History, options: CheckOptions): CheckResult {
  const out = result();
  for (const started of h.runsStarted) {
    const finished = h.runsFinished.get(started.run);
    if (finished?.status === 'done') continue;
    const lost = h.runsLost.get(started.run);
    const finding: Finding = {
      promise: 'run_finishes',
      subject: `${started.run} (${started.tag})`,
      detail: finished ? `ended ${finished.status}` : `never finished${lost ? `: ${lost.reason}` : ''}`,
    };
    const excused = h.redisLostData(started.at, lost?.at ?? finished?.at ?? h.lastAt, options.persistence);
    (excused ? out.excused : out.violations).push(finding);
  }
  return out;
}

/**
 * A call that ended well before its batch's deadline (and before the batch was answered) must
 * reach the caller as its result. Excused: its worker killed or frozen between its end and its
 * write, Redis unreachable or paused until past the deadline, data lost to a Redis restart
 * without persistence, or its worker and the batch's coordinator kept off the CPU (their measured
 * stalls) for all but the write margin of the time from its end to the deadline.
 */
export function checkDelivered(h: History, options: CheckOptions): CheckResult {
  const out = result();
  const margin = options.writeMarginMs ?? 250;
  for (const sent of h.batches) {
    const answer = h.firstAnswer(sent.batch);
    if (!answer) continue;
    const deadline = sent.at + sent.timeoutMs;
    for (const call of sent.calls) {
      const got = answer.results.find((r) => r.id === call.id);
      if (got && !got.isError) continue;
      const end = (h.ends.get(call.id) ?? []).find(
        (e) => e.type === 'call_end' && e.at + margin <= Math.min(deadline, answer.at),
      );
      if (!end) continue;
      const finding: Finding = {
        promise: 'result_delivered',
        subject: `${sent.batch}/${call.id}`,
        detail: `the tool ended at +${end.at - sent.at} ms on pid ${end.pid} (deadline +${sent.timeoutMs} ms), the caller got ${got ? JSON.stringify(got.content) : 'nothing'}`,
      };
      const carriers = (s: EventOf<'stall'>) => s.pid === end.pid || s.proc === sent.coordinator;
      const starved = h.starvedMs(end.at, deadline, carriers);
      if (starved > 0)
        finding.detail += `; its worker and coordinator were kept off the CPU ${starved} ms of that`;
      const excused =
        starved >= deadline - end.at - margin ||
        h.processHit(end.pid, end.at, deadline) ||
        h.faultsIn(REDIS_OUTAGES, end.at, deadline).length > 0 ||
        h.redisLostData(end.at, answer.at, options.persistence);
      (excused ? out.excused : out.violations).push(finding);
    }
  }
  return out;
}

export function checkHistory(events: readonly HistoryEvent[], options: CheckOptions): CheckReport {
  const h = new History(events);
  const parts = [
    checkOneAnswer(h, options),
    checkOrder(h),
    checkDeadlines(h, options),
    checkAtMostOnce(h),
    checkCaps(h),
    checkDurableCalls(h),
    checkModelTurns(h),
    checkRunsFinish(h, options),
    checkDelivered(h, options),
  ];
  const vacuous: CheckReport['vacuous'] = [];
  const props = [...h.props.values()];
  if (!props.some((p) => p.atMostOnce))
    vacuous.push({ promise: 'at_most_once', why: 'no tool declares at-most-once delivery' });
  if (!props.some((p) => p.cap !== undefined))
    vacuous.push({ promise: 'cap', why: 'no tool declares a cap' });
  if (h.batches.length === 0)
    for (const p of ['one_answer', 'order', 'deadline', 'result_delivered'] as const)
      vacuous.push({ promise: p, why: 'no batches' });
  if (h.runsStarted.length === 0)
    for (const p of ['durable_call_once', 'durable_turn_once', 'run_finishes'] as const)
      vacuous.push({ promise: p, why: 'no durable runs' });
  return {
    violations: parts.flatMap((p) => p.violations),
    excused: parts.flatMap((p) => p.excused),
    vacuous,
    figures: figures(h, options),
  };
}

function figures(h: History, options: CheckOptions): Record<string, number> {
  const answers = h.batches.flatMap((b) => h.firstAnswer(b.batch)?.results ?? []);
  const late = h.batches.flatMap((b) => {
    const a = h.firstAnswer(b.batch);
    return a ? [a.at - b.at - b.timeoutMs] : [];
  });
  const rerun = [...h.starts.values()].filter((s) => s.length > 1).length;
  const runs = [...h.runsFinished.values()];
  const out: Record<string, number> = {
    batches: h.batches.length,
    tool_uses: h.batches.reduce((n, b) => n + b.calls.length, 0),
    answered_ok: answers.filter((r) => !r.isError).length,
    answered_error: answers.filter((r) => r.isError).length,
    answered_timed_out: answers.filter((r) => r.isError && /timed out/.test(r.content)).length,
    collected_after_post_failed: h.batches.filter((b) => h.firstAnswer(b.batch)?.via === 'collect').length,
    batches_lost: h.lost.size,
    calls_started: [...h.starts.values()].reduce((n, s) => n + s.length, 0),
    calls_started_more_than_once: rerun,
    worst_answer_ms_past_deadline: late.length ? Math.max(...late) : 0,
    runs_started: h.runsStarted.length,
    runs_done: runs.filter((r) => r.status === 'done').length,
    run_takeovers: runs.reduce((n, r) => n + r.takeovers, 0),
    run_calls_answered_error: runs.reduce(
      (n, r) => n + r.events.filter((e) => e.type === 'tool_finished' && e.isError).length,
      0,
    ),
    model_asks: h.asks.length,
    grace_ms: options.graceMs,
    stalls_measured: h.stalls.length,
    longest_stall_ms: h.stalls.reduce((max, s) => Math.max(max, s.ms), 0),
    longest_stall_off_cpu_ms: h.stalls.reduce((max, s) => Math.max(max, s.ms - s.cpuMs), 0),
  };
  for (const f of h.faults) out[`fault_${f.kind}`] = (out[`fault_${f.kind}`] ?? 0) + 1;
  return out;
}
