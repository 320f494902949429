/**
 * Every default toolq has, in one place: the environment (config.ts), the worker's options and the
 * coordinator's (Dispatcher, HTTP server) all take theirs from here, so docs/configuration.md (generated
 * from config.ts), `--help` and the code cannot disagree.
 */
export const DEFAULTS = {
  redisUrl: 'redis://127.0.0.1:6379',
  prefix: 'toolq',
  pool: 'default',
  /** BullMQ jobs one worker runs at once, per queue it consumes (its pool's and its lane). */
  concurrency: 32,
  host: '127.0.0.1',
  port: 8080,
  /**
   * Any free port (printed in the worker's `listening` line): several workers share a host without
   * clashing. Deployments that are scraped set a fixed one (deploy/: 9464).
   */
  metricsPort: 0,
  /**
   * Loopback: the worker's metrics port has no token, so it is not opened to the network unless
   * asked (TOOLQ_METRICS_HOST=0.0.0.0 where Prometheus scrapes from another machine, as in deploy/).
   */
  metricsHost: '127.0.0.1',
  /** Timeout of a tool that declares none. */
  defaultTimeoutMs: 30_000,
  /** Largest result of one call (serialised). */
  maxResultBytes: 1_000_000,
  /** Most result content one batch answers with (the Messages API takes at most 32 MB a request). */
  maxBatchResultBytes: 16 * 1024 * 1024,
  /**
   * How long each queue keeps its completed jobs, for the queue admin page's recent history, and
   * how many at most per queue: the count bounds the memory whatever the traffic (see
   * docs/tool-sets.md, "Queue admin page", for the bytes a kept job costs). Failed jobs stay an hour.
   */
  jobHistoryMs: 300_000,
  jobHistoryCount: 1_000,
  /** How long an answered batch stays collectable. */
  batchRetentionMs: 60_000,
  /** A worker whose heartbeat (every 2 s) is older than this is dead: its calls are settled (docs/delivery.md). */
  deadWorkerAfterMs: 10_000,
  /**
   * A worker whose liveness thread beats but whose event loop has not run for this long (a tool
   * blocking it for good) is dead too. Past BullMQ's 30 s lock, its jobs were recovered already.
   */
  stalledWorkerAfterMs: 30_000,
  bodyLimitBytes: 10 * 1024 * 1024,
  /** Time a client has to send a request's headers and body. */
  requestTimeoutMs: 30_000,
  /** Graceful-shutdown bound for workers and coordinators. */
  shutdownTimeoutMs: 10_000,
  /** How long a run's record and events are kept after it finished (a running run never expires). */
  runRetentionMs: 24 * 3600_000,
  /** A dead coordinator's runs are taken over within this. */
  runTakeoverMs: 15_000,
  /** Runs one coordinator runs at once (its run slots). */
  runConcurrency: 100,
  /**
   * A run waiting for approvals only parks (holds no slot and no coordinator) when the soonest
   * of them expires at least this far ahead.
   */
  runParkMinMs: 10_000,
  /** Largest run input (prompt, system, messages, the whole request as JSON). */
  maxRunInputBytes: 1024 * 1024,
  /** Runs of one app not yet finished (running or waiting for a slot), fleet-wide. */
  maxActiveRunsPerApp: 100,
  /**
   * How long one model request may take to answer (its headers: a streamed turn's first byte, a
   * JSON turn's whole answer) before the SDK gives up on it; it retries twice.
   */
  modelTimeoutMs: 120_000,
  /** SSE streams of run events one app may have open on one coordinator (each holds a socket). */
  maxStreamsPerApp: 100,
} as const;
