import { lockTtlMs, refreshDrainMs } from "@evergreen/refresh";

/**
 * How long each of the api's draining shutdown steps may take. docker-compose.yml's
 * `stop_grace_period` for the api must exceed their sum (test/compose.test.ts checks).
 */
export function apiShutdownBudgets(env: { readonly REFRESH_TIMEOUT_MS: number }) {
  return {
    /** Refreshes this process started, until their answers are stored. */
    refreshes: refreshDrainMs(env),
    /**
     * Requests still open once no refresh can start; the longest is a caller waiting out
     * another process's lock, then reading what it stored.
     */
    httpServer: lockTtlMs(env) + 5_000,
  };
}
