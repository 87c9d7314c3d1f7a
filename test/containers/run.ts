// `npm run test:containers`: the real image from the real Dockerfile, the compose file's
// whole stack with the monitoring profile and three workers, in real containers (podman).
// Too slow and heavy for `npm test` and CI; run it by hand after touching the Dockerfile,
// docker-compose.yml or ops/. Needs root and Debian's apt (it installs what is missing).
//
// Compose tool: docker-compose v1 (Debian's `docker-compose`) against `podman system
// service`'s Docker API socket. podman-compose 1.0.3 cannot run this file: it has no
// profiles, ignores `--scale` and ignores `depends_on` conditions.
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { generateEncryptionKey } from "@evergreen/crypto";
import { type MockProvider, startMockProvider } from "@evergreen/providers/testing";
import { parse } from "yaml";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const PROJECT = "evergreen-containers-test";
const WORKERS = 3;
const CONNECTIONS = 150;
const INTEGRATION = "containers-test";
/** Tokens live 55 s with a 50 s buffer: each connection refreshes every 30 s, the floor. */
const TOKEN_TTL_SECONDS = 55;
/** How slowly the provider answers while a worker is stopped: well inside REFRESH_TIMEOUT_MS. */
const SLOW_ANSWER_MS = 4_000;
/** Host ports away from the PostgreSQL, Redis and apps this machine may already run. */
const PORTS = {
  POSTGRES_PORT: "25432",
  REDIS_PORT: "26379",
  API_PORT: "23000",
  PROMETHEUS_PORT: "29090",
  ALERTMANAGER_PORT: "29093",
};
const API = `http://127.0.0.1:${PORTS.API_PORT}`;
const PROMETHEUS = `http://127.0.0.1:${PORTS.PROMETHEUS_PORT}`;
/** Grafana has no Debian package and no registry is reachable: no image to run here. */
const NOT_STARTED = new Set(["grafana"]);

const API_KEY = `containers-test-${crypto.randomUUID()}`;
const aborted = new AbortController();
const started = Date.now();

function say(message: string): void {
  const at = ((Date.now() - started) / 1000).toFixed(1).padStart(6);
  console.log(`[${at}s] ${message}`);
}

interface RunOptions {
  env?: NodeJS.ProcessEnv;
  /** Resolve with the output even when the command fails. */
  allowFailure?: boolean;
}

/** Runs a command to completion; its output is returned, and shown only when it fails. */
function run(command: string, args: string[], options: RunOptions = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: ROOT, env: options.env ?? env });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.stderr.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.on("error", reject);
    child.on("close", (code) => {
      if (code === 0 || options.allowFailure) resolve(output.trim());
      else
        reject(new Error(`${command} ${args.join(" ")} exited ${code}:\n${output.slice(-4000)}`));
    });
  });
}

/** Polls `check` until it returns a value, or fails after `timeoutMs` naming `what`. */
async function until<T>(
  what: string,
  timeoutMs: number,
  check: () => Promise<T | undefined>,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    aborted.signal.throwIfAborted();
    const value = await check().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${what}`);
    await sleep(500);
  }
}

function check(condition: boolean, message: string): void {
  if (!condition) throw new Error(`FAILED: ${message}`);
  say(`ok: ${message}`);
}

const work = await mkdtemp(join(tmpdir(), "evergreen-containers-"));
const socket = join(work, "podman.sock");
const env: NodeJS.ProcessEnv = {
  ...process.env,
  CONTAINERS_CONF: join(ROOT, "test/containers/containers.conf"),
  DOCKER_HOST: `unix://${socket}`,
  COMPOSE_PROJECT_NAME: PROJECT,
  ...PORTS,
};
// Secrets only for the full stack: `up -d postgres redis` must work without any.
delete env.ENCRYPTION_KEYS;
delete env.API_KEYS;
const compose = (args: string[], extra: NodeJS.ProcessEnv = {}) =>
  run("docker-compose", ["--profile", "monitoring", ...args], { env: { ...env, ...extra } });
const podman = (...args: string[]) => run("podman", args);

