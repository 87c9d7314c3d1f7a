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
  // PostgreSQL's text and jsonb cannot hold U+0000, and UTF-8 has no form for a lone
  // surrogate (`"\ud800"` is valid JSON): refused here, naming the field, rather than a
  // write failing with a 500 or a string stored as U+FFFD, which would make distinct
  // external ids one.
  const unstorable = findUnstorable(input);
  if (unstorable !== null) {
    throw new HttpError(
      400,
      "invalid_request",
      `${unstorable.path || "body"}: must not contain ${unstorable.what}`,
    );
  }
  const result = schema.safeParse(withoutNullOptionals(schema, input));
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
 * `null` for an optional field that takes no null is read as absent: apps forward provider
 * answers and their own records, where "none" is as often null as a missing key. Top-level
 * fields only; a null an optional field does take (none today) keeps its meaning.
 */
function withoutNullOptionals(schema: z.ZodType, input: unknown): unknown {
  const shape = objectShape(schema);
  if (!shape || typeof input !== "object" || input === null || Array.isArray(input)) return input;
  const kept = Object.entries(input).filter(([key, value]) => {
    // Own fields only: `constructor` or `toString` would find Object.prototype's.
    const field = Object.hasOwn(shape, key) ? shape[key] : undefined;
    return !(
      value === null &&
      field?.safeParse(undefined).success === true &&
      !field.safeParse(null).success
    );
  });
  return kept.length === Object.keys(input).length ? input : Object.fromEntries(kept);
}

/** The fields of an object schema, through `.optional()` and transforms; else undefined. */
function objectShape(schema: z.ZodType): Readonly<Record<string, z.ZodType>> | undefined {
  if (schema instanceof z.ZodObject) return schema.shape;
  if (schema instanceof z.ZodOptional) return objectShape(schema.unwrap() as z.ZodType);
  if (schema instanceof z.ZodPipe) return objectShape(schema.in as z.ZodType);
  return undefined;
}

/** A UTF-16 surrogate without its other half (in a `u` regex a pair is one code point). */
const LONE_SURROGATE = /\p{Cs}/u;

interface Unstorable {
  readonly path: string;
  readonly what: string;
}

function unstorableIn(text: string): string | null {
  if (text.includes("\u0000")) return "U+0000";
  return LONE_SURROGATE.test(text) ? "a lone UTF-16 surrogate" : null;
}

/** The first key or string PostgreSQL cannot store, with its path (depth-bounded), or null. */
function findUnstorable(value: unknown, path = "", depth = 0): Unstorable | null {
  if (typeof value === "string") {
    const what = unstorableIn(value);
    return what === null ? null : { path, what };
  }
  if (typeof value !== "object" || value === null || depth > 64) return null;
  for (const [key, inner] of Object.entries(value)) {
    const at = path ? `${path}.${key}` : key;
    const what = unstorableIn(key);
    // Printed escaped: the path goes into a JSON answer and a log line.
    if (what !== null) return { path: JSON.stringify(at).slice(1, -1), what };
    const found = findUnstorable(inner, at, depth + 1);
    if (found !== null) return found;
  }
  return null;
}
