/**
 * The fleet-wide name of a batch. A caller names a batch `(app, batch id)`; inside toolq every
 * dispatch gets a fresh uid that its jobs, cancellations and record use, so that nothing of one
 * batch can ever reach another that carries the same name. The name key says which coordinator
 * dispatched it under which uid: written with SET NX, so an id is taken once across the fleet,
 * and read by any coordinator that is asked to collect the batch.
 */
import type { Redis } from './redis.ts';

export interface BatchOwner {
  coordinatorId: string;
  uid: string;
}

/** True when the name was free and is now this batch's; false when another batch holds it. */
export async function claimBatchName(
  redis: Redis,
  nameKey: string,
  owner: BatchOwner,
  ttlMs: number,
): Promise<boolean> {
  const reply = await redis.set(nameKey, `${owner.coordinatorId} ${owner.uid}`, 'PX', ttlMs, 'NX');
  return reply === 'OK';
}

export async function readBatchOwner(redis: Redis, nameKey: string): Promise<BatchOwner | undefined> {
  const raw = await redis.get(nameKey);
  const [coordinatorId, uid] = raw?.split(' ') ?? [];
  return coordinatorId && uid ? { coordinatorId, uid } : undefined;
}

/** PEXPIRE the name only while it still names the uid (ARGV[1], with its leading space). */
const EXPIRE_NAME = `
local owner = redis.call('GET', KEYS[1])
if owner and string.sub(owner, -#ARGV[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
`;

type NameExpiringRedis = Redis & {
  toolqExpireBatchName(nameKey: string, uidSuffix: string, ttlMs: number): Promise<number>;
};

/**
 * An answered batch's name lives as long as its record (the retention), not the whole deadline
 * it was claimed for: otherwise the name of a batch answered in milliseconds outlived its record
 * by the batch's timeout, and `collect()` found a name whose record was gone. Left alone when the
 * name is another batch's (this one lost the claim, or its name expired and was taken again).
 */
export async function expireBatchName(
  redis: Redis,
  nameKey: string,
  uid: string,
  ttlMs: number,
): Promise<void> {
  const r = redis as NameExpiringRedis;
  if (!r.toolqExpireBatchName)
    redis.defineCommand('toolqExpireBatchName', { numberOfKeys: 1, lua: EXPIRE_NAME });
  await r.toolqExpireBatchName(nameKey, ` ${uid}`, ttlMs);
}
