// `npx tsx bench/admin-overview.ts`: how long GET /admin (the admin console's overview) takes
// at ADMIN_BENCH_CONNECTIONS connections (default 1,000,000), seeded with generate_series in
// a scratch database, with a day of connection events plus one refresh per connection in
// the last hour. Signs in, waits for the first counts, then times ADMIN_BENCH_RUNS requests
// one after another, ADMIN_BENCH_PAUSE_MS apart (the counts are taken again every 30 s
// meanwhile, as with the console open).
import { setTimeout as delay } from "node:timers/promises";
import { generateEncryptionKey } from "@evergreen/crypto";
import { createDatabase } from "@evergreen/db";
import { createTestDatabase } from "@evergreen/db/testing";
import { redisDatabaseUrl } from "@evergreen/refresh/testing";
import { listeningPort, startApp } from "../test/support/app-process";
import { envInt, percentile } from "./support";

const CONNECTIONS = envInt("ADMIN_BENCH_CONNECTIONS", 1_000_000);
const RUNS = envInt("ADMIN_BENCH_RUNS", 30);
const PAUSE_MS = envInt("ADMIN_BENCH_PAUSE_MS", 1000, 0);
const ADMIN_KEY = "bench-admin-key-0123456789";

const SEED = `
INSERT INTO integrations (id, key, provider, "clientId", "clientSecret", "tokenUrl", "updatedAt")
SELECT gen_random_uuid(), 'integration-' || n,
       (ARRAY['google', 'microsoft', 'oauth2', 'salesforce', 'github'])[n],
       'client', 'ev1.none.none', 'https://example.test/token', now()
  FROM generate_series(1, 5) n;
INSERT INTO connections (id, "integrationId", "externalId", "accessToken", "refreshToken", status,
                         "expiresAt", "nextRefreshAt", "refreshTokenExpiresAt", "lastRefreshedAt",
                         "refreshCount", "updatedAt")
SELECT gen_random_uuid(), i.id, 'user-' || g, 'ev1.none.none', 'ev1.none.none',
       (CASE WHEN g % 100 = 0 THEN 'needs_reauth' WHEN g % 250 = 1 THEN 'error'
             WHEN g % 500 = 2 THEN 'expired' ELSE 'active' END)::"ConnectionStatus",
       now() + (g % 3600) * interval '1 second',
       now() + (g % 3600) * interval '1 second' - interval '300 seconds',
       CASE WHEN g % 20 = 0 THEN now() + (g % 90) * interval '1 day' END,
       now() - interval '1 hour', g % 50, now()
  FROM generate_series(1, $1::int) g
  JOIN (SELECT id, row_number() OVER (ORDER BY key) AS n FROM integrations) i ON i.n = 1 + g % 5;
INSERT INTO connection_events ("connectionId", "integrationId", type, outcome, "createdAt")
SELECT id, "integrationId", 'refreshed', 'success',
       now() - interval '1 day' + (row_number() OVER ()) * (interval '22 hours' / $1::int)
  FROM connections;
INSERT INTO connection_events ("connectionId", "integrationId", type, outcome, "errorCode", "createdAt")
SELECT id, "integrationId", (CASE WHEN failed THEN 'refresh_failed' ELSE 'refreshed' END)::"ConnectionEventType",
       CASE WHEN failed THEN 'transient' ELSE 'success' END, CASE WHEN failed THEN 'server_error' END, at
  FROM (SELECT id, "integrationId", random() < 0.02 AS failed,
               now() - interval '59 minutes' + (row_number() OVER ()) * (interval '58 minutes' / $1::int) AS at
          FROM connections) s;
`;

