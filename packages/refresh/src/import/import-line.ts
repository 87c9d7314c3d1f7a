import { z } from "zod";
import {
  expiresInInput,
  MAX_EXTERNAL_ID_CHARS,
  MAX_SCOPE_CHARS,
  MAX_TOKEN_CHARS,
  metadataInput,
} from "../connection-input";
import { poisonedKeyPath } from "../poisoned-keys";
import type { ConnectionRegistration } from "../register-connection";
import {
  decryptFernet,
  FernetError,
  type FernetKey,
  isFernetShaped,
  looksLikeFernet,
} from "./fernet";

/** One imported line, as the registration it becomes (the integration comes from the flag). */
export type ImportedConnection = Omit<ConnectionRegistration, "integration">;

/** What a line is: a registration, or the reason it was refused (never a value from it). */
export type ParsedLine =
  | { readonly ok: true; readonly connection: ImportedConnection }
  | { readonly ok: false; readonly reason: string };

// The api's bounds (connection-input.ts): an import stores nothing POST /v1/connections would
// refuse. A Fernet token is longer than the token it seals, by a third and 73 bytes or so.
const token = z
  .string()
  .min(1)
  .max(Math.ceil(((MAX_TOKEN_CHARS + 16 + 57) * 4) / 3));
const lineSchema = z
  .strictObject({
    externalId: z.string().min(1).max(MAX_EXTERNAL_ID_CHARS),
    accessToken: token,
    refreshToken: token,
    expiresAt: z.iso.datetime({ offset: true }).optional(),
    expiresIn: expiresInInput.optional(),
    scope: z.string().max(MAX_SCOPE_CHARS).optional(),
    metadata: metadataInput.optional(),
  })
  .refine((line) => (line.expiresAt === undefined) !== (line.expiresIn === undefined), {
    message: "exactly one of expiresAt and expiresIn is required",
  });

/** A name worth echoing: short, a word like the ones a line should hold. */
const FIELD_NAME = /^[A-Za-z][A-Za-z0-9_]{0,31}$/;

/** Fixed words per problem: zod's own messages may quote the input, which may be a token. */
function describeIssue(issue: z.core.$ZodIssue, json: unknown): string {
  const field = issue.path.join(".");
  const at = field === "" ? "" : `${field}: `;
  switch (issue.code) {
    case "unrecognized_keys":
      // Field names, not values; only names that look like one: a line that put a token
      // where a name goes (a map keyed by token) must not have it echoed, even in part.
      return `unknown field ${issue.keys.map((key) => (FIELD_NAME.test(key) ? JSON.stringify(key) : "(not shown)")).join(", ")}`;
    case "invalid_type":
      return isMissing(json, issue.path)
        ? `${at}is required`
        : `${at}must be ${/^[aeiou]/.test(issue.expected) ? "an" : "a"} ${issue.expected}`;
    case "invalid_format":
      return field === "expiresAt"
        ? `${at}must be an ISO 8601 date with an offset`
        : `${at}bad format`;
    case "too_small":
      return issue.origin === "number"
        ? `${at}must be ${issue.inclusive ? "at least" : "more than"} ${issue.minimum}`
        : `${at}must not be empty`;
    case "too_big":
      return `${at}is too ${issue.origin === "number" ? "large" : "long"}`;
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
 * Without a key, a value shaped as a Fernet token is refused too.
 */
function openField(fernetKey: FernetKey | undefined, field: string, value: string): string {
  // Stored as it came, a sealed token would overwrite the live one (and a refresh token so
  // lost loses the grant): the operator most likely forgot the key.
  if (!fernetKey && isFernetShaped(value)) {
    throw new LineError(`${field}: is a Fernet token; give --fernet-key to open it`);
  }
  let opened = value;
  if (fernetKey && looksLikeFernet(value)) {
    try {
      opened = decryptFernet(fernetKey, value);
    } catch (error) {
      if (error instanceof FernetError) throw new LineError(`${field}: ${error.message}`);
      throw error;
    }
  }
  if (opened.length > MAX_TOKEN_CHARS) throw new LineError(`${field}: is too long`);
  return opened;
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
  if (poisonedKeyPath(json) !== null) {
    return { ok: false, reason: "a __proto__ or constructor.prototype key is not allowed" };
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
