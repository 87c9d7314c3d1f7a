import { type ConnectionOptions, Queue } from "bullmq";
import { z } from "zod";

/**
 * The revocation job catalog (revoke on delete): queue, job name, payload schema and
 * options, used by the api's delete and the worker. The pending_revocations row is the
 * record (its sealed token, its attempts); a job names the row and one attempt.
 */

/** Hash-tagged like the other queues, so a Redis Cluster keeps the queue in one slot. */
export const REVOCATION_QUEUE_PREFIX = "{evergreen-revocations}";
export const REVOCATION_QUEUE = "revocations";
export const REVOKE_JOB = "revoke-grant";

/** Payloads carry ids, never a token: the sealed token stays in PostgreSQL. */
export const revocationJobPayload = z.object({
  revocationId: z.string().uuid(),
  /** The attempt this job makes; any other count on the row makes it a no-op. */
  attempt: z.number().int().nonnegative(),
});
export type RevocationJobPayload = z.infer<typeof revocationJobPayload>;

/** One job to add: the attempt, due in `delayMs`. Its id makes adding it twice one job. */
export function revocationJob(payload: RevocationJobPayload, delayMs: number) {
  return {
    name: REVOKE_JOB,
    data: payload,
    opts: {
      jobId: `${payload.revocationId}.${payload.attempt}`,
      delay: Math.max(0, Math.round(delayMs)),
      removeOnComplete: true,
      removeOnFail: true,
    },
  };
}

/** @param prefix Redis key prefix; tests give each run its own. */
export function createRevocationQueue(
  connection: ConnectionOptions,
  prefix: string = REVOCATION_QUEUE_PREFIX,
): Queue<RevocationJobPayload> {
  return new Queue<RevocationJobPayload>(REVOCATION_QUEUE, { connection, prefix });
}
