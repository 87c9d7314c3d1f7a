import { z } from "zod";

/** An error the HTTP layer answers with its own status and code (SPEC §3 error format). */
export class HttpError extends Error {
  override name = "HttpError";
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    /** Sent as `Retry-After` when set. */
    readonly options: { readonly retryAfterSeconds?: number | undefined } = {},
  ) {
    super(message);
  }
}

/** The query string (or body) of a route that takes none: any field in it is unknown. */
export const noFields = z.strictObject({}).optional();

/**
 * Parses request input with a strict schema. A failure names the failing field; unknown
 * fields come first, since they usually explain the rest: a provider's raw answer posted
 * as is (`access_token`, `expires_in`) would otherwise be reported as `accessToken`
 * missing, or, were unknown fields dropped, stored without its expiry.
 */
export function parseInput<Schema extends z.ZodType>(
  schema: Schema,
  input: unknown,
): z.output<Schema> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const { issues } = result.error;
  const unknown = issues.find((issue) => issue.code === "unrecognized_keys");
  if (unknown) {
    const names = unknown.keys.map((key) => [...unknown.path, key].join("."));
    const noun = names.length === 1 ? "unknown field" : "unknown fields";
    throw new HttpError(400, "invalid_request", `${names.join(", ")}: ${noun}`);
  }
  const issue = issues[0];
  const field = issue?.path.join(".") || "body";
  throw new HttpError(400, "invalid_request", `${field}: ${issue?.message ?? "invalid"}`);
}

/**
 * PostgreSQL or Redis down is an outage to retry through (503), not a bug (500): Prisma's
 * P1001/P1002/P1017 (unreachable, timed out, closed), pg's socket errors and SQLSTATE
 * classes 08 (connection exception) and 57P (server shutting down) from the refresh path's
 * SQL, and ioredis giving up on a command.
 */
export function isBackendUnavailable(error: Error & { code?: unknown }): boolean {
  const code = typeof error.code === "string" ? error.code : "";
  return (
    error.name === "MaxRetriesPerRequestError" ||
    (error.name.startsWith("PrismaClient") && ["P1001", "P1002", "P1017"].includes(code)) ||
    SOCKET_ERRORS.has(code) ||
    /^(08|57P)/.test(code) ||
    error.message === "Connection terminated unexpectedly"
  );
}

const SOCKET_ERRORS = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "EHOSTUNREACH"]);
