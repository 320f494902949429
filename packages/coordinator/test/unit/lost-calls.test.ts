/**
 * Which calls Redis lost are re-run and which are answered is_error: a call is re-run only when
 * its tool is at-least-once (it may run twice: the default), its deadline has not passed, it has been re-run
 * fewer than MAX_RERUNS_PER_CALL times and a live worker serves its tool; a collector (which has
 * no inputs to re-run) follows the owner's re-runs and waits out a grace. Pure: no Redis.
 */
import type { BatchMeta } from '@toolq/shared/internal';
import { describe, expect, it } from 'vitest';
import {
  LOST_CALL_MESSAGE,
  lostCallMessage,
  lostForSure,
  MAX_RERUNS_PER_CALL,
  Rerunnable,
} from '../../src/dispatch/lost-calls.ts';
import { atMostOnce, keptBatch, plan, STARTED_AT, served, spec, TARGET, uses } from './plan-fixtures.ts';

const safe = spec('safe', 10_000); // at-least-once (the default): may run twice
const once = atMostOnce(spec('once', 10_000)); // may not
const NO_WORKER = { kind: 'no_worker', pool: 'p' } as const;

/** A batch of [safe, once, safe] as the dispatching coordinator keeps it to re-run lost calls. */
function batch() {
  const { mayRunTwice, meta, calls, queued } = plan(uses('safe', 'once', 'safe'), [
    served(safe, 'p', 3),
    served(once, 'p', 3),
    served(safe, 'p', 3),
  ]);
  const rerunnable = Rerunnable.keep(mayRunTwice, meta);
  if (!rerunnable) throw new Error('calls 0 and 2 may run twice: the batch is kept');
  const waiting = keptBatch({ meta, calls, queued });
  return { meta, calls, mayRunTwice, waiting, rerunnable };
}

describe('Rerunnable.eligible: which lost calls may run again', () => {
  it('re-runs only calls of at-least-once tools', () => {
    const { rerunnable, waiting } = batch();
    expect(rerunnable.eligible(waiting, [0, 1, 2], STARTED_AT + 1)).toEqual([0, 2]);
  });

  it('keeps nothing of a batch whose calls may not run twice', () => {
    const { mayRunTwice, meta } = plan(uses('once'), [served(once, 'p', 1)]);
    expect(Rerunnable.keep(mayRunTwice, meta)).toBeUndefined();
  });

  it('re-runs no call whose deadline has passed (or is now)', () => {
    const { rerunnable, calls, waiting } = batch();
    const deadline = calls[0]?.deadline ?? 0;
    expect(rerunnable.eligible(waiting, [0], deadline - 1)).toEqual([0]);
    expect(rerunnable.eligible(waiting, [0], deadline)).toEqual([]);
    expect(rerunnable.eligible(waiting, [0, 2], deadline + 1)).toEqual([]);
  });

  it(`re-runs a call at most ${MAX_RERUNS_PER_CALL} times`, () => {
    const { rerunnable, waiting } = batch();
    const now = STARTED_AT + 1;
    for (let round = 1; round <= MAX_RERUNS_PER_CALL; round++) {
      expect(rerunnable.eligible(waiting, [0, 2], now)).toEqual([0, 2]);
      const { queued } = rerunnable.plan(waiting, TARGET, [0], () => served(safe, 'p', 1));
      expect(queued.map((j) => j.jobId)).toEqual([`uid-1.r${round}.0`]);
    }
    // Call 0 has used its re-runs; call 2 has not been re-run yet.
    expect(rerunnable.eligible(waiting, [0, 2], now)).toEqual([2]);
  });

  it('does not count a re-run that found no live worker for the tool', () => {
    const { rerunnable, meta, waiting } = batch();
    const jobBefore = meta.calls[0]?.job;
    for (let i = 0; i < MAX_RERUNS_PER_CALL + 1; i++) {
      const { queued, failed, record } = rerunnable.plan(waiting, TARGET, [0], () => NO_WORKER);
      expect(queued).toEqual([]);
      expect(failed.get(0)).toBe('and no live worker serves its tool now');
      expect(record.calls[0]?.job).toBe(jobBefore); // the record still names the original job
    }
    expect(rerunnable.eligible(waiting, [0], STARTED_AT + 1)).toEqual([0]);
  });

  it('re-runs a call with its original input, deadline and reply address', () => {
    const { rerunnable, waiting } = batch();
    const { queued } = rerunnable.plan(waiting, TARGET, [2], () => served(safe, 'p', 1));
    const data = queued[0]?.data;
    expect(data).toMatchObject({
      tool: 'safe',
      toolUseId: 'toolu_2',
      input: { n: 2 },
      deadline: STARTED_AT + 10_000,
      reply: { batchId: 'uid-1', index: 2, batchKey: TARGET.recordKey, streamKey: TARGET.streamKey },
    });
  });

  it('rebuilds the job data the dispatch enqueued (only enqueuedAt is new), from the kept string', () => {
    const { rerunnable, mayRunTwice, waiting } = batch();
    const original = mayRunTwice[2]?.data;
    const { queued } = rerunnable.plan(waiting, TARGET, [2], () => served(safe, 'p', 1));
    expect(original?.idempotencyKey).toMatch(/^[0-9a-f]{32}$/);
    expect({ ...queued[0]?.data, enqueuedAt: 0 }).toEqual({ ...original, enqueuedAt: 0 });
  });
});

