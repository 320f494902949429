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
