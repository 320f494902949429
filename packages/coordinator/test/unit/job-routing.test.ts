/**
 * Where a call's job goes: its pool's own queue or a lane of the pool (a queue only workers with
 * the tool's exact tool set consume), as planned, as referenced while the batch waits, and as
 * re-routed when a lost call is re-run. Pure: no Redis.
 */
import { laneOf } from '@toolq/shared/internal';
import { describe, expect, it } from 'vitest';
import { Rerunnable } from '../../src/dispatch/lost-calls.ts';
import { JobRefs } from '../../src/dispatch/pending.ts';
import { jobIdOf } from '../../src/job-queues.ts';
import { keptBatch, plan, served, spec, TARGET, uses } from './plan-fixtures.ts';

const echo = spec('echo', 5_000, true);
/** The lane of pool p whose workers serve exactly `echo`. */
const LANE = laneOf('p', ['echo']);

describe('routing a call: pool queue or lane', () => {
  it('sends a call to the pool’s own queue and leaves the record’s queue empty', () => {
    const { queued, meta } = plan(uses('echo'), [served(echo, 'p', 1)]);
    expect(queued.map((j) => j.queue)).toEqual(['p']);
    expect(meta.calls[0]).toMatchObject({ pool: 'p', job: 'uid-1.0' });
    expect(meta.calls[0]?.queue).toBeUndefined();
  });

  it('sends a call to the lane its lookup names and writes the lane into the record', () => {
    const { queued, meta } = plan(uses('echo'), [served(echo, 'p', 1, LANE)]);
    expect(queued.map((j) => j.queue)).toEqual([LANE]);
    expect(meta.calls[0]).toMatchObject({ pool: 'p', queue: LANE, job: 'uid-1.0' });
  });

  it('never groups calls of one pool that go to different queues into one job', () => {
    const { queued, meta } = plan(uses('echo', 'echo', 'echo', 'echo'), [
      served(echo, 'p', 1),
      served(echo, 'p', 1, LANE),
      served(echo, 'p', 1),
      served(echo, 'p', 1, LANE),
    ]);
    expect(queued.map((j) => [j.queue, j.jobId, j.indexes])).toEqual([
      ['p', 'uid-1.p.c0', [0, 2]],
      [LANE, `uid-1.${LANE}.c0`, [1, 3]],
    ]);
    expect(meta.calls.map((c) => c.queue)).toEqual([undefined, LANE, undefined, LANE]);
  });
});

describe('JobRefs: each waiting call’s job', () => {
  it('shares one reference per pool and queue for calls in a job of their own, across batches', () => {
    const refs = new JobRefs();
    const a = plan(uses('echo', 'echo'), [served(echo, 'p', 2), served(echo, 'p', 2, LANE)], { uid: 'a' });
    const b = plan(uses('echo'), [served(echo, 'p', 2)], { uid: 'b' });
    const ofA = refs.of('a', a.queued, 2, (i) => a.meta.calls[i]?.pool);
    const ofB = refs.of('b', b.queued, 1, (i) => b.meta.calls[i]?.pool);
    expect(ofA[0]).toEqual({ pool: 'p', queue: 'p' });
    expect(ofA[1]).toEqual({ pool: 'p', queue: LANE });
    expect(ofB[0]).toBe(ofA[0]);
    // Without an id of its own, a reference names the call's job of its own.
    expect(jobIdOf('a', 1, ofA[1] ?? {})).toBe('a.1');
  });

  it('gives the calls of a chunk one reference naming the chunk, and none to calls without a job', () => {
    const refs = new JobRefs();
    const { queued, meta } = plan(uses('echo', 'nope', 'echo'), [
      served(echo, 'p', 1, LANE),
      { kind: 'unknown' },
      served(echo, 'p', 1, LANE),
    ]);
    const of = refs.of('uid-1', queued, 3, (i) => meta.calls[i]?.pool);
    expect(of).toHaveLength(3);
    expect(of[0]).toEqual({ pool: 'p', queue: LANE, jobId: `uid-1.${LANE}.c0` });
    expect(of[2]).toBe(of[0]);
    expect(of[1]).toBeUndefined();
  });
});

describe('re-running a lost call goes where the catalog routes its tool now', () => {
  function rerunnable() {
    const planned = plan(uses('echo', 'echo'), [served(echo, 'p', 2, LANE), served(echo, 'p', 2)]);
    const batch = Rerunnable.keep(planned.mayRunTwice, planned.meta);
    if (!batch) throw new Error('echo may run twice: the batch is kept');
    return { meta: planned.meta, batch, waiting: keptBatch(planned) };
  }

  it('moves a call from its lane to the pool queue, and the record with it', () => {
    const { meta, batch, waiting } = rerunnable();
    expect(meta.calls[0]?.queue).toBe(LANE);
    const { queued, failed, record } = batch.plan(waiting, TARGET, [0], () => served(echo, 'p', 3));
    expect(failed.size).toBe(0);
    expect(queued.map((j) => [j.queue, j.jobId, j.indexes])).toEqual([['p', 'uid-1.r1.0', [0]]]);
    expect(record.calls[0]).toMatchObject({ pool: 'p', job: 'uid-1.r1.0' });
    expect(record.calls[0]?.queue).toBeUndefined();
  });

  it('moves a call from the pool queue to a lane, and names each round’s jobs apart', () => {
    const { batch, waiting } = rerunnable();
    batch.plan(waiting, TARGET, [1], () => served(echo, 'p', 1));
    const { queued, record } = batch.plan(waiting, TARGET, [1], () => served(echo, 'p', 1, LANE));
    expect(queued.map((j) => [j.queue, j.jobId])).toEqual([[LANE, 'uid-1.r2.1']]);
    expect(record.calls[1]).toMatchObject({ pool: 'p', queue: LANE, job: 'uid-1.r2.1' });
  });
});
