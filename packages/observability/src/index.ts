export {
  type AuditDestination,
  type AuditLog,
  AuditLogError,
  type AuditLogOptions,
  AuditWriteError,
  createAuditLog,
  type RejectedKey,
  type SecurityEvent,
  type TokenRead,
} from "./audit-log";
export { exitIfCannotListen } from "./cannot-listen";
export { ClientErrorLog, type ErrorSource } from "./client-error-log";
export { errorName, tellFirstError } from "./error-name";
export {
  createHttpMetrics,
  type HttpMetrics,
  TOKEN_OUTCOMES,
  type TokenOutcome,
} from "./http-metrics";
export {
  createLogger,
  hashId,
  type Logger,
  type LoggerSettings,
  REDACT_PATHS,
  serializeError,
} from "./logger";
export {
  createMetrics,
  DEPENDENCIES,
  type Dependency,
  type Metrics,
  type MetricsOptions,
  REFRESH_OUTCOMES,
  type RefreshOutcome,
} from "./metrics";
export {
  answerOpsRequest,
  type LivenessCheck,
  type OpsOptions,
  type OpsResponse,
  type OpsServer,
  type ReadinessCheck,
  startOpsServer,
} from "./ops-server";
export { createSchedulerMetrics, type SchedulerMetrics } from "./scheduler-metrics";
export { handleShutdown, type Shutdown } from "./shutdown";