async function installMissingTools(): Promise<void> {
  // netavark and aardvark-dns are only recommended by podman, so --no-install-recommends
  // leaves them out: podman then falls back to CNI, whose networks give containers no DNS
  // (migrate failed with "getaddrinfo ENOTFOUND postgres" on a fresh machine). netavark
  // sets up each network's NAT with iptables, which Debian does not make it depend on: on a
  // machine without it every container failed with "netavark: No such file or directory".
  const packages = [
    "podman",
    "netavark",
    "aardvark-dns",
    "iptables",
    "debootstrap",
    "docker-compose",
    "runc",
  ];
  const missing: string[] = [];
  for (const pkg of packages) {
    // dpkg-query's own field syntax, not a template placeholder.
    const status = await run("dpkg-query", ["-W", `--showformat=${"$"}{Status}`, pkg], {
      allowFailure: true,
    });
    if (!status.includes("install ok installed")) missing.push(pkg);
  }
  if (missing.length === 0) return;
  say(`installing Debian packages: ${missing.join(" ")}`);
  await run("apt-get", ["install", "-y", "--no-install-recommends", ...missing], {
    env: { ...env, DEBIAN_FRONTEND: "noninteractive" },
  });
}

interface ComposeFile {
  services: Record<string, { image?: string }>;
}

async function checkImages(): Promise<string[]> {
  const file = parse(await readFile(join(ROOT, "docker-compose.yml"), "utf8"), {
    merge: true,
  }) as ComposeFile;
  const services = Object.keys(file.services).filter((name) => !NOT_STARTED.has(name));
  const images = new Set(services.map((name) => file.services[name]?.image ?? ""));
  for (const image of images) {
    const description = await run(
      "podman",
      [
        "image",
        "inspect",
        "--format",
        '{{index .Labels "org.opencontainers.image.description"}}',
        image,
      ],
      { allowFailure: true },
    );
    if (description.startsWith("Error")) throw new Error(`image ${image} is missing`);
    // evergreen:local inherits its base image's label.
    const kind =
      image === "evergreen:local"
        ? "built above"
        : description.startsWith("local-stand-in")
          ? "local stand-in"
          : "real";
    say(`  image ${image}: ${kind}`);
  }
  return services;
}

/**
 * podman runs healthchecks from systemd timers. Without systemd (this sandbox) they never
 * run, every container stays "starting" and `depends_on: service_healthy` waits for ever;
 * this loop does the timers' job: the compose file's own checks, run inside the containers.
 */
async function runHealthchecks(): Promise<void> {
  while (!aborted.signal.aborted) {
    const ids = await run(
      "podman",
      ["ps", "-q", "--filter", `label=com.docker.compose.project=${PROJECT}`],
      {
        allowFailure: true,
      },
    );
    await Promise.all(
      ids
        .split("\n")
        .filter(Boolean)
        .map((id) => run("podman", ["healthcheck", "run", id], { allowFailure: true })),
    );
    await sleep(2_000).catch(() => undefined);
  }
}

async function startPodmanService(): Promise<ChildProcess> {
  const service = spawn("podman", ["system", "service", "--time=0", `unix://${socket}`], {
    env,
    stdio: "ignore",
  });
  await until("podman system service socket", 15_000, async () => existsSync(socket) || undefined);
  return service;
}

async function containerIp(name: string): Promise<string> {
  return podman(
    "inspect",
    "--format",
    "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
    name,
  );
}

interface ConnectionView {
  id: string;
  externalId: string;
  status: string;
  refreshCount: number;
}

