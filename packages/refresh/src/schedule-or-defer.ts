import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "@evergreen/observability";

/** How long a request waits for Redis to take a job before leaving it to the sweep. */
const SCHEDULE_TIMEOUT_MS = 2_000;

/**
 * Waits briefly for a job to be queued. The database row already says when the refresh is
 * due, so a Redis outage must not fail (or, as BullMQ waits for its connection, hang) the
 * request: the scheduler's next sweep adds whatever is missing.
 */
export async function scheduleOrDefer(
  log: Logger,
  context: Record<string, unknown>,
  add: Promise<unknown>,
): Promise<void> {
  // The add may settle after we stop waiting; its outcome no longer matters then.
  add.catch(() => {});
  const timedOut = sleep(SCHEDULE_TIMEOUT_MS, undefined, { ref: false }).then(() => {
    throw new Error(`Redis did not take the job within ${SCHEDULE_TIMEOUT_MS} ms`);
  });
  try {
    await Promise.race([add, timedOut]);
  } catch (err) {
    log.error({ err, ...context }, "scheduling failed; the scheduler's next sweep adds the job");
  }
}
