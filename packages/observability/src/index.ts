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
  type OpsOptions,
  type OpsResponse,
  type OpsServer,
  type ReadinessCheck,
  startOpsServer,
} from "./ops-server";
export { handleShutdown, type Shutdown } from "./shutdown";
