import { AuditWriteError, type Logger, type TokenRead } from "@evergreen/observability";
import type { FastifyRequest } from "fastify";

/** Tells a line the audit log could not take, where the answer it records stands anyway. */
export const auditLineLost =
  (log: Pick<Logger, "error">) =>
  (error: AuditWriteError): void => {
    log.error({ err: error }, "audit line lost: the audit log cannot be written");
  };

/**
 * A code exchange's line, written after the exchange: its connection is stored either way,
 * and no token is in the answer, so a full disk must not turn it into a 503, whose retry
 * would send the spent code again (RFC 6749 §4.1.2: the provider may then revoke the grant).
 */
export function auditExchange(request: FastifyRequest, read: TokenRead): void {
  try {
    request.server.audit.tokenRead(read);
  } catch (error) {
    if (!(error instanceof AuditWriteError)) throw error;
    auditLineLost(request.log)(error);
  }
}
