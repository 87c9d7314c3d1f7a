// The retry rule the worker caps for outages of its own (refresh-worker.ts).
export { backoffMs } from "@evergreen/providers";
export { adoptParkedAnswers, joinShardLayout } from "./adopt-parked-answers";
export {
  type CallbackOutcome,
  type ConnectCallback,
  type ConnectErrorCode,
  completeConnectSession,
} from "./complete-connect-session";
export {
  expiresInInput,
  MAX_EXTERNAL_ID_CHARS,
  MAX_SCOPE_CHARS,
  MAX_TOKEN_CHARS,
  metadataInput,
  scopesInput,
} from "./connection-input";
export {
  type ConnectSession,
  type ConnectSessionRequest,
  createConnectSession,
  ReturnUrlNotAllowedError,
} from "./create-connect-session";
export {
  announceReauthSoon,
  type ValidationSweepResult,
  validateDueConnections,
} from "./custody-sweeps";
export {
  type CodeExchange,
  CodeExchangeError,
  type ExchangeDeps,
  exchangeCode,
} from "./exchange-code";
export { decryptFernet, FernetError, type FernetKey, parseFernetKey } from "./import/fernet";
export {
  type ImportOptions,
  type ImportSummary,
  importConnections,
} from "./import/import-connections";
export { infraDependency, isInfraOutage } from "./infra-errors";
export {
  createRefreshQueue,
  parseRefreshJobId,
  QUEUE_PREFIX,
  REFRESH_JOB,
  REFRESH_QUEUE,
  REFRESHABLE,
  type RefreshJobData,
  type RefreshJobPayload,
  type RefreshQueue,
  refreshJobId,
  WORKER_JOB_RETENTION,
} from "./jobs";
export {
  type CiphertextCount,
  countCiphertexts,
  type KeyStatus,
  keyStatus,
  type RotationProgress,
  type RotationResult,
  rotateCiphertexts,
  type UnreadableCiphertext,
} from "./key-rotation";
export { countOverdue, OVERDUE_GRACE_SECONDS, type OverdueCount } from "./overdue";
export { ParkedAnswers } from "./parked-answers";
export { poisonedKeyPath } from "./poisoned-keys";
export { type ReconcileOptions, type ReconcileResult, reconcileQueue } from "./reconcile";
export {
  type RefreshDeps,
  type RefreshRequestInput,
  type RefreshRun,
  type RefreshSettings,
  refreshConnection,
} from "./refresh-connection";
export { RefreshQueues } from "./refresh-queues";
export {
  type ConnectionRegistration,
  type RegisteredConnection,
  type RegistrationDeps,
  registerConnection,
  UnknownIntegrationError,
} from "./register-connection";
export {
  type IntegrationDeps,
  type IntegrationRegistration,
  registerIntegration,
} from "./register-integration";
export { checkReturnUrlEntry } from "./return-urls";
export {
  createRevocationQueue,
  REVOCATION_QUEUE,
  REVOCATION_QUEUE_PREFIX,
  REVOKE_JOB,
  type RevocationJobPayload,
  revocationJob,
  revocationJobPayload,
} from "./revocation-jobs";
export {
  planRevocation,
  REVOCATION_GIVE_UP_MS,
  type RevocationDeps,
  type RevocationRun,
  type RevocationSettings,
  requeuePendingRevocations,
  revokeGrant,
} from "./revoke-grant";
export {
  computeNextRefreshAt,
  enqueueRefresh,
  minRefreshIntervalMs,
  type RefreshTimeInput,
  refreshJob,
} from "./schedule";
export { hashTagSlot, MAX_REFRESH_QUEUE_SHARDS, RefreshLayout } from "./shards";
export {
  openAccessToken,
  openClientSecret,
  openCodeVerifier,
  openRefreshToken,
  sealAccessToken,
  sealClientSecret,
  sealCodeVerifier,
  sealRefreshToken,
} from "./token-cipher";
export {
  type Validation,
  type ValidationDeps,
  ValidationFailedError,
  ValidationUnsupportedError,
  validateConnection,
} from "./validate-connection";
export { createRefreshDeps, createValidationDeps, lockTtlMs, refreshDrainMs } from "./wiring";
