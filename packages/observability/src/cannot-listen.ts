import type { Logger } from "pino";

const REASONS: Readonly<Record<string, string>> = {
  EADDRINUSE: "is already in use",
  EACCES: "needs privileges this process lacks",
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
    log.fatal({ variable, port, code }, `${variable} ${port} ${reason}`);
    process.exit(1);
  };
}
