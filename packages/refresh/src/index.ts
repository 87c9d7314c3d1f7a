export {
  type ConnectionChange,
  type ConnectionEventInput,
  ConnectionStore,
  type RefreshIntegration,
  type WriteFence,
} from "./connection-store";
export {
  COOLDOWN_PREFIX,
  createRefreshQueue,
  LOCK_PREFIX,
  PARKED_PREFIX,
  QUEUE_PREFIX,
  REFRESH_JOB,
  REFRESH_QUEUE,
  type RefreshJobPayload,
  refreshJobId,
  refreshJobPayload,
  WORKER_JOB_RETENTION,
} from "./jobs";
export { type ParkedAnswer, ParkedAnswers } from "./parked-answers";
export { type ReconcileOptions, type ReconcileResult, reconcileQueue } from "./reconcile";
export {
  backoffMs,
  type RefreshDeps,
  type RefreshRequestInput,
  type RefreshRun,
  type RefreshSettings,
  refreshConnection,
} from "./refresh-connection";
export { computeNextRefreshAt, enqueueRefresh, type RefreshTimeInput } from "./schedule";
export {
  openAccessToken,
  openClientSecret,
  openRefreshToken,
  sealAccessToken,
  sealClientSecret,
  sealRefreshToken,
} from "./token-cipher";
export {
  createRefreshDeps,
  insecureTokenUrls,
  lockTtlMs,
  type RefreshEnv,
  type RefreshParts,
  refreshSettings,
} from "./wiring";