async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const response = await fetch(`${API}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${API_KEY}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return (text ? JSON.parse(text) : undefined) as T;
}

async function listConnections(): Promise<ConnectionView[]> {
  const page = await api<{ data: ConnectionView[] }>(
    "GET",
    `/v1/connections?integration=${INTEGRATION}&limit=200`,
  );
  return page.data;
}

interface PromSample {
  metric: Record<string, string>;
  value: [number, string];
}

async function promQuery(query: string): Promise<PromSample[]> {
  const response = await fetch(`${PROMETHEUS}/api/v1/query?query=${encodeURIComponent(query)}`);
  const body = (await response.json()) as { status: string; data: { result: PromSample[] } };
  if (body.status !== "success") throw new Error(`query failed: ${query}`);
  return body.data.result;
}

/**
 * Asks the live Prometheus what one panel of the Grafana dashboard would show (Grafana itself
 * cannot run here), with Grafana's interval variables as a fixed 1m.
 */
async function showDashboardPanel(title: string): Promise<void> {
  const dashboard = JSON.parse(
    await readFile(join(ROOT, "ops/grafana/dashboards/evergreen.json"), "utf8"),
  ) as { panels: { title: string; targets?: { expr: string }[] }[] };
  const expr = dashboard.panels.find((panel) => panel.title === title)?.targets?.[0]?.expr;
  if (!expr) throw new Error(`no dashboard panel "${title}"`);
  const query = expr.replaceAll("$__rate_interval", "1m").replaceAll("$__interval", "1m");
  say(`dashboard panel "${title}": ${query}`);
  // A rate needs two scrapes (15 s apart) of a series, and refresh series start at the
  // first refresh, moments ago.
  const samples = await until(`an answer to the dashboard's "${title}" query`, 60_000, async () => {
    const answer = await promQuery(query);
    return answer.length > 0 ? answer : undefined;
  });
  for (const sample of samples) say(`    ${JSON.stringify(sample.metric)} ${sample.value[1]}`);
  check(samples.length > 0, `the live Prometheus answers the dashboard's "${title}" query`);
}

interface Target {
  labels: Record<string, string>;
  health: string;
}

async function activeTargets(): Promise<Target[]> {
  const response = await fetch(`${PROMETHEUS}/api/v1/targets?state=active`);
  return ((await response.json()) as { data: { activeTargets: Target[] } }).data.activeTargets;
}

