import { z } from "zod";
import type { ConnectionRegistration } from "../register-connection";
import { decryptFernet, FernetError, type FernetKey, looksLikeFernet } from "./fernet";

/** One imported line, as the registration it becomes (the integration comes from the flag). */
export type ImportedConnection = Omit<ConnectionRegistration, "integration">;

/** What a line is: a registration, or the reason it was refused (never a value from it). */
export type ParsedLine =
  | { readonly ok: true; readonly connection: ImportedConnection }
  | { readonly ok: false; readonly reason: string };

const token = z.string().min(1);
const lineSchema = z
  .strictObject({
    externalId: z.string().min(1).max(255),
    accessToken: token,
    refreshToken: token,
    expiresAt: z.iso.datetime({ offset: true }).optional(),
    expiresIn: z.number().int().positive().optional(),
    scope: z.string().optional(),
    metadata: z.record(z.string(), z.unknown()).optional(),
  })
  .refine((line) => (line.expiresAt === undefined) !== (line.expiresIn === undefined), {
    message: "exactly one of expiresAt and expiresIn is required",
  });

/** Fixed words per problem: zod's own messages may quote the input, which may be a token. */
function describeIssue(issue: z.core.$ZodIssue, json: unknown): string {
  const field = issue.path.join(".");
  const at = field === "" ? "" : `${field}: `;
  switch (issue.code) {
    case "unrecognized_keys":
      // Field names, not values; cut short in case a line put a secret where a name goes.
      return `unknown field ${issue.keys.map((key) => JSON.stringify(key.slice(0, 40))).join(", ")}`;
    case "invalid_type":
      return isMissing(json, issue.path)
        ? `${at}is required`
        : `${at}must be ${/^[aeiou]/.test(issue.expected) ? "an" : "a"} ${issue.expected}`;
    case "invalid_format":
      return field === "expiresAt"
        ? `${at}must be an ISO 8601 date with an offset`
        : `${at}bad format`;
    case "too_small":
      return `${at}must not be empty or zero`;
    case "too_big":
      return `${at}is too long`;
    case "custom":
      return `${at}${issue.message}`;
    default:
      return `${at}is invalid`;
  }
}

function isMissing(json: unknown, path: readonly PropertyKey[]): boolean {
  const [field] = path;
  return (
    path.length === 1 &&
    typeof json === "object" &&
    json !== null &&
    !Object.hasOwn(json, field as string)
  );
}

/**
 * A token field, opened when a Fernet key is given and it is a Fernet token. A value that
 * does not start like one is plain text (a store may have sealed some fields and not others);
 * one that does must verify, so a tampered or foreign token is refused, never stored as is.
 */
function openField(fernetKey: FernetKey | undefined, field: string, value: string): string {
  if (!fernetKey || !looksLikeFernet(value)) return value;
  try {
    return decryptFernet(fernetKey, value);
  } catch (error) {
    if (error instanceof FernetError) throw new LineError(`${field}: ${error.message}`);
    throw error;
  }
}

class LineError extends Error {
  override name = "LineError";
}

/** Parses one JSON line of an import; `text` is never part of the reason. */
export function parseImportLine(text: string, fernetKey?: FernetKey): ParsedLine {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    // V8's message quotes the text around the error.
    return { ok: false, reason: "not valid JSON" };
  }
  const parsed = lineSchema.safeParse(json);
  if (!parsed.success) {
    return {
      ok: false,
      reason: parsed.error.issues.map((issue) => describeIssue(issue, json)).join("; "),
    };
  }
  const line = parsed.data;
  try {
    return {
      ok: true,
      connection: {
        externalId: line.externalId,
        accessToken: openField(fernetKey, "accessToken", line.accessToken),
        refreshToken: openField(fernetKey, "refreshToken", line.refreshToken),
        expiresAt: line.expiresAt === undefined ? undefined : new Date(line.expiresAt),
        expiresIn: line.expiresIn,
        scope: line.scope,
        metadata: line.metadata,
      },
    };
  } catch (error) {
    if (error instanceof LineError) return { ok: false, reason: error.message };
    throw error;
  }
}
