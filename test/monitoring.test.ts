import { execFile } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { generateEncryptionKey } from "@evergreen/crypto";
import { createTestDatabase, type TestDatabase } from "@evergreen/db/testing";
import { createRedis } from "@evergreen/redis";
import { redisDatabaseUrl } from "@evergreen/refresh/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import {
  type AppName,
  type AppProcess,
  listeningPort,
  startApp,
  startCommand,
} from "./support/app-process";

// The dashboard and the alert rules against the real things: promtool for the rules and
// their unit tests, and Debian's Prometheus scraping the real api, scheduler and worker
// for every metric name and expression. Grafana is not packaged here, so its queries are
// put to Prometheus with Grafana's variables substituted.
const ROOT = fileURLToPath(new URL("..", import.meta.url));
const RULES = join(ROOT, "ops/prometheus/alerts.yml");
const RULE_TESTS = join(ROOT, "ops/prometheus/alerts.test.yml");
const DASHBOARD = join(ROOT, "ops/grafana/dashboards/evergreen.json");
const RUNBOOK = join(ROOT, "docs/operations.md");
// The apps use the production queue prefix: this file owns Redis database 13.
const REDIS_URL = redisDatabaseUrl(13);
// biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's variable syntax, not JavaScript's
const DATASOURCE = "${datasource}";
/** Job names of ops/prometheus/prometheus.yml, which the rules and the dashboard select on. */
const JOBS: Record<AppName, string> = {
  api: "evergreen-api",
  scheduler: "evergreen-scheduler",
  worker: "evergreen-worker",
};

interface AlertRule {
  alert: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface RuleFile {
  groups: { name: string; rules: AlertRule[] }[];
}
interface Panel {
  title: string;
  type: string;
  datasource?: { type: string; uid: string };
  targets?: { expr: string; datasource?: { uid: string } }[];
}
interface Dashboard {
  uid: string;
  schemaVersion: number;
  templating: { list: { name: string; type: string; query: string }[] };
  panels: Panel[];
}

const rules = parse(await readFile(RULES, "utf8")) as RuleFile;
const alerts = rules.groups.flatMap((group) => group.rules);
const dashboard = JSON.parse(await readFile(DASHBOARD, "utf8")) as Dashboard;
const queryPanels = dashboard.panels.filter((panel) => panel.type !== "row");

/** Grafana's variables, as Grafana would put them for a 1 s scrape interval. */
function grafanaQuery(expr: string): string {
  return expr
    .replaceAll("$__rate_interval", "1m")
    .replaceAll("$__interval", "15s")
    .replaceAll("$__range", "1h");
}

const panelQueries = queryPanels.flatMap((panel) =>
  (panel.targets ?? []).map((target) => ({
    source: `panel "${panel.title}"`,
    expr: grafanaQuery(target.expr),
  })),
);
const expressions = [
  ...alerts.map((rule) => ({ source: `alert ${rule.alert}`, expr: rule.expr })),
  ...panelQueries,
];

const NOT_METRICS = new Set(["and", "or", "unless", "bool", "offset", "inf", "nan"]);

/**
 * Metric names a PromQL expression selects: identifiers left once strings, label matchers,
 * ranges, grouping label lists and offsets are removed, that are neither a function (an
 * identifier before "(") nor a keyword nor part of a number.
 */
function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\{[^}]*\}/g, " ")
    .replace(/\[[^\]]*\]/g, " ")
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/gi, " ")
    .replace(/\b(?:group_left|group_right)\b/gi, " ")
    .replace(/\boffset\s+-?[\dsmhdwy]+/gi, " ");
  const names = new Set<string>();
  for (const match of bare.matchAll(/(?<![\w.:])[a-zA-Z_:][\w:]*(?![\w:]|\s*\()/g)) {
    if (!NOT_METRICS.has(match[0].toLowerCase())) names.add(match[0]);
  }
  return [...names];
}

/** Values a `job` matcher in `expr` names: `job="a"` or the alternatives of `job=~"a|b"`. */
function jobsNamed(expr: string): string[] {
  return [...expr.matchAll(/\bjob\s*(=~|=)\s*"([^"]*)"/g)].flatMap(([, op, value = ""]) =>
    op === "=~" ? value.split("|") : [value],
  );
}

/** GitHub's anchor for a Markdown heading. */
function anchor(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, "")
    .replace(/\s/g, "-");
}

const MISSING_PROMETHEUS = "install Debian's prometheus package (apt-get install -y prometheus)";

/** Runs a tool of Debian's prometheus package; resolves with its exit code and output. */
function prometheusTool(
  command: "promtool" | "prometheus",
  ...args: string[]
): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { cwd: ROOT }, (error, stdout, stderr) => {
      if (error && (error as NodeJS.ErrnoException).code === "ENOENT") {
        reject(new Error(`${command} not found: ${MISSING_PROMETHEUS}`));
        return;
      }
      resolve({ code: typeof error?.code === "number" ? error.code : 0, output: stdout + stderr });
    });
  });
}

