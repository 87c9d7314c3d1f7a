import { once } from "node:events";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { refreshJobId } from "../jobs";
import type { RegistrationDeps } from "../register-connection";
import { createRefreshHarness, type RefreshHarness } from "../testing";
import { openAccessToken, openRefreshToken } from "../token-cipher";
import { parseFernetKey } from "./fernet";
import { type FernetFixtures, fernetFixtures } from "./fernet-fixtures";
import { type ImportOptions, importConnections } from "./import-connections";

/** The test: 50,000 lines, 10 of them bad; every thousandth good one Fernet-sealed. */
const LINES = 50_000;
const FERNET_EVERY = 1_000;
const EXPIRES_AT = new Date(Date.now() + 2 * 3_600_000);

let h: RefreshHarness;
let dir: string;
let deps: RegistrationDeps;
/** Sealed by Python's `cryptography`: the good lines' Fernet fields, a tampered and a foreign token. */
let fx: FernetFixtures;

beforeAll(async () => {
  h = await createRefreshHarness();
  await h.addConnection({ integrationKey: "bulk" });
  await h.addConnection({ integrationKey: "fernet" });
  dir = await mkdtemp(join(tmpdir(), "evergreen-import-"));
  const sealed: string[] = [];
  for (let i = FERNET_EVERY; i <= LINES; i += FERNET_EVERY) {
    sealed.push(`secret-access-${i}`, `secret-refresh-${i}`);
  }
  fx = fernetFixtures(sealed);
  deps = {
    ...h.deps,
    prisma: h.prisma,
    settings: { defaultBufferSeconds: 300, retryBaseDelayMs: 1000 },
    spreadWindowSeconds: 3600,
  };
});
afterAll(async () => {
  await h.close();
  await rm(dir, { recursive: true, force: true });
});

async function writeLines(name: string, lines: Iterable<string>): Promise<string> {
  const path = join(dir, name);
  const out = createWriteStream(path);
  for (const line of lines) {
    if (!out.write(`${line}\n`)) await once(out, "drain");
  }
  out.end();
  await once(out, "finish");
  return path;
}

/** Runs an import of `path`, collecting everything it would print. */
async function run(path: string, options: Omit<ImportOptions, "input">) {
  const errors: string[] = [];
  const progress: string[] = [];
  const summary = await importConnections(deps, {
    ...options,
    input: createReadStream(path),
    onLineError: (line, reason) => errors.push(`line ${line}: ${reason}`),
    onProgress: (s) => progress.push(JSON.stringify(s)),
  });
  return { summary, errors, progress, output: [...errors, ...progress].join("\n") };
}

/** Line i: a user's tokens, Fernet-sealed on every FERNET_EVERY-th line. */
const good = (i: number) => {
  const field = (plain: string) => (i % FERNET_EVERY === 0 ? (fx.tokens[plain] ?? "") : plain);
  return JSON.stringify({
    externalId: `import-${i}`,
    accessToken: field(`secret-access-${i}`),
    refreshToken: field(`secret-refresh-${i}`),
    expiresAt: EXPIRES_AT.toISOString(),
    scope: "read",
    metadata: { i },
  });
};

/** Bad lines: where (a share of the file, or a line number), what, and the reason given. */
const BAD = (): readonly (readonly [number, string, string])[] => [
  [17, '{"externalId": "u17", "accessToken": "secret-broken', "not valid JSON"],
  [
    Math.round(LINES * 0.02),
    JSON.stringify({ externalId: "u", accessToken: "secret-a", expiresIn: 60 }),
    "refreshToken: is required",
  ],
  [
    Math.round(LINES * 0.047),
    JSON.stringify({
      externalId: "u",
      accessToken: "secret-a",
      refreshToken: "secret-r",
      expiresAt: "secret-soon",
    }),
    "expiresAt: must be an ISO 8601 date with an offset",
  ],
  [
    Math.round(LINES * 0.14),
    JSON.stringify({
      externalId: "u",
      accessToken: "secret-a",
      refreshToken: "secret-r",
      expiresIn: 60,
      integration: "secret-x",
    }),
    'unknown field "integration"',
  ],
  [
    Math.round(LINES * 0.2),
    JSON.stringify({
      externalId: "u-tampered",
      accessToken: "secret-a",
      refreshToken: fx.tampered,
      expiresIn: 3600,
    }),
    "refreshToken: Fernet token does not verify under the key",
  ],
  [
    Math.round(LINES * 0.24),
    JSON.stringify({
      externalId: "u",
      accessToken: "secret-a",
      refreshToken: "secret-r",
      expiresIn: 60,
      expiresAt: EXPIRES_AT,
    }),
    "exactly one of expiresAt and expiresIn is required",
  ],
  [
    Math.round(LINES * 0.4) + 1,
    JSON.stringify({
      externalId: "u-foreign",
      accessToken: fx.foreign,
      refreshToken: "secret-r",
      expiresIn: 3600,
    }),
    "accessToken: Fernet token does not verify under the key",
  ],
  [
    Math.round(LINES * 0.6),
    JSON.stringify({
      externalId: 30,
      accessToken: "secret-a",
      refreshToken: "secret-r",
      expiresIn: 60,
    }),
    "externalId: must be a string",
  ],
  [
    Math.round(LINES * 0.8),
    JSON.stringify({
      externalId: "u",
      accessToken: "secret-a",
      refreshToken: "secret-r",
      expiresIn: 2.5,
    }),
    "expiresIn: must be an int",
  ],
  [LINES, "[]", "must be an object"],
];

