/**
 * The fenced writer of one owner's turn with a run (run-executor.ts): its writes in order, each
 * refused once another coordinator has claimed the run, and the lease checks before the owner acts
 * outside Redis.
 */
import { type Logger, ToolqError } from '@toolq/shared';
import type { RunEventInput, RunStore } from './run-store.ts';

/** Lease checks whose answers all came back too late to prove it before an owner gives the run up. */
const LEASE_TRIES = 5;

/**
 * One run's writes, in order: the loop's events are sent as they happen without waiting, the
 * checkpoints are awaited; both go through one chain so Redis sees them in the order made. The
 * first refused write (another owner, or no longer running) is kept and fails every later one.
 */
export class FencedWriter {
  private chain: Promise<unknown> = Promise.resolve();
  failure: ToolqError | undefined;
  /**
   * A `turn_finished` goes with the next write, which for a response with calls is its checkpoint
   * (saved in the same tick). Sent alone it could land and its checkpoint be refused, a claim
   * between the two (chaos: Redis paused as the turn ended): the log said the turn was saved,
   * and the next owner, resuming from the checkpoint before, asked the model for it again.
   */
  private held: RunEventInput[] = [];
  /** The lease was still held but never confirmed in time: hand the run back rather than drop it. */
  unconfirmed = false;
  /** Until when (this process's clock) the last confirmed lease surely holds. */
  private leaseValidUntil = 0;

  constructor(
    private readonly store: RunStore,
    private readonly runId: string,
    private readonly epoch: number,
    private readonly logger: Logger,
    private readonly leaseLeft: () => Promise<number>,
  ) {}

  /**
   * Before the owner acts outside Redis (a model request, a dispatch): its lease, and its epoch
   * with `events`, in a write after every event sent before. A lost lease fails every later write.
   *
   * The lease is good until the time the check was *sent* plus the ms Redis said it had left (the
   * lock cannot lapse sooner). The owner goes on only while that time is ahead: a reply that comes
   * back later than that (the process was off the CPU, or Redis slow, between the check and its
   * answer) proves nothing about now, so the lease is asked again. What remains unfenced is the
   * instant from this return to the request leaving the process (docs/durable-runs.md).
   */
  async confirm(events: RunEventInput[]): Promise<void> {
    if (this.failure) throw this.failure;
    // Side by side (one round trip's wait): each alone proves that no claim came before it.
    const [until] = await Promise.all([this.leaseUntil(), this.write({ events })]);
    await this.confirmed(until);
  }

  /**
   * Right before each HTTP attempt of a model request (the SDK's retries too, which no
   * beforeModelRequest sees): the lease confirmed last still holds by this clock, or is confirmed
   * again. The last check before the request leaves, as close to the socket as the SDK lets it.
   */
  async beforeRequest(): Promise<void> {
    if (this.failure) throw this.failure;
    if (Date.now() < this.leaseValidUntil) return;
    await this.confirmed(await this.leaseUntil());
  }

  /** Goes on once a lease check proves the lease holds now; asks again while answers come late. */
  private async confirmed(first: number): Promise<void> {
    let until = first;
    for (let tries = 1; until > 0 && Date.now() >= until; tries++) {
      if (tries >= LEASE_TRIES) break;
      until = await this.leaseUntil();
    }
    if (until > Date.now()) {
      this.leaseValidUntil = until;
      return;
    }
    // A lock still held but never confirmed in time (LEASE_TRIES late answers): the run goes back
    // to the queue (executeRun: handed over), not 'lost' — BullMQ would take a job whose lock is
    // still ours as finished, and nobody would carry the run on.
    this.unconfirmed = until > 0;
    this.failure ??= new ToolqError(
      'LEASE_LOST',
      this.unconfirmed
        ? `run ${this.runId}: this coordinator could not confirm its lease in time; handing the run over`
        : `run ${this.runId}: this coordinator's lease lapsed; another one takes the run over`,
    );
    throw this.failure;
  }

  /** The time (this process's clock) until which the lease surely holds; 0 when it is gone. */
  private async leaseUntil(): Promise<number> {
    const sentAt = Date.now();
    const left = await this.leaseLeft();
    return left > 0 ? sentAt + left : 0;
  }

  write(change: Parameters<RunStore['write']>[2]): Promise<void> {
    if (this.held.length > 0) {
      change = { ...change, events: [...this.held, ...change.events] };
      this.held = [];
    }
    const next = this.chain.then(async () => {
      if (this.failure) throw this.failure;
      try {
        await this.store.write(this.runId, this.epoch, change);
      } catch (err) {
        if (err instanceof ToolqError && (err.code === 'LEASE_LOST' || err.code === 'CANCELLED')) {
          this.failure ??= err;
        }
        throw err;
      }
    });
    this.chain = next.catch(() => undefined);
    return next;
  }

  send(event: RunEventInput): void {
    if (event.type === 'turn_finished') {
      this.held.push(event);
      return;
    }
    this.write({ events: [event] }).catch((err: Error) => {
      if (!this.failure)
        this.logger.warn({ err: err.message, event: event.type }, 'could not log a run event');
    });
  }
}
