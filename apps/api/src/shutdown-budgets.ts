import { lockTtlMs, refreshDrainMs } from "@evergreen/refresh";

/**
 * The longest a healthy request takes: a caller waiting out another process's lock, then
 * reading what it stored. A request still unanswered then is waiting on a backing service
 * that stopped answering without closing its connections (a PostgreSQL frozen with its
 * VM, dropped packets): it is answered 503, and its work goes on (request-deadline.ts).
 */
export function requestDeadlineMs(env: { readonly REFRESH_TIMEOUT_MS: number }): number {
  return lockTtlMs(env) + 5_000;
}

/**
 * How long each of the api's draining shutdown steps may take. docker-compose.yml's
 * `stop_grace_period` for the api must exceed their sum (test/compose.test.ts checks).
 */
export function apiShutdownBudgets(env: { readonly REFRESH_TIMEOUT_MS: number }) {
  return {
    /** Refreshes this process started, until their answers are stored. */
    refreshes: refreshDrainMs(env),
    /** Requests still open once no refresh can start: each is answered by its deadline. */
    httpServer: requestDeadlineMs(env),
  };
}