describe("metricNames", () => {
  it("reads metric names, not functions, labels, keywords, ranges or numbers", () => {
    expect(
      metricNames(
        'histogram_quantile(0.99, sum by (provider, le) (rate(evergreen_refresh_duration_seconds_bucket{job=~"a|b"}[5m] offset 1h)))',
      ),
    ).toEqual(["evergreen_refresh_duration_seconds_bucket"]);
    expect(
      metricNames(
        'max(a_gauge) == 0 or absent(up{job="w"} == 1) and on (x) group_left (y) b_total > bool 1e3 unless sum(c) without (d)',
      ),
    ).toEqual(["a_gauge", "up", "b_total", "c"]);
    expect(
      metricNames(
        'time() - max(x_seconds) > 180 or vector(0) * label_replace(y, "a", "$1", "b", "(.*)")',
      ),
    ).toEqual(["x_seconds", "y"]);
  });
});

describe("alert rules", () => {
  it("pass promtool check rules", async () => {
    const { code, output } = await prometheusTool("promtool", "check", "rules", RULES);
    expect(code, output).toBe(0);
  });

  it("pass their promtool unit tests", async () => {
    const { code, output } = await prometheusTool("promtool", "test", "rules", RULE_TESTS);
    expect(code, output).toBe(0);
  });

  it("each fire in some unit test", async () => {
    const tests = parse(await readFile(RULE_TESTS, "utf8")) as {
      tests: { alert_rule_test?: { alertname: string; exp_alerts: unknown[] }[] }[];
    };
    const fired = new Set(
      tests.tests.flatMap((test) =>
        (test.alert_rule_test ?? [])
          .filter((check) => check.exp_alerts.length > 0)
          .map((check) => check.alertname),
      ),
    );
    expect(alerts.map((rule) => rule.alert).filter((name) => !fired.has(name))).toEqual([]);
  });

  it.each(alerts.map((rule) => [rule.alert, rule] as const))(
    "%s waits, has a severity, says what and links its runbook section",
    async (_name, rule) => {
      expect(rule.for).toMatch(/^\d+[smh]$/);
      expect(["critical", "warning"]).toContain(rule.labels?.severity);
      expect(rule.annotations?.summary).toBeTruthy();
      expect(rule.annotations?.description).toBeTruthy();
      const runbook = await readFile(RUNBOOK, "utf8");
      const anchors = [...runbook.matchAll(/^#{1,6} (.+)$/gm)].map(([, text = ""]) => anchor(text));
      const [path, section = ""] = rule.annotations?.runbook_url?.split("#") ?? [];
      expect(path).toBe("docs/operations.md");
      expect(anchors).toContain(section);
    },
  );
});

describe("dashboard", () => {
  it("is provisionable: uid, schema version, a Prometheus datasource variable used by every query", () => {
    expect(dashboard.uid).toBe("evergreen");
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(39);
    expect(dashboard.templating.list).toContainEqual(
      expect.objectContaining({ name: "datasource", type: "datasource", query: "prometheus" }),
    );
    for (const panel of queryPanels) {
      expect(panel.datasource, panel.title).toEqual({ type: "prometheus", uid: DATASOURCE });
      expect(panel.targets?.length, panel.title).toBeGreaterThan(0);
      for (const target of panel.targets ?? []) {
        expect(target.datasource?.uid, panel.title).toBe(DATASOURCE);
        expect(grafanaQuery(target.expr), panel.title).not.toContain("$");
      }
    }
  });
});

async function freePort(): Promise<number> {
  const server = createServer().listen(0, "127.0.0.1");
  await once(server, "listening");
  const address = server.address();
  server.close();
  if (address === null || typeof address === "string") throw new Error("not on TCP");
  return address.port;
}

/** Polls `probe` every 200 ms until it returns a value, or fails after `timeoutMs`. */
async function until<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

describe("against a live Prometheus scraping the real apps", () => {
  let db: TestDatabase;
  let dir: string;
  let prometheusUrl: string;
  const processes: AppProcess[] = [];

  async function api<T>(path: string, body?: URLSearchParams): Promise<T> {
    const response = await fetch(`${prometheusUrl}${path}`, body ? { method: "POST", body } : {});
    return (await response.json()) as T;
  }

  beforeAll(async () => {
    const redis = createRedis(REDIS_URL, "producer");
    await redis.flushdb();
    redis.disconnect();
    [db, dir] = await Promise.all([
      createTestDatabase(),
      mkdtemp(join(tmpdir(), "evergreen-prometheus-")),
    ]);
    const env = {
      NODE_ENV: "test",
      DATABASE_URL: db.url,
      REDIS_URL,
      ENCRYPTION_KEYS: generateEncryptionKey("test"),
      API_KEYS: "monitoring-test-key-0123456789",
      PORT: "0",
      METRICS_PORT: "0",
    };
    const apps = (Object.keys(JOBS) as AppName[]).map((name) => {
      const app = startApp(name, env);
      processes.push(app);
      return [name, app] as const;
    });
    const scrapeConfigs = await Promise.all(
      apps.map(async ([name, app]) => ({
        job_name: JOBS[name],
        static_configs: [{ targets: [`127.0.0.1:${await listeningPort(app)}`] }],
      })),
    );
    const config = join(dir, "prometheus.yml");
    // JSON is YAML: Prometheus reads it as its own format.
    await writeFile(
      config,
      JSON.stringify({
        global: { scrape_interval: "1s", scrape_timeout: "1s", evaluation_interval: "1s" },
        rule_files: [RULES],
        scrape_configs: scrapeConfigs,
      }),
    );
    await prometheusTool("prometheus", "--version");
    const port = await freePort();
    prometheusUrl = `http://127.0.0.1:${port}`;
    const prometheus = startCommand(
      [
        "prometheus",
        `--config.file=${config}`,
        `--storage.tsdb.path=${join(dir, "data")}`,
        `--web.listen-address=127.0.0.1:${port}`,
      ],
      {},
    );
    processes.push(prometheus);
    const targetsUp = until("every target up", async () => {
      const { data } = await api<{ data: { activeTargets: { health: string }[] } }>(
        "/api/v1/targets?state=active",
      );
      const up = data.activeTargets.filter((target) => target.health === "up");
      return up.length === apps.length ? up : undefined;
    });
    const died = prometheus.exited.then((code) => {
      throw new Error(`prometheus exited (${code}):\n${prometheus.stderr()}`);
    });
    died.catch(() => undefined);
    await Promise.race([targetsUp, died]);
  });

  afterAll(async () => {
    await Promise.all(
      processes.splice(0).map((started) => {
        started.child.kill("SIGTERM");
        return started.exited;
      }),
    );
    const redis = createRedis(REDIS_URL, "producer");
    await redis.flushdb();
    redis.disconnect();
    await Promise.all([db?.drop(), dir && rm(dir, { recursive: true, force: true })]);
  });

  it("finds every metric the rules and the dashboard name on the scrape of some app", async () => {
    const { data } = await api<{ data: { metric: string; type: string }[] }>(
      "/api/v1/targets/metadata",
    );
    const types = new Map(data.map((entry) => [entry.metric, entry.type]));
    const scraped = (name: string) => {
      if (types.has(name)) return true;
      // Histograms are described once, under their base name.
      const base = /^(.+)_(bucket|sum|count)$/.exec(name)?.[1];
      return base !== undefined && ["histogram", "summary"].includes(types.get(base) ?? "");
    };
    const missing = expressions.flatMap(({ source, expr }) =>
      metricNames(expr)
        // `up` is Prometheus's own, per target: its job names must be ones it scrapes.
        .filter((name) => name !== "up" && !scraped(name))
        .map((name) => `${name} (${source})`),
    );
    expect([...new Set(missing)]).toEqual([]);
    const jobs = expressions.flatMap(({ expr }) => jobsNamed(expr));
    expect(jobs.filter((job) => !Object.values(JOBS).includes(job))).toEqual([]);
  });

  it("answers every dashboard query", async () => {
    const failures: string[] = [];
    for (const { source, expr } of panelQueries) {
      const answer = await api<{ status: string; error?: string }>(
        "/api/v1/query",
        new URLSearchParams({ query: expr }),
      );
      if (answer.status !== "success") failures.push(`${source}: ${answer.error} in ${expr}`);
    }
    expect(failures).toEqual([]);
  });

  it("loads and evaluates every rule group without error", async () => {
    type Rules = {
      data: {
        groups: { name: string; rules: { name: string; health: string; lastError?: string }[] }[];
      };
    };
    const groups = await until("every rule evaluated", async () => {
      const { data } = await api<Rules>("/api/v1/rules");
      const evaluated = data.groups.every((group) =>
        group.rules.every((rule) => rule.health !== "unknown"),
      );
      return evaluated ? data.groups : undefined;
    });
    expect(groups.map((group) => group.name).sort()).toEqual(
      rules.groups.map((group) => group.name).sort(),
    );
    const unhealthy = groups.flatMap((group) =>
      group.rules
        .filter((rule) => rule.health !== "ok")
        .map((rule) => `${rule.name}: ${rule.lastError}`),
    );
    expect(unhealthy).toEqual([]);
  });
});
