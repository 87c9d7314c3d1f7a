export { exitIfCannotListen } from "./cannot-listen";
export { ClientErrorLog, type ErrorSource } from "./client-error-log";
export {
  createLogger,
  hashId,
  type Logger,
  type LoggerSettings,
  REDACT_PATHS,
  serializeError,
} from "./logger";
export { createMetrics, type Metrics, REFRESH_OUTCOMES, type RefreshOutcome } from "./metrics";
export {
  answerOpsRequest,
  type LivenessCheck,
  type OpsOptions,
  type OpsResponse,
  type OpsServer,
  type ReadinessCheck,
  startOpsServer,
} from "./ops-server";
export { handleShutdown, type Shutdown } from "./shutdown";
