import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { PROVIDERS } from "./registry";
import type { ProviderDefinition } from "./types";

/**
 * The README's provider catalog table: its first seven columns are what the definitions
 * say, so the table cannot drift from the code; the last (what verified it) is written by
 * hand. A provider added to the registry fails here until it has a row.
 */
const README = new URL("../../../README.md", import.meta.url);
const START = "<!-- provider-catalog:start -->";
const END = "<!-- provider-catalog:end -->";
const GENERATED_COLUMNS = 7;

const WAIT_UNITS = {
  retry_after: "delay or date",
  seconds: "s",
  milliseconds: "ms",
  epoch_seconds: "epoch s",
} as const;

/** The generated cells of one provider's row. */
function catalogCells(definition: ProviderDefinition): string[] {
  const { authorization: auth, revocation, validation } = definition;
  const where = (url: string | null, fallback: string) =>
    url === null ? fallback : `\`${url.replace(/^https:\/\//, "")}\``;
  const refresh = `${where(definition.tokenUrl, "the integration's `tokenUrl`")}, ${definition.clientAuth}, ${definition.bodyFormat}`;
  const rotation =
    definition.rotatesRefreshToken === "learned"
      ? "learned from the integration's answers, no reuse grace"
      : !definition.rotatesRefreshToken
        ? "not rotated"
        : definition.reuseGrace === null || definition.reuseGrace === 0
          ? "rotates, no reuse grace"
          : definition.reuseGrace === "until_new_token_used"
            ? "rotates, old one usable until the new one is"
            : `rotates, reuse grace ${definition.reuseGrace} s`;
  const revoke =
    revocation === null
      ? "none"
      : revocation.kind === "rfc7009"
        ? `RFC 7009 ${where(revocation.url, "at the integration's `revocationUrl`")}`
        : revocation.kind === "bearer"
          ? `Bearer POST ${where(revocation.url, "")}`
          : `grant DELETE ${where(revocation.url, "")}`;
  const validate =
    validation === null
      ? "`introspectionUrl` only"
      : `${validation.kind} ${validation.kind === "identity" ? `${validation.method ?? "GET"} ` : ""}${where(validation.url, "")}`;
  const extras = Object.entries(auth.params).map(([name, value]) => `\`${name}=${value}\``);
  const authorize = [
    where(auth.url, "the integration's `authorizationUrl`"),
    auth.pkce ? "PKCE" : "no PKCE",
    ...extras,
    ...(auth.scopeParam === "scope" ? [] : [`scopes in \`${auth.scopeParam}\``]),
    ...auth.ensureScopes.map((scope) => `+\`${scope}\``),
  ].join(", ");
  const rateLimit = definition.rateLimitSources
    .map((source) =>
      "header" in source
        ? `\`${source.header}\` (${WAIT_UNITS[source.unit]})`
        : `JSON \`${source.field}\` (${WAIT_UNITS[source.unit]})`,
    )
    .join(", ");
  return [
    `${definition.displayName} (\`${definition.id}\`)`,
    refresh,
    rotation,
    revoke,
    validate,
    authorize,
    rateLimit,
  ];
}

function readmeRows(): string[][] {
  const text = readFileSync(README, "utf8");
  const section = text.slice(text.indexOf(START) + START.length, text.indexOf(END));
  return section
    .split("\n")
    .filter((line) => line.startsWith("|"))
    .slice(2)
    .map((line) =>
      line
        .slice(1, -1)
        .split(/(?<!\\)\|/)
        .map((cell) => cell.trim()),
    );
}

describe("README provider catalog", () => {
  it("has one row per registry provider whose generated columns match its definition", () => {
    const rows = readmeRows();
    const expected = Object.values(PROVIDERS).map(catalogCells);
    expect(rows.map((row) => row.slice(0, GENERATED_COLUMNS))).toEqual(expected);
    for (const row of rows) {
      // The hand-written column: what verified the row.
      expect(row).toHaveLength(GENERATED_COLUMNS + 1);
      expect(row.slice(GENERATED_COLUMNS).every((cell) => cell !== "")).toBe(true);
    }
  });
});
