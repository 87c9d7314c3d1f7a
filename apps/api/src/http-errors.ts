import type { z } from "zod";

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

/** Parses request input; a failure names the first failing field. */
export function parseInput<Schema extends z.ZodType>(
  schema: Schema,
  input: unknown,
): z.output<Schema> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const field = issue?.path.join(".") || "body";
  throw new HttpError(400, "invalid_request", `${field}: ${issue?.message ?? "invalid"}`);
}
