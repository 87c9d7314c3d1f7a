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
  // PostgreSQL's text and jsonb cannot hold U+0000: refused here, naming the field, rather
  // than failing the write with a 500.
  const withNul = pathOfNul(input);
  if (withNul !== null) {
    throw new HttpError(400, "invalid_request", `${withNul || "body"}: must not contain U+0000`);
  }
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

/** The path of the first key or string holding U+0000 (depth-bounded), or null. */
function pathOfNul(value: unknown, path = "", depth = 0): string | null {
  if (typeof value === "string") return value.includes("\u0000") ? path : null;
  if (typeof value !== "object" || value === null || depth > 64) return null;
  for (const [key, inner] of Object.entries(value)) {
    const at = path ? `${path}.${key}` : key;
    if (key.includes("\u0000")) return at.replaceAll("\u0000", "\\u0000");
    const found = pathOfNul(inner, at, depth + 1);
    if (found !== null) return found;
  }
  return null;
}
