/** Where a call's job is: what the pending batch, the sweep and the lost-call re-runs share. */
export interface JobRef {
  /** For metrics. */
  readonly pool: string;
  /** Where the job waits: the pool's queue or a lane of it. */
  readonly queue: string;
  /**
   * Absent for a call sent in a job of its own, whose id is derived from the batch's uid (jobIdOf):
   * those references are shared by every batch (JobRefs.ownJobRef), not an object and an id
   * string per call.
   */
  readonly jobId?: string;
}

/** A job's own queue and id, as a re-run makes them. */
export type JobAddress = Required<Pick<JobRef, 'queue' | 'jobId'>>;