describe('recordOf: the record a re-run writes, rebuilt from the waiting batch', () => {
  it('is the record the dispatch wrote: jobs, lanes, calls answered at dispatch, calls held for approval', () => {
    const lane = 'p~lane';
    const planned = plan(uses('safe', 'once', 'safe', 'nobody', 'safe'), [
      served(safe, 'p', 3),
      served(once, 'p', 3, lane),
      served(safe, 'p', 1, lane),
      NO_WORKER,
      served(safe, 'p', 1),
    ]);
    // Held for approval the way Approvals.hold() leaves a call: a pool, an approval, no job.
    const held = planned.meta.calls[4];
    if (!held) throw new Error('five calls');
    delete held.job;
    held.approval = 'apr_1';
    const rerunnable = Rerunnable.keep(planned.mayRunTwice, planned.meta);
    const waiting = keptBatch(planned);
    waiting.jobs[4] = undefined;
    const { record } = rerunnable?.plan(waiting, TARGET, [], () => NO_WORKER) ?? {};
    expect(record).toEqual(JSON.parse(JSON.stringify(planned.meta)));
    expect(record?.calls[3]?.answer?.outcome).toBe('error');
  });

  it('names the jobs of earlier re-runs (the waiting batch holds them) and the new ones', () => {
    const { rerunnable, waiting } = batch();
    waiting.jobs[0] = { pool: 'p', queue: 'p~lane', jobId: 'uid-1.r1.0' };
    const { record } = rerunnable.plan(waiting, TARGET, [2], () => served(safe, 'p', 1));
    expect(record.calls.map((c) => [c.queue, c.job])).toEqual([
      ['p~lane', 'uid-1.r1.0'],
      [undefined, 'uid-1.1'],
      [undefined, 'uid-1.r1.2'],
    ]);
  });
});

describe('lostCallMessage: the is_error answer of a lost call not re-run', () => {
  it('says the call was lost, and why it was not re-run when a re-run failed', () => {
    expect(lostCallMessage(undefined)).toContain(LOST_CALL_MESSAGE);
    const failed = lostCallMessage('and no live worker serves its tool now');
    expect(failed).toContain(`${LOST_CALL_MESSAGE}, and no live worker serves its tool now`);
  });
});

describe('lostForSure: a collector answers a lost call only after the grace', () => {
  const GRACE = 10_000;
  function recorded(jobs: (string | undefined)[], queue?: string): BatchMeta['calls'] {
    return jobs.map((job, index) => ({
      toolUseId: `toolu_${index}`,
      tool: 'safe',
      deadline: STARTED_AT + 60_000,
      timeoutMs: 60_000,
      pool: 'p',
      ...(queue ? { queue } : {}),
      ...(job ? { job } : {}),
    }));
  }

  it('waits out the grace from the first time a call looked lost', () => {
    const since = new Map<number, number>();
    const jobs = [
      { pool: 'p', queue: 'p' },
      { pool: 'p', queue: 'p' },
    ];
    const record = recorded(['uid-1.0', 'uid-1.1']);
    const at = (now: number, lost: number[]) =>
      lostForSure({ uid: 'uid-1', lost, recorded: record, jobs, since, now, graceMs: GRACE });
    expect(at(1_000, [0])).toEqual([]);
    expect(at(5_000, [0, 1])).toEqual([]);
    expect(at(1_000 + GRACE - 1, [0, 1])).toEqual([]);
    expect(at(1_000 + GRACE, [0, 1])).toEqual([0]);
    expect(at(5_000 + GRACE, [0, 1])).toEqual([0, 1]);
  });

  it('follows a call the owner re-ran to its new job, and starts its grace again', () => {
    const since = new Map<number, number>([[0, 0]]);
    const jobs: { pool: string; queue: string; jobId?: string }[] = [{ pool: 'p', queue: 'p' }];
    const record = recorded(['uid-1.r1.0'], 'p~lane');
    const sure = lostForSure({
      uid: 'uid-1',
      lost: [0],
      recorded: record,
      jobs,
      since,
      now: GRACE * 2,
      graceMs: GRACE,
    });
    expect(sure).toEqual([]);
    expect(jobs[0]).toEqual({ pool: 'p', queue: 'p~lane', jobId: 'uid-1.r1.0' });
    expect(since.has(0)).toBe(false);
    // Lost again in its new job: the grace counts from now.
    const again = (now: number) =>
      lostForSure({ uid: 'uid-1', lost: [0], recorded: record, jobs, since, now, graceMs: GRACE });
    expect(again(GRACE * 3)).toEqual([]);
    expect(again(GRACE * 4)).toEqual([0]);
  });

  it('counts the grace when the record is gone too', () => {
    const since = new Map<number, number>();
    const jobs = [{ pool: 'p', queue: 'p' }];
    const at = (now: number) =>
      lostForSure({ uid: 'u', lost: [0], recorded: undefined, jobs, since, now, graceMs: GRACE });
    expect(at(0)).toEqual([]);
    expect(at(GRACE)).toEqual([0]);
    expect(jobs[0]).toEqual({ pool: 'p', queue: 'p' });
  });
});
