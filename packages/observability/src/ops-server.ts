import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Registry } from "prom-client";

/** A dependency check for `/readyz`: resolves when reachable, rejects otherwise. */
export type ReadinessCheck = () => Promise<unknown>;

/**
 * Liveness of `/healthz`: why the process should be restarted, or undefined while it does
 * its job (a worker whose consumer stopped is up but useless).
 */
export type LivenessCheck = () => string | undefined;

export interface OpsOptions {
  readonly registry: Registry;
  /** @defaultValue always live */
  readonly liveness?: LivenessCheck;
  /** Named checks, e.g. `{ database: () => prisma.$queryRaw..., redis: () => redis.ping() }`. */
  readonly checks: Readonly<Record<string, ReadinessCheck>>;
  /** Per-check time limit. @defaultValue 2000 */
  readonly checkTimeoutMs?: number;
  /**
   * Whether the process is draining after a stop signal: then `/readyz` answers 503 at once,
   * so that load balancers send it nothing new while it finishes what it has. @defaultValue never
   */
  readonly stopping?: () => boolean;
}

/**
 * Runs every check at once, each within `timeoutMs`: whether each dependency answered.
 * `/readyz` and the `evergreen_dependency_up` gauge both ask this way.
 */
export async function checkDependencies<Name extends string>(
  checks: Readonly<Record<Name, ReadinessCheck>>,
  timeoutMs: number,
): Promise<(readonly [Name, boolean])[]> {
  const entries = Object.entries(checks) as [Name, ReadinessCheck][];
  return Promise.all(
    entries.map(async ([name, check]) => {
      const ok = await withTimeout(check(), timeoutMs).then(
        () => true,
        () => false,
      );
      return [name, ok] as const;
    }),
  );
}

export interface OpsResponse {
  readonly status: number;
  readonly contentType: string;
  readonly body: string;
}

/**
 * Answers `/healthz` (the process is live), `/readyz` (every dependency answers) and
 * `/metrics` (Prometheus text). Returns `undefined` for any other path. Shared by the
 * api's HTTP server and the small ops server of the worker and the scheduler.
 */
export async function answerOpsRequest(
  path: string,
  options: OpsOptions,
): Promise<OpsResponse | undefined> {
  switch (path) {
    case "/healthz": {
      const reason = options.liveness?.();
      return reason === undefined
        ? json(200, { status: "ok" })
        : json(503, { status: "not_live", reason });
    }
    case "/readyz": {
      if (options.stopping?.()) return json(503, { status: "not_ready", reason: "stopping" });
      const results = await checkDependencies(options.checks, options.checkTimeoutMs ?? 2000);
      const ready = results.every(([, ok]) => ok);
      return json(ready ? 200 : 503, {
        status: ready ? "ready" : "not_ready",
        checks: Object.fromEntries(results.map(([name, ok]) => [name, ok ? "ok" : "unavailable"])),
      });
    }
    case "/metrics":
      return {
        status: 200,
        contentType: options.registry.contentType,
        body: await options.registry.metrics(),
      };
    default:
      return undefined;
  }
}

export interface OpsServer {
  readonly server: Server;
  readonly port: number;
  close(): Promise<void>;
}

/** Serves the ops endpoints on their own port (`METRICS_PORT`; `0` picks a free one). */
export async function startOpsServer(
  port: number,
  options: OpsOptions,
  host = "0.0.0.0",
): Promise<OpsServer> {
  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0] ?? "/";
    const reply =
      req.method === "GET" ? answerOpsRequest(path, options) : Promise.resolve(undefined);
    reply
      .then((answer) => answer ?? json(404, { error: "not_found", message: "no such route" }))
      .catch(() => json(500, { error: "internal", message: "internal error" }))
      .then(({ status, contentType, body }) => {
        res.writeHead(status, { "content-type": contentType }).end(body);
      });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  return {
    server,
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      }),
  };
}

function json(status: number, body: unknown): OpsResponse {
  return { status, contentType: "application/json; charset=utf-8", body: JSON.stringify(body) };
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
