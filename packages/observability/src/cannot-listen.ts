import type { Logger } from "pino";

const REASONS: Readonly<Record<string, string>> = {
  EADDRINUSE: "is already in use",
  EACCES: "needs privileges this process lacks",
};

/**
 * What to do about a taken port, by variable. METRICS_PORT is one setting for two apps:
 * set for `npm start`, which runs both, the worker and the scheduler both took it.
 */
const IN_USE_HINTS: Readonly<Record<string, string>> = {
  METRICS_PORT:
    ": each worker and scheduler on a host needs its own (unset, they take 9464 and 9465; 0 picks a free one)",
};

/**
 * For `listen(...).catch(exitIfCannotListen(log, "PORT", port))`: a port that is taken (or
 * privileged) ends the process with one line naming the variable to change and exit code
 * 1, instead of an unhandled rejection's stack trace. Anything else is rethrown.
 */
export function exitIfCannotListen(log: Logger, variable: string, port: number) {
  return (err: unknown): never => {
    const code = (err as { code?: unknown }).code;
    const reason = typeof code === "string" ? REASONS[code] : undefined;
    if (reason === undefined) throw err;
    const hint = code === "EADDRINUSE" ? (IN_USE_HINTS[variable] ?? "") : "";
    log.fatal({ variable, port, code }, `${variable} ${port} ${reason}${hint}`);
    process.exit(1);
  };
}
