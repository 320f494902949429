/**
 * The chaos checker on hand-made histories: for each promise, one that keeps it and one that
 * breaks it (and, where a fault can excuse a finding, one it excuses).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type CheckOptions, checkHistory, type PromiseName } from '../checker.ts';
import { describeFault, planFaults } from '../faults.ts';
import { appendEvent, type EventOf, type HistoryEvent, readHistory } from '../history.ts';

const OPTIONS: CheckOptions = { graceMs: 1_000, persistence: 'aof' };
const C0 = 'http://127.0.0.1:1';
const TOOL = 'chaos_work';

const sent = (batch: string, ids: string[], at = 0, timeoutMs = 4_000): EventOf<'batch_sent'> => ({
  type: 'batch_sent',
  batch,
  coordinator: C0,
  at,
  timeoutMs,
  calls: ids.map((id) => ({ id, tool: TOOL })),
});
const ok = (id: string) => ({ id, isError: false, content: `{"key":"${id}"}` });
const err = (id: string, content = 'Tool chaos_work timed out after 4s') => ({ id, isError: true, content });
const answer = (
  batch: string,
  results: EventOf<'batch_answer'>['results'],
  at = 1_000,
  via: 'post' | 'collect' = 'post',
): EventOf<'batch_answer'> => ({ type: 'batch_answer', batch, via, coordinator: C0, at, results });
const start = (key: string, at: number, pid = 100): EventOf<'call_start'> => ({
  type: 'call_start',
  key,
  tool: TOOL,
  pid,
  at,
  attempt: 1,
});
const end = (key: string, at: number, pid = 100): EventOf<'call_end'> => ({
  type: 'call_end',
  key,
  tool: TOOL,
  pid,
  at,
});
const fault = (
  kind: EventOf<'fault'>['kind'],
  at: number,
  until: number,
  extra: { pid?: number; target?: string } = {},
): EventOf<'fault'> => ({ type: 'fault', kind, target: extra.target ?? 'redis', at, until, ...extra });

const stall = (proc: string, at: number, ms: number, cpuMs = 0, pid = 50): EventOf<'stall'> => ({
  type: 'stall',
  proc,
  pid,
  ms,
  cpuMs,
  at,
});

function broken(events: HistoryEvent[], options = OPTIONS): PromiseName[] {
  return checkHistory(events, options).violations.map((v) => v.promise);
}
function excused(events: HistoryEvent[], options = OPTIONS): PromiseName[] {
  return checkHistory(events, options).excused.map((v) => v.promise);
}

describe('one answer per tool_use', () => {
  it('kept: each id answered once', () => {
    expect(broken([sent('b', ['a', 'c']), answer('b', [ok('a'), ok('c')])])).toEqual([]);
  });
  it('broken: a batch never answered, an id answered twice, an id missing, an id never sent', () => {
    expect(broken([sent('b', ['a'])])).toEqual(['one_answer']);
    const twice = broken([sent('b', ['a', 'c']), answer('b', [ok('a'), ok('a')])]);
    expect(twice).toEqual(['one_answer', 'one_answer']); // a twice, c none
    expect(broken([sent('b', ['a']), answer('b', [ok('a'), ok('x')])])).toEqual(['one_answer']);
  });
  it('broken: collected twice with two different answers', () => {
    expect(
      broken([
        sent('b', ['a']),
        answer('b', [ok('a')], 1_000),
        answer('b', [err('a', 'Error: other')], 1_100, 'collect'),
      ]),
    ).toEqual(['one_answer']);
  });
  it('a batch lost to a Redis restart is excused without persistence, not with AOF', () => {
    const lost: HistoryEvent[] = [
      sent('b', ['a']),
      fault('redis_restart', 500, 900),
      { type: 'batch_lost', batch: 'b', at: 30_000, reason: 'GET 404' },
    ];
    expect(broken(lost)).toEqual(['one_answer']);
    expect(broken(lost, { ...OPTIONS, persistence: 'none' })).toEqual([]);
    expect(excused(lost, { ...OPTIONS, persistence: 'none' })).toEqual(['one_answer']);
  });
});

describe('order', () => {
  it('kept in order, broken out of order', () => {
    expect(broken([sent('b', ['a', 'c']), answer('b', [ok('a'), ok('c')])])).toEqual([]);
    expect(broken([sent('b', ['a', 'c']), answer('b', [ok('c'), ok('a')])])).toEqual(['order']);
  });
});

describe('deadline', () => {
  it('kept within the grace, broken past it', () => {
    expect(broken([sent('b', ['a']), answer('b', [err('a')], 4_900)])).toEqual([]);
    expect(broken([sent('b', ['a']), answer('b', [err('a')], 5_100)])).toEqual(['deadline']);
  });
  it('excused when the coordinator the batch was sent to was killed under it', () => {
    const events: HistoryEvent[] = [
      sent('b', ['a']),
      fault('coordinator_kill', 1_000, 6_000, { target: C0, pid: 7 }),
      answer('b', [ok('a')], 7_000, 'collect'),
    ];
    expect(broken(events)).toEqual([]);
    expect(excused(events)).toEqual(['deadline']);
  });
  // Answered 3,400 ms past the deadline, 2,400 ms past the grace (the incident: a 6 s machine stall).
  const late: HistoryEvent[] = [sent('b', ['a']), answer('b', [ok('a')], 7_400)];
  it('excused by no more than the time the driver and its coordinator were kept off the CPU, and says so', () => {
    for (const proc of [C0, 'driver']) {
      const events = [...late, stall(proc, 6_000, 2_500, 50)];
      expect(broken(events)).toEqual([]);
      const [finding] = checkHistory(events, OPTIONS).excused;
      expect(finding?.detail).toMatch(/kept the driver and its coordinator\(s\) off the CPU for 2450 ms/);
    }
    // The two stalled at once (one machine stall) count once; one after the other, both.
    expect(broken([...late, stall(C0, 6_000, 1_500), stall('driver', 6_000, 1_500)])).toEqual(['deadline']);
    expect(broken([...late, stall(C0, 5_000, 1_200), stall('driver', 7_000, 1_200)])).toEqual([]);
  });
  it('broken when the stalls are shorter than the lateness, spent on its own CPU, outside its life, or elsewhere', () => {
    expect(broken([...late, stall(C0, 6_000, 2_300)])).toEqual(['deadline']);
    expect(broken([...late, stall(C0, 6_000, 6_000, 5_000)])).toEqual(['deadline']); // its own blocking
    expect(broken([...late, stall(C0, -1, 6_000)])).toEqual(['deadline']); // before the batch was sent
    expect(broken([...late, stall('http://127.0.0.1:2', 6_000, 6_000)])).toEqual(['deadline']);
    expect(broken([...late, stall('worker:0', 6_000, 6_000)])).toEqual(['deadline']);
  });
});

describe('at-most-once', () => {
  const twice: HistoryEvent[] = [start('k', 10, 1), start('k', 20, 2)];
  it('vacuous while no tool declares it; a call started twice is then only a figure', () => {
    const report = checkHistory(twice, OPTIONS);
    expect(report.violations).toEqual([]);
    expect(report.vacuous.map((v) => v.promise)).toContain('at_most_once');
    expect(report.figures.calls_started_more_than_once).toBe(1);
  });
  it('broken by a second start of a declared tool, kept by one start', () => {
    const props: EventOf<'tool_props'> = { type: 'tool_props', tool: TOOL, atMostOnce: true, at: 0 };
    expect(broken([props, ...twice])).toEqual(['at_most_once']);
    expect(broken([props, start('k', 10)])).toEqual([]);
    expect(checkHistory([props], OPTIONS).vacuous.map((v) => v.promise)).not.toContain('at_most_once');
  });
});

describe('cap', () => {
  const props: EventOf<'tool_props'> = { type: 'tool_props', tool: TOOL, cap: 2, at: 0 };
  it('kept: never more than the cap at once (an end and a start at one instant do not overlap)', () => {
    expect(
      broken([props, start('a', 0), start('b', 10), end('a', 50), start('c', 50), end('b', 60)]),
    ).toEqual([]);
  });
  it('broken: three at once under a cap of two', () => {
    expect(broken([props, start('a', 0), start('b', 10), start('c', 20), end('a', 50)])).toEqual(['cap']);
  });
  it('a call whose worker was SIGKILLed stops counting at the kill, a frozen one keeps counting', () => {
    const killed = fault('worker_kill', 15, 15, { pid: 100, target: 'worker:0' });
    expect(broken([props, start('a', 0), start('b', 10), killed, start('c', 20)])).toEqual([]);
    const frozen = fault('worker_stop', 15, 900, { pid: 100, target: 'worker:0' });
    expect(broken([props, start('a', 0), start('b', 10), frozen, start('c', 20)])).toEqual(['cap']);
  });
  it('vacuous while no tool declares a cap', () => {
    expect(checkHistory([], OPTIONS).vacuous.map((v) => v.promise)).toContain('cap');
  });
});

const run = (
  events: EventOf<'run_finished'>['events'],
  status = 'done',
  tag = 'r0',
): [EventOf<'run_started'>, EventOf<'run_finished'>] => [
  { type: 'run_started', run: 'run_1', tag, coordinator: C0, at: 0 },
  { type: 'run_finished', run: 'run_1', tag, status, takeovers: 0, at: 10_000, events },
];

describe('durable runs', () => {
  const savedAt2000 = run([
    { type: 'turn_finished', at: 500, iteration: 1 },
    { type: 'tool_started', at: 600, toolUseId: 'r0_t1_0' },
    { type: 'tool_finished', at: 2_000, toolUseId: 'r0_t1_0' },
  ]);
  it('kept: a call run once; a call re-run after its worker died before the result was saved', () => {
    expect(broken([...savedAt2000, start('r0_t1_0', 700), end('r0_t1_0', 1_900)])).toEqual([]);
    const rerun = [
      start('r0_t1_0', 700, 1),
      fault('worker_kill', 800, 800, { pid: 1 }),
      start('r0_t1_0', 1_000, 2),
      end('r0_t1_0', 1_900, 2),
    ];
    expect(broken([...savedAt2000, ...rerun])).toEqual([]);
  });
  it('broken: a call started again after its result was saved', () => {
    expect(
      broken([
        ...savedAt2000,
        start('r0_t1_0', 700, 1),
        end('r0_t1_0', 1_900, 1),
        start('r0_t1_0', 3_000, 2),
      ]),
    ).toEqual(['durable_call_once']);
  });
  it('broken: a call sent again while it still runs on a live worker', () => {
    expect(
      broken([...savedAt2000, start('r0_t1_0', 700, 1), start('r0_t1_0', 900, 2), end('r0_t1_0', 1_900, 1)]),
    ).toEqual(['durable_call_once']);
  });
  const ask = (turn: number, at: number): EventOf<'model_ask'> => ({
    type: 'model_ask',
    tag: 'r0',
    turn,
    at,
  });
  it('a turn asked again before its response was saved is excused; after, it is broken', () => {
    expect(broken([...savedAt2000, ask(0, 100), ask(1, 2_100)])).toEqual([]);
    const before = [...savedAt2000, ask(0, 100), ask(0, 400), ask(1, 2_100)];
    expect(broken(before)).toEqual([]);
    expect(excused(before)).toEqual(['durable_turn_once']);
    expect(broken([...savedAt2000, ask(0, 100), ask(0, 900)])).toEqual(['durable_turn_once']);
  });
  it("a stale owner's ask after the save is excused only when it was kept off the CPU; the owner's never", () => {
    const C1 = 'http://127.0.0.1:2';
    // C0 owns the run, asks turn 0 at 100 and stalls; C1 takes over at 1_000, asks at 1_100 and
    // saves the turn at 1_400; C0, back, sends its request at 1_600.
    const takenOver = run([
      { type: 'run_started', at: 50, coordinator: C0 },
      { type: 'turn_started', at: 90, iteration: 1 },
      { type: 'run_resumed', at: 1_000, coordinator: C1 },
      { type: 'turn_started', at: 1_050, iteration: 1 },
      { type: 'turn_finished', at: 1_400, iteration: 1 },
    ]);
    const asks = (second: string): EventOf<'model_ask'>[] => [
      { type: 'model_ask', tag: 'r0', turn: 0, asker: C1, at: 1_100 },
      { type: 'model_ask', tag: 'r0', turn: 0, asker: second, at: 1_600 },
    ];
    const frozen = stall(C0, 1_550, 1_300);
    expect(broken([...takenOver, ...asks(C0), frozen])).toEqual([]);
    expect(excused([...takenOver, ...asks(C0), frozen])).toEqual(['durable_turn_once']);
    // Not kept off the CPU (its stall was its own CPU), or not stalled at all: broken.
    expect(broken([...takenOver, ...asks(C0), stall(C0, 1_550, 1_300, 1_300)])).toEqual([
      'durable_turn_once',
    ]);
    expect(broken([...takenOver, ...asks(C0)])).toEqual(['durable_turn_once']);
    // The owner asking again after its own save is broken, stalled or not.
    expect(broken([...takenOver, ...asks(C1), stall(C1, 1_550, 1_300)])).toEqual(['durable_turn_once']);
  });
  it('a run that failed or never finished is broken', () => {
    expect(broken(run([], 'failed'))).toEqual(['run_finishes']);
    const [started] = run([]);
    expect(
      broken([started, { type: 'run_lost', run: 'run_1', tag: 'r0', at: 1, reason: 'GET 404' }]),
    ).toEqual(['run_finishes']);
  });
});

describe('a result the worker wrote reaches the caller', () => {
  it('kept: delivered; or the call ended after the deadline', () => {
    expect(broken([sent('b', ['a']), end('a', 500), answer('b', [ok('a')], 600)])).toEqual([]);
    expect(broken([sent('b', ['a']), end('a', 4_100), answer('b', [err('a')], 4_000)])).toEqual([]);
  });
  it('broken: the tool ended well inside the deadline, the caller got a timeout', () => {
    expect(broken([sent('b', ['a']), end('a', 500), answer('b', [err('a')], 4_000)])).toEqual([
      'result_delivered',
    ]);
  });
  it('excused: the worker was killed or frozen right after the end, or Redis was paused past the deadline', () => {
    const base: HistoryEvent[] = [sent('b', ['a']), end('a', 500, 9), answer('b', [err('a')], 4_000)];
    expect(excused([...base, fault('worker_kill', 501, 501, { pid: 9 })])).toEqual(['result_delivered']);
    expect(excused([...base, fault('worker_stop', 501, 5_000, { pid: 9 })])).toEqual(['result_delivered']);
    expect(excused([...base, fault('client_pause', 400, 4_500)])).toEqual(['result_delivered']);
    expect(broken([...base, fault('worker_kill', 501, 501, { pid: 10 })])).toEqual(['result_delivered']);
  });
  it('excused when its worker or the coordinator was off the CPU for all but the write margin until the deadline', () => {
    const base: HistoryEvent[] = [sent('b', ['a']), end('a', 500, 9), answer('b', [err('a')], 4_000)];
    expect(excused([...base, stall('worker:1', 4_000, 3_300, 0, 9)])).toEqual(['result_delivered']);
    expect(excused([...base, stall(C0, 4_000, 3_300)])).toEqual(['result_delivered']);
    expect(broken([...base, stall('worker:1', 4_000, 3_000, 0, 9)])).toEqual(['result_delivered']);
    expect(broken([...base, stall('worker:2', 4_000, 3_300, 0, 10)])).toEqual(['result_delivered']);
  });
});

describe('the history files and the fault schedule', () => {
  it('merges every process file by time and skips a torn last line', () => {
    const dir = mkdtempSync(join(tmpdir(), 'toolq-chaos-test-'));
    try {
      appendEvent(join(dir, 'driver.jsonl'), sent('b', ['a'], 0));
      appendEvent(join(dir, 'tools-w0-0.jsonl'), start('a', 5));
      writeFileSync(join(dir, 'tools-w1-0.jsonl'), '{"type":"call_st');
      appendEvent(join(dir, 'driver.jsonl'), answer('b', [ok('a')], 10));
      const { events, unreadable } = readHistory(dir);
      expect(events.map((e) => e.type)).toEqual(['batch_sent', 'call_start', 'batch_answer']);
      expect(unreadable).toBe(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('plans the same faults for a seed, other faults for another, every kind in a minute', () => {
    const options = { seed: 1, durationMs: 60_000, cluster: false, workers: 3, coordinators: 2 };
    const plan = planFaults(options).map(describeFault);
    expect(planFaults(options).map(describeFault)).toEqual(plan);
    expect(planFaults({ ...options, seed: 2 }).map(describeFault)).not.toEqual(plan);
    const kinds = new Set(planFaults(options).map((f) => f.kind));
    expect([...kinds].sort()).toEqual([
      'client_pause',
      'coordinator_kill',
      'redis_restart',
      'worker_kill',
      'worker_stop',
    ]);
    expect(new Set(planFaults({ ...options, cluster: true }).map((f) => f.kind))).toContain(
      'cluster_master_kill',
    );
  });
});