async function main(): Promise<void> {
  say("test:containers: podman, docker-compose v1 on podman's Docker API socket");
  await installMissingTools();

  say("stand-in images (built once per machine; see test/containers/stand-in-images.sh)");
  await run(join(ROOT, "test/containers/stand-in-images.sh"), []);

  const version = await run("git", ["describe", "--always", "--dirty"]);
  say(`building evergreen:local from ./Dockerfile (EVERGREEN_VERSION=${version})`);
  const buildStart = Date.now();
  const previous = await run(
    "podman",
    ["image", "inspect", "--format", "{{.Id}}", "evergreen:local"],
    {
      allowFailure: true,
    },
  );
  await run("podman", [
    "build",
    // No layer cache: any source change re-runs npm install anyway, and without it no
    // 1.2 GB build-stage image is left behind by each run.
    "--layers=false",
    "--isolation=chroot",
    "--pull=never",
    "--network=host",
    // npm reaches the registry through this machine's TLS-intercepting proxy.
    "-v",
    "/etc/ssl/certs:/etc/ssl/certs:ro",
    "--build-arg",
    "NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt",
    "--build-arg",
    `EVERGREEN_VERSION=${version}`,
    "-t",
    "evergreen:local",
    ".",
  ]);
  // The image this build replaced is left untagged: remove it, not anything else.
  await run("podman", ["rmi", previous], { allowFailure: true });
  const size = Number(await podman("image", "inspect", "--format", "{{.Size}}", "evergreen:local"));
  say(
    `built in ${((Date.now() - buildStart) / 1000).toFixed(0)} s; image size ${(size / 1e6).toFixed(0)} MB`,
  );
  const contents = await podman(
    "run",
    "--rm",
    "evergreen:local",
    "sh",
    "-c",
    "id -un; ls /app /app/dist; test ! -e /app/node_modules && echo no node_modules",
  );
  say(`image contents:\n${contents.replace(/^/gm, "    ")}`);

  say("images the compose file names:");
  const services = await checkImages();
  say(
    `services started here: ${services.join(", ")}; not started: ${[...NOT_STARTED].join(", ")} (no image: Grafana is not packaged for Debian and no registry is reachable; its dashboard is checked against this Prometheus by another test)`,
  );

  const podmanService = await startPodmanService();
  if (!existsSync("/run/systemd/system")) {
    say("no systemd here: this script runs the containers' healthchecks every 2 s");
    void runHealthchecks();
  }
  let mock: MockProvider | undefined;
  try {
    say("docker compose up -d postgres redis, with no secret set");
    await compose(["up", "-d", "postgres", "redis"]);
    say("ok: postgres and redis started without ENCRYPTION_KEYS or API_KEYS");

    // The provider runs on the host, on the compose network's gateway: reachable from the
    // project's containers only. Production egress policy refuses private addresses and
    // http:// unless told otherwise, as an operator with an internal IdP would.
    const gateway = await podman(
      "network",
      "inspect",
      "--format",
      "{{range .Subnets}}{{.Gateway}}{{end}}",
      `${PROJECT}_default`,
    );
    mock = await startMockProvider({ host: gateway, keepReceived: 10_000 });
    say(`mock provider at ${mock.tokenUrl} (rotating refresh tokens)`);

    const upCommand = ["up", "-d", "--scale", `worker=${WORKERS}`, ...services];
    say(`docker-compose --profile monitoring ${upCommand.join(" ")}`);
    // Polled from before `up`, so the first 200 is seen within 500 ms of the api being ready.
    const readiness = until("api /readyz", 300_000, async () => {
      const response = await fetch(`${API}/readyz`, { signal: AbortSignal.timeout(1_000) });
      return response.ok ? Date.now() : undefined;
    });
    // Awaited below; if `up` fails first, the teardown's abort ends it unobserved.
    readiness.catch(() => undefined);
    await compose(upCommand, {
      ENCRYPTION_KEYS: generateEncryptionKey("containers"),
      API_KEYS: API_KEY,
      EGRESS_ALLOWLIST: gateway,
      ALLOW_INSECURE_TOKEN_URLS: "true",
      EVERGREEN_VERSION: version,
    }).catch(async (error: Error) => {
      // compose names only the container that exited; what it printed says why.
      const logs = await compose(["logs", "--no-color", "--tail", "40", "migrate", "api"]).catch(
        (logsError: Error) => logsError.message,
      );
      throw new Error(`${error.message}\n${logs}`);
    });
    const readyAt = await readiness;
    const apiStartedAt =
      Number(
        await podman("inspect", "--format", "{{.State.StartedAt.UnixNano}}", `${PROJECT}_api_1`),
      ) / 1e6;
    say(
      `cold start: api container started -> /readyz 200 in ${Math.round(readyAt - apiStartedAt)} ms (polled every 0.5 s)`,
    );
    say(
      `containers:\n${(await podman("ps", "--filter", `label=com.docker.compose.project=${PROJECT}`, "--format", "{{.Names}}\t{{.Status}}")).replace(/^/gm, "    ")}`,
    );

    const workers = Array.from({ length: WORKERS }, (_, i) => `${PROJECT}_worker_${i + 1}`);
    const workerByIp = new Map<string, string>();
    for (const name of workers) workerByIp.set(await containerIp(name), name);

    say(`registering integration "${INTEGRATION}" and ${CONNECTIONS} connections through the api`);
    await api("POST", "/v1/integrations", {
      key: INTEGRATION,
      provider: "oauth2",
      clientId: mock.clientId,
      clientSecret: mock.clientSecret,
      tokenUrl: mock.tokenUrl,
      refreshBufferSeconds: 50,
    });
    const grantByConnection = new Map<string, string>();
    for (let i = 0; i < CONNECTIONS; i += 10) {
      await Promise.all(
        Array.from({ length: Math.min(10, CONNECTIONS - i) }, async (_, j) => {
          const grant = (mock as MockProvider).issueGrant({
            rotate: true,
            accessTokenTtlSeconds: TOKEN_TTL_SECONDS,
          });
          const connection = await api<ConnectionView>("POST", "/v1/connections", {
            integration: INTEGRATION,
            externalId: `user-${i + j}`,
            accessToken: grant.accessToken,
            refreshToken: grant.refreshToken,
            expiresIn: TOKEN_TTL_SECONDS,
          });
          grantByConnection.set(connection.id, grant.grantId);
        }),
      );
    }

    say("waiting for the first refresh of every connection (due 30 s after registration)");
    await until("every connection refreshed once", 120_000, async () => {
      const all = await listConnections();
      return all.length === CONNECTIONS && all.every((c) => c.refreshCount >= 1) ? true : undefined;
    });
    const byWorker = new Map<string, number>();
    for (const request of mock.received) {
      const name = workerByIp.get(request.remoteAddress?.replace(/^::ffff:/, "") ?? "") ?? "other";
      byWorker.set(name, (byWorker.get(name) ?? 0) + 1);
    }
    say(
      `token requests the provider received, by container: ${JSON.stringify(Object.fromEntries(byWorker))}`,
    );

    say(`Prometheus: sum by (instance) (evergreen_refresh_total{job="evergreen-worker"})`);
    const spread = await until("every worker's refreshes scraped", 90_000, async () => {
      const samples = await promQuery(
        'sum by (instance) (evergreen_refresh_total{job="evergreen-worker"})',
      );
      const total = samples.reduce((sum, s) => sum + Number(s.value[1]), 0);
      return samples.length === WORKERS && total >= CONNECTIONS ? samples : undefined;
    });
    for (const sample of spread) {
      const ip = sample.metric.instance?.split(":")[0] ?? "";
      say(`    ${sample.metric.instance} (${workerByIp.get(ip) ?? "?"}): ${sample.value[1]}`);
    }
    check(
      spread.every((s) => Number(s.value[1]) > 0),
      `refreshes spread over all ${WORKERS} workers`,
    );

    say("Prometheus /api/v1/targets:");
    const targets = await until("every replica's target up", 60_000, async () => {
      const active = (await activeTargets()).filter((t) => t.labels.job?.startsWith("evergreen-"));
      const up = (job: string) =>
        active.filter((t) => t.labels.job === job && t.health === "up").length;
      return up("evergreen-api") === 1 &&
        up("evergreen-worker") === WORKERS &&
        up("evergreen-scheduler") === 1
        ? active
        : undefined;
    });
    for (const target of targets)
      say(`    ${target.labels.job}\t${target.labels.instance}\t${target.health}`);
    check(targets.length === WORKERS + 2, `all ${WORKERS + 2} app replicas listed and up`);
    await showDashboardPanel("Refresh rate by provider and outcome");
    const alertmanagers = (await (await fetch(`${PROMETHEUS}/api/v1/alertmanagers`)).json()) as {
      data: { activeAlertmanagers: { url: string }[] };
    };
    say(
      `Prometheus sends alerts to: ${alertmanagers.data.activeAlertmanagers.map((a) => a.url).join(", ")}`,
    );
    const rules = (await (await fetch(`${PROMETHEUS}/api/v1/rules`)).json()) as {
      data: { groups: { name: string; rules: unknown[] }[] };
    };
    say(
      `rule groups loaded from ops/prometheus/alerts.yml: ${rules.data.groups.map((g) => `${g.name} (${g.rules.length})`).join(", ") || "none (file absent in this tree)"}`,
    );

    say("per-worker memory:");
    for (const sample of await promQuery('process_resident_memory_bytes{job="evergreen-worker"}')) {
      const ip = sample.metric.instance?.split(":")[0] ?? "";
      say(
        `    ${workerByIp.get(ip) ?? sample.metric.instance}: RSS ${(Number(sample.value[1]) / 1e6).toFixed(0)} MB (process_resident_memory_bytes)`,
      );
    }
    const stats = await podman(
      "stats",
      "--no-stream",
      "--format",
      "{{.Name}}\t{{.MemUsage}}\t{{.CPUPerc}}",
      ...workers,
    );
    say(`podman stats:\n${stats.replace(/^/gm, "    ")}`);

    const victim = workers[1] ?? "";
    const victimIp = [...workerByIp].find(([, name]) => name === victim)?.[0] ?? "";
    mock.latencyMs = SLOW_ANSWER_MS;
    say(
      `provider now answers in ${SLOW_ANSWER_MS} ms; waiting for ${victim} to have refreshes in flight`,
    );
    // Requests from the victim that came in less than SLOW_ANSWER_MS ago: not answered yet.
    const pendingOnVictim = () => {
      const since = Date.now() - SLOW_ANSWER_MS + 200;
      return (mock as MockProvider).received.filter(
        (r) => r.remoteAddress?.replace(/^::ffff:/, "") === victimIp && r.at.getTime() > since,
      ).length;
    };
    await until(`refreshes in flight on ${victim}`, 90_000, async () =>
      pendingOnVictim() >= 20 ? true : undefined,
    );
    const inFlight = pendingOnVictim();
    const stopTimeout = await podman("inspect", "--format", "{{.Config.StopTimeout}}", victim);
    say(
      `podman stop ${victim} (stop timeout ${stopTimeout} s, from stop_grace_period) with ${inFlight} of its refreshes waiting on the provider`,
    );
    const stopStart = Date.now();
    await podman("stop", victim);
    const stopMs = Date.now() - stopStart;
    mock.latencyMs = 0;
    const exitCode = await podman("inspect", "--format", "{{.State.ExitCode}}", victim);
    const logs = (await podman("logs", victim)).split("\n");
    const sigterm = logs.findIndex((line) => line.includes('"msg":"shutting down"'));
    const drained = logs
      .slice(sigterm)
      .filter((line) => line.includes('"msg":"refresh recorded"')).length;
    say(
      `${victim} stopped in ${stopMs} ms, exit code ${exitCode}; after SIGTERM it recorded ${drained} refreshes; last line: ${logs.filter(Boolean).at(-1)}`,
    );
    check(sigterm >= 0 && exitCode === "0", `${victim} drained on SIGTERM and exited 0`);
    check(drained >= inFlight, `${victim} stored the ${inFlight} answers it had in flight`);

    const refreshesAtStop = new Map(mock.refreshesByGrant);
    say("waiting until every connection has been refreshed again by the remaining workers");
    const settled = await until(
      "every answer stored and every connection refreshed after the stop",
      120_000,
      async () => {
        const all = await listConnections();
        const done = all.every((c) => {
          const grant = grantByConnection.get(c.id) ?? "";
          const issued = (mock as MockProvider).refreshesByGrant.get(grant) ?? 0;
          return issued > (refreshesAtStop.get(grant) ?? 0) && c.refreshCount === issued;
        });
        return done ? all : undefined;
      },
    );
    const issued = [...mock.refreshesByGrant.values()].reduce((a, b) => a + b, 0);
    const stored = settled.reduce((sum, c) => sum + c.refreshCount, 0);
    const statuses: Record<string, number> = {};
    for (const { status } of settled) statuses[status] = (statuses[status] ?? 0) + 1;
    say(
      `provider answers issued: ${issued}; refreshes stored: ${stored}; statuses: ${JSON.stringify(statuses)}`,
    );
    check(issued === stored, "every answer the provider issued was stored");
    check(mock.reuseCount === 0, "no rotated refresh token was ever presented again (reuse 0)");
    check(
      settled.every((c) => c.status === "active"),
      "every connection is active",
    );
    let matching = 0;
    for (const connection of settled) {
      const token = await api<{ accessToken: string }>(
        "GET",
        `/v1/connections/${connection.id}/token?minValidity=1`,
      );
      const grant = mock.grant(grantByConnection.get(connection.id) ?? "");
      if (grant && !grant.revoked && token.accessToken === grant.accessToken) matching += 1;
    }
    check(
      matching === CONNECTIONS,
      `the api serves each grant's latest access token (${matching}/${CONNECTIONS})`,
    );
    say("PASSED");
  } finally {
    say("tearing down: docker-compose down -v");
    aborted.abort();
    await compose(["down", "-v", "--remove-orphans", "--timeout", "60"]).catch((error: Error) =>
      say(error.message),
    );
    await mock?.close();
    podmanService.kill("SIGTERM");
    await rm(work, { recursive: true, force: true });
  }
}

process.once("SIGINT", () => aborted.abort(new Error("interrupted")));
try {
  await main();
} catch (error) {
  console.error((error as Error).message);
  process.exitCode = 1;
}
