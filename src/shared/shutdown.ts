// The shutdown budget (SPEC §8): from SIGTERM, jobrunner exits within the longest destroy_timeout plus
// SHUTDOWN_ESCALATION_MS, whatever its workers and brokers do. destroy_timeout is for the jobs in flight
// (and for workers to exit after `stop` once idle); after it, each phase of the escalation has a fixed
// bound and is cut short when it runs over. docs/kubernetes.md and docs/docker.md budget the grace period
// with these numbers, and test/config/docs.test.ts keeps them equal.

/** The fixed phases after destroy_timeout, in order. */
export const SHUTDOWN_PHASES = {
  /** a worker sent `stop` when destroy_timeout ran out (it still held a job) gets this long to exit */
  stopGraceMs: 2000,
  /** then SIGTERM to its process group, and this long before SIGKILL */
  termGraceMs: 2000,
  /** after SIGKILL, how long the pool waits to see the exit */
  killWaitMs: 1000,
  /** closing links, connections, the HTTP and RPC servers, and flushing telemetry */
  closeMs: 3000,
} as const;

/**
 * What the documentation promises after destroy_timeout: the phases (8 s) plus 2 s for the rest (the
 * returns to the broker, the last log lines, the process's own exit) on a loaded machine.
 */
export const SHUTDOWN_ESCALATION_MS = 10_000;
