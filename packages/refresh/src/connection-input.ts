import { z } from "zod";

/**
 * The bounds on a connection's values wherever they come in: `POST /v1/connections`, the
 * connect flow and the import. One place, so a bulk import cannot store what the api refuses
 * (a megabyte token, metadata nested deep enough to overflow Prisma's serializer).
 */

export const MAX_EXTERNAL_ID_CHARS = 256;
export const MAX_TOKEN_CHARS = 16_384;
export const MAX_SCOPE_CHARS = 4096;
/** The longest `expiresIn` taken: ten years. */
export const MAX_EXPIRES_IN_SECONDS = 10 * 365 * 24 * 3600;

/**
 * `expiresIn`, whole seconds up to ten years. 0 (what some providers send for "unknown"),
 * a negative value and anything under a second count as absent (SPEC §2: an expiry not in
 * the future counts as absent, at registration too): the fallback lifetime applies.
 */
export const expiresInInput = z.number().max(MAX_EXPIRES_IN_SECONDS).int();

const MAX_METADATA_DEPTH = 32;
const MAX_METADATA_JSON_CHARS = 16_384;

/**
 * The scopes an integration or a connect session asks for: RFC 6749's scope tokens, which
 * the authorization request joins with spaces, so one holding a space (or a quote, a
 * backslash, a control character) would be read as several, or be refused by the provider.
 */
export const scopesInput = z
  .array(
    z
      .string()
      .min(1)
      .max(256)
      .regex(/^[\x21\x23-\x5B\x5D-\x7E]+$/, 'a scope is printable ASCII without spaces, " or \\'),
  )
  .max(100);

/** A connection's metadata: a JSON object at most 32 levels deep and 16 KiB of JSON. */
export const metadataInput = z.record(z.string(), z.unknown()).superRefine((value, ctx) => {
  // Depth first: measuring the size of a value nested thousands deep overflowed the
  // stack (a 500), and Prisma's serializer overflowed on 3000 levels.
  if (nestingDepth(value) > MAX_METADATA_DEPTH) {
    ctx.addIssue({ code: "custom", message: `at most ${MAX_METADATA_DEPTH} levels deep` });
  } else if (JSON.stringify(value).length > MAX_METADATA_JSON_CHARS) {
    ctx.addIssue({ code: "custom", message: "at most 16 KiB of JSON" });
  }
});

/** How deeply a parsed JSON value nests, found without recursion. */
function nestingDepth(value: unknown): number {
  let deepest = 0;
  const pending: [unknown, number][] = [[value, 1]];
  for (let next = pending.pop(); next; next = pending.pop()) {
    const [node, depth] = next;
    if (typeof node !== "object" || node === null) continue;
    deepest = Math.max(deepest, depth);
    for (const child of Object.values(node)) pending.push([child, depth + 1]);
  }
  return deepest;
}
