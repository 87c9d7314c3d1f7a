import type { Fault } from "./fault";
import { GRANT_REVOKED, revokeGrants } from "./grants";
import { postgresStop } from "./postgres";
import { killApp, pauseApp } from "./processes";
import { droppedAnswers, latencySpike, rateLimitStorm, serverErrors } from "./provider";
import { redisFlushAll, redisKillWithAof, redisKillWithoutAof } from "./redis";

export type { Fault, FaultContext, Span, Started } from "./fault";

/** Every fault type, in the report's order. */
export function faultCatalog(needsReauth: (ids: readonly string[]) => Promise<boolean>): Fault[] {
  return [
    killApp("worker"),
    killApp("api"),
    killApp("scheduler"),
    pauseApp("worker"),
    pauseApp("api"),
    pauseApp("scheduler"),
    redisKillWithAof,
    redisKillWithoutAof,
    redisFlushAll,
    postgresStop,
    latencySpike,
    rateLimitStorm,
    serverErrors,
    droppedAnswers,
    revokeGrants(needsReauth),
  ];
}

/** Faults that hit chosen grants, not the system: they open no window of excused expiry. */
export const GRANT_FAULTS: ReadonlySet<string> = new Set([droppedAnswers.kind, GRANT_REVOKED]);
export const REDIS_FAULTS: ReadonlySet<string> = new Set([
  redisKillWithAof.kind,
  redisKillWithoutAof.kind,
  redisFlushAll.kind,
]);
export const POSTGRES_FAULT = postgresStop.kind;