const db = await createTestDatabase();
const api = (() => {
  let started: ReturnType<typeof startApp> | undefined;
  return {
    start: () => {
      started = startApp("api", {
        NODE_ENV: "test",
        DATABASE_URL: db.url,
        // The admin console's test database: nothing else runs there during a benchmark.
        REDIS_URL: redisDatabaseUrl(4),
        ENCRYPTION_KEYS: generateEncryptionKey("bench"),
        API_KEYS: `admin:${ADMIN_KEY}:admin`,
        PORT: "0",
        // info: listeningPort reads the "Server listening" line.
        LOG_LEVEL: "info",
      });
      return started;
    },
    stop: async () => {
      started?.child.kill("SIGTERM");
      await started?.exited;
    },
  };
})();
try {
  const seeding = performance.now();
  const database = createDatabase({ url: db.url, poolSize: 1 });
  // One statement at a time: $1 binds per statement.
  for (const statement of SEED.split(";").filter((text) => text.trim() !== "")) {
    await database.pool.query(statement, statement.includes("$1") ? [CONNECTIONS] : []);
  }
  await database.pool.query("VACUUM ANALYZE connections");
  await database.pool.query("VACUUM ANALYZE connection_events");
  await database.close();
  console.log(
    `seeded ${CONNECTIONS} connections and ${2 * CONNECTIONS} events in ${Math.round((performance.now() - seeding) / 1000)} s`,
  );

  const base = `http://127.0.0.1:${await listeningPort(api.start())}`;
  // As a browser signs in: the form first, for its token (cookie and hidden field).
  const form = await fetch(`${base}/admin/login`);
  const formCookie = (form.headers.get("set-cookie") ?? "").split(";")[0] ?? "";
  const csrf = /name="csrf" value="([^"]+)"/.exec(await form.text())?.[1] ?? "";
  const login = await fetch(`${base}/admin/login`, {
    method: "POST",
    headers: { cookie: formCookie },
    body: new URLSearchParams({ key: ADMIN_KEY, csrf }),
    redirect: "manual",
  });
  const cookie = login.headers.getSetCookie()[0]?.split(";")[0] ?? "";
  if (login.status !== 303) throw new Error(`signing in answered ${login.status}`);
  const timedGet = async (path: string) => {
    const started = performance.now();
    const response = await fetch(`${base}${path}`, { headers: { cookie } });
    const body = await response.text();
    if (response.status !== 200) throw new Error(`GET ${path} answered ${response.status}`);
    return { ms: performance.now() - started, body };
  };
  const overview = () => timedGet("/admin");
  // The process's first request pays for its own start (database connections, the query
  // compiler): a connections page first, so that the overview's first view is its own.
  const warming = performance.now();
  await fetch(`${base}/admin/connections`, { headers: { cookie } }).then((r) => r.text());
  console.log(
    `first request after start (GET /admin/connections): ${(performance.now() - warming).toFixed(0)} ms`,
  );
  const first = await overview();
  console.log(`first overview: ${first.ms.toFixed(0)} ms (its counts not taken yet)`);
  let counted = first.body;
  while (counted.includes("Counting connections")) {
    await delay(500);
    counted = (await overview()).body;
  }
  const times: number[] = [];
  let countMs = "";
  for (let run = 0; run < RUNS; run += 1) {
    const { ms, body } = await overview();
    times.push(ms);
    countMs = /taken in (\d+) ms/.exec(body)?.[1] ?? countMs;
    await delay(PAUSE_MS);
  }
  times.sort((a, b) => a - b);
  const at = (p: number) => percentile(times, p).toFixed(1);
  console.log(
    `GET /admin over ${RUNS} runs: min ${at(0)} ms, median ${at(50)} ms, p95 ${at(95)} ms, max ${at(100)} ms`,
  );
  console.log(`background count of the fleet (last taken): ${countMs} ms`);

  // The other pages, for scale: the median of 5 views each.
  const someone = /href="\/admin\/connections\/([0-9a-f-]{36})"/.exec(
    (await timedGet("/admin/connections")).body,
  )?.[1];
  for (const path of [
    "/admin/connections",
    "/admin/connections?status=error",
    "/admin/connections?integration=integration-3",
    "/admin/connections?integration=integration-3&externalId=user-500002",
    "/admin/connections?externalId=user-500002",
    `/admin/connections/${someone}`,
    "/admin/integrations/integration-3",
  ]) {
    const views: number[] = [];
    for (let run = 0; run < 5; run += 1) views.push((await timedGet(path)).ms);
    views.sort((a, b) => a - b);
    console.log(`GET ${path}: median ${percentile(views, 50).toFixed(1)} ms`);
  }
} finally {
  await api.stop();
  await db.drop();
}
