// Capped exponential backoff with jitter, shared by reconnects, worker restarts and job retries.

export interface BackoffPolicy {
  /** first delay, ms */
  initialMs: number;
  /** cap, ms */
  maxMs: number;
  multiplier: number;
  /** 0..1: the delay is spread uniformly over [d*(1-jitter), d*(1+jitter)], then capped */
  jitter: number;
}

/** Delay before try number `attempt` (1 = the first retry). */
export function backoffDelay(policy: BackoffPolicy, attempt: number, random: () => number = Math.random): number {
  const n = Math.max(1, attempt);
  const base = Math.min(policy.maxMs, policy.initialMs * Math.pow(policy.multiplier, n - 1));
  const spread = base * policy.jitter * (random() * 2 - 1);
  return Math.max(0, Math.min(policy.maxMs, Math.round(base + spread)));
}

export const RECONNECT_BACKOFF: BackoffPolicy = { initialMs: 250, maxMs: 15_000, multiplier: 2, jitter: 0.2 };
