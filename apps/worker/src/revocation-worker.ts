import type { Logger } from "@evergreen/observability";
import {
  REVOCATION_QUEUE,
  REVOCATION_QUEUE_PREFIX,
  type RevocationDeps,
  revocationJobPayload,
  revokeGrant,
} from "@evergreen/refresh";
import type { ConnectionOptions, Worker } from "bullmq";
import { startAttemptWorker } from "./attempt-worker";

export interface RevocationWorkerOptions {
  readonly connection: ConnectionOptions;
  /** Revocations in flight. @defaultValue 5 */
  readonly concurrency?: number;
  /** @defaultValue REVOCATION_QUEUE_PREFIX */
  readonly prefix?: string;
  /** @defaultValue true */
  readonly autorun?: boolean;
  readonly log: Logger;
}

/** Consumes revocation jobs, one revokeGrant attempt each (attempt-worker.ts). */
export function startRevocationWorker(
  deps: RevocationDeps,
  options: RevocationWorkerOptions,
): Worker {
  return startAttemptWorker(
    {
      queue: REVOCATION_QUEUE,
      payload: revocationJobPayload,
      attempt: async (payload) => {
        const run = await revokeGrant(deps, payload);
        return run.kind === "done" ? run.outcome : run.kind;
      },
      name: "revocation",
      retryMessage: "grant revocation failed; retrying",
      lockDurationMs: 2 * deps.settings.timeoutMs,
    },
    {
      ...options,
      prefix: options.prefix ?? REVOCATION_QUEUE_PREFIX,
      concurrency: options.concurrency ?? 5,
    },
  );
}
