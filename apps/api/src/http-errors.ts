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

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * A uuid path parameter, lowercase as PostgreSQL prints it. An id of any other shape names
 * nothing: `notFound`, like an unknown one (SPEC §3).
 */
export function uuidParam(value: unknown, notFound: () => HttpError): string {
  if (typeof value !== "string" || !UUID.test(value)) throw notFound();
  return value.toLowerCase();
}