describe("importConnections", () => {
  it(`imports ${LINES} lines but the 10 bad ones, reported by line, spread, and re-imports as a no-op`, async () => {
    const bad = new Map(BAD().map(([line, text]) => [line, text]));
    const path = await writeLines(
      "bulk.jsonl",
      (function* () {
        for (let line = 1; line <= LINES; line += 1) yield bad.get(line) ?? good(line);
      })(),
    );
    const delayedBefore = await h.queue.getDelayedCount();
    const started = performance.now();
    const fernetKey = parseFernetKey(fx.key);
    const first = await run(path, { integration: "bulk", fernetKey });
    const seconds = (performance.now() - started) / 1000;
    console.info(
      `imported ${LINES} lines in ${seconds.toFixed(1)} s: ${Math.round(LINES / seconds)} lines/s`,
    );

    expect(first.summary).toEqual({
      lines: LINES,
      created: LINES - 10,
      updated: 0,
      unchanged: 0,
      failed: 10,
    });
    expect(first.errors).toEqual(BAD().map(([line, , reason]) => `line ${line}: ${reason}`));
    expect(first.output).not.toMatch(/secret|gAAAAA/);
    expect(first.progress).toHaveLength(LINES / 1000 + 1);

    const integration = await h.prisma.integration.findUniqueOrThrow({ where: { key: "bulk" } });
    const where = { integrationId: integration.id, externalId: { startsWith: "import-" } };
    expect(await h.prisma.connection.count({ where })).toBe(LINES - 10);
    const sample = await h.prisma.connection.findUniqueOrThrow({
      where: {
        integrationId_externalId: { integrationId: integration.id, externalId: "import-3" },
      },
    });
    expect(openAccessToken(h.keyRing, sample.id, sample.accessToken)).toBe("secret-access-3");
    expect(openRefreshToken(h.keyRing, sample.id, sample.refreshToken ?? "")).toBe(
      "secret-refresh-3",
    );
    expect(sample).toMatchObject({
      status: "active",
      scope: "read",
      metadata: { i: 3 },
      expiresAt: EXPIRES_AT,
      version: 0,
    });
    // A Fernet line is stored opened, sealed by the key ring like any other.
    const fernetLine = await h.prisma.connection.findUniqueOrThrow({
      where: {
        integrationId_externalId: { integrationId: integration.id, externalId: "import-3000" },
      },
    });
    expect(openAccessToken(h.keyRing, fernetLine.id, fernetLine.accessToken)).toBe(
      "secret-access-3000",
    );
    expect(openRefreshToken(h.keyRing, fernetLine.id, fernetLine.refreshToken ?? "")).toBe(
      "secret-refresh-3000",
    );

    // As registerConnection would: one `created` event and one `connection.created` webhook
    // event (with its outbox row) per connection, and its refresh job at nextRefreshAt.
    expect(
      await h.prisma.connectionEvent.count({
        where: { integrationId: integration.id, type: "created" },
      }),
    ).toBe(LINES - 10);
    expect(
      await h.prisma.webhookEvent.count({
        where: { integration: "bulk", type: "connection.created" },
      }),
    ).toBe(LINES - 10);
    expect(await h.prisma.webhookOutbox.count()).toBeGreaterThanOrEqual(LINES - 10);
    expect(await h.queue.getDelayedCount()).toBe(LINES - 10 + delayedBefore);
    const job = await h.queue.getJob(refreshJobId({ connectionId: sample.id, version: 0 }));
    expect((job?.timestamp ?? 0) + (job?.opts.delay ?? 0)).toBeCloseTo(
      sample.nextRefreshAt?.getTime() ?? 0,
      -4,
    );

    // All expire at one instant; the first refreshes spread over the hour before the buffer
    // (minute buckets, each near LINES / 60), not SPEC's 30 s.
    const rows = await h.prisma.connection.findMany({ where, select: { nextRefreshAt: true } });
    const end = EXPIRES_AT.getTime() - 300_000;
    const perMinute = new Map<number, number>();
    for (const { nextRefreshAt } of rows) {
      const before = end - (nextRefreshAt?.getTime() ?? 0);
      expect(before).toBeGreaterThanOrEqual(0);
      expect(before).toBeLessThanOrEqual(3_600_000);
      const minute = Math.min(59, Math.floor(before / 60_000));
      perMinute.set(minute, (perMinute.get(minute) ?? 0) + 1);
    }
    expect(perMinute.size).toBe(60);
    expect(Math.max(...perMinute.values())).toBeLessThan((2 * LINES) / 60);

    const versions = await h.prisma.connection.aggregate({ where, _sum: { version: true } });
    const events = await h.prisma.connectionEvent.count({
      where: { integrationId: integration.id },
    });
    const againStarted = performance.now();
    const again = await run(path, { integration: "bulk", fernetKey });
    console.info(`re-imported in ${((performance.now() - againStarted) / 1000).toFixed(1)} s`);
    expect(again.summary).toEqual({
      lines: LINES,
      created: 0,
      updated: 0,
      unchanged: LINES - 10,
      failed: 10,
    });
    expect(await h.prisma.connection.aggregate({ where, _sum: { version: true } })).toEqual(
      versions,
    );
    expect(await h.prisma.connectionEvent.count({ where: { integrationId: integration.id } })).toBe(
      events,
    );
    expect(await h.queue.getDelayedCount()).toBe(LINES - 10 + delayedBefore);
  }, 180_000);

  it("opens Fernet fields sealed by Python, takes plain ones, and refuses tampered and foreign tokens", async () => {
    const fx = fernetFixtures(["secret-fa-1", "secret-fr-1", "secret-fr-2"]);
    const line = (externalId: string, accessToken: string, refreshToken: string) =>
      JSON.stringify({ externalId, accessToken, refreshToken, expiresIn: 3600 });
    const path = await writeLines("fernet.jsonl", [
      line("f1", fx.tokens["secret-fa-1"] ?? "", fx.tokens["secret-fr-1"] ?? ""),
      line("f2", "secret-plain-access", fx.tokens["secret-fr-2"] ?? ""),
      line("f3", "secret-a", fx.tampered),
      line("f4", fx.foreign, "secret-r"),
      line("f5", "gAAAAAsecret-cut-short", "secret-r"),
    ]);
    const dry = await run(path, {
      integration: "fernet",
      fernetKey: parseFernetKey(fx.key),
      dryRun: true,
    });
    expect(dry.summary).toMatchObject({ created: 2, failed: 3 });
    const integration = await h.prisma.integration.findUniqueOrThrow({ where: { key: "fernet" } });
    expect(await h.prisma.connection.count({ where: { integrationId: integration.id } })).toBe(1);

    const { summary, errors, output } = await run(path, {
      integration: "fernet",
      fernetKey: parseFernetKey(fx.key),
    });
    expect(summary).toEqual({ lines: 5, created: 2, updated: 0, unchanged: 0, failed: 3 });
    expect(errors).toEqual([
      "line 3: refreshToken: Fernet token does not verify under the key",
      "line 4: accessToken: Fernet token does not verify under the key",
      "line 5: accessToken: not a Fernet token",
    ]);
    expect(output).not.toMatch(/secret|gAAAAA/);
    const stored = await h.prisma.connection.findMany({
      where: { integrationId: integration.id, externalId: { in: ["f1", "f2"] } },
      orderBy: { externalId: "asc" },
    });
    expect(stored.map((row) => openAccessToken(h.keyRing, row.id, row.accessToken))).toEqual([
      "secret-fa-1",
      "secret-plain-access",
    ]);
    expect(
      stored.map((row) => openRefreshToken(h.keyRing, row.id, row.refreshToken ?? "")),
    ).toEqual(["secret-fr-1", "secret-fr-2"]);

    const wrongKey = await run(path, {
      integration: "fernet",
      fernetKey: parseFernetKey(fx.otherKey),
    });
    expect(wrongKey.summary).toMatchObject({ failed: 4, unchanged: 0, updated: 0 });
    expect(wrongKey.errors[0]).toBe(
      "line 1: accessToken: Fernet token does not verify under the key",
    );
    expect(wrongKey.output).not.toMatch(/secret|gAAAAA/);

    // Without the key a sealed field fails its line, rather than overwrite the stored token
    // with ciphertext; one that only starts alike (line 5) is plain text.
    const noKey = await run(path, { integration: "fernet" });
    expect(noKey.errors).toEqual([
      "line 1: accessToken: is a Fernet token; give --fernet-key to open it",
      "line 2: refreshToken: is a Fernet token; give --fernet-key to open it",
      "line 3: refreshToken: is a Fernet token; give --fernet-key to open it",
      "line 4: accessToken: is a Fernet token; give --fernet-key to open it",
    ]);
    expect(noKey.summary).toMatchObject({ failed: 4, updated: 0, created: 1 });
    expect(noKey.output).not.toMatch(/secret|gAAAAA/);
  }, 60_000);
  it("refuses hostile lines the api would refuse, by line, without echoing them", async () => {
    const line = (fields: Record<string, unknown>) =>
      JSON.stringify({
        externalId: "hostile",
        accessToken: "secret-a",
        refreshToken: "secret-r",
        expiresIn: 3600,
        ...fields,
      });
    const deep = `${'{"a":'.repeat(5000)}1${"}".repeat(5000)}`;
    const path = join(dir, "hostile.jsonl");
    await writeFile(
      path,
      Buffer.concat([
        Buffer.from(`${line({ externalId: "h1", accessToken: "secret-".repeat(1_300_000) })}\n`),
        Buffer.from(`${line({ externalId: "h2" }).slice(0, -1)},"metadata":{"d":${deep}}}\n`),
        Buffer.from(
          `${line({ externalId: "h3" }).slice(0, -1)},"metadata":{"__proto__":{"admin":true},"plan":"pro"}}\n`,
        ),
        // A Latin-1 byte in the token: decoded leniently, U+FFFD would be stored in its place.
        Buffer.from(`{"externalId":"h4","accessToken":"secret-`),
        Buffer.from([0xe9]),
        Buffer.from(`","refreshToken":"secret-r","expiresIn":3600}\n`),
        Buffer.from(`${line({ externalId: "h5", expiresIn: Number.MAX_SAFE_INTEGER })}\n`),
        Buffer.from(
          `${line({ externalId: "h6", metadata: { wide: new Array(500_000).fill(0) } })}\n`,
        ),
        // A store keyed by token: the key is a secret, never echoed, not even cut short.
        Buffer.from(`${line({ externalId: "h8", "ya29.secret-token-as-a-key": 1, extra: 2 })}\n`),
        Buffer.from(`${line({ externalId: "h9", accessToken: "secret-".repeat(4000) })}\n`),
        Buffer.from(`${line({ externalId: "h7", metadata: { plan: "pro" } })}\n`),
      ]),
    );
    const { summary, errors, output } = await run(path, { integration: "bulk" });
    expect(errors).toEqual([
      "line 1: longer than 1048576 bytes",
      "line 2: metadata: at most 32 levels deep",
      "line 3: a __proto__ or constructor.prototype key is not allowed",
      "line 4: not valid UTF-8",
      "line 5: expiresIn: is too large",
      "line 6: metadata: at most 16 KiB of JSON",
      'line 7: unknown field (not shown), "extra"',
      "line 8: accessToken: is too long",
    ]);
    expect(summary).toMatchObject({ lines: 9, created: 1, failed: 8 });
    expect(output).not.toMatch(/secret/);
    const integration = await h.prisma.integration.findUniqueOrThrow({ where: { key: "bulk" } });
    const stored = await h.prisma.connection.findMany({
      where: { integrationId: integration.id, externalId: { startsWith: "h" } },
      select: { externalId: true },
      orderBy: { externalId: "asc" },
    });
    expect(stored.map((row) => row.externalId)).toEqual(["h7"]);
  }, 60_000);
});
