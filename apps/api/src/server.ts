import type { IncomingHttpHeaders } from "node:http";
import { type Duplex, finished } from "node:stream";
import type { ApiKey } from "@evergreen/config";
import { DecryptionError } from "@evergreen/crypto";
import {
  type AuditLog,
  AuditWriteError,
  answerOpsRequest,
  ClientErrorLog,
  type HttpMetrics,
  type Logger,
  type OpsOptions,
} from "@evergreen/observability";
import { isInfraOutage } from "@evergreen/refresh";
import Fastify, {
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  LogController,
} from "fastify";
import { checkRouteScope, createKeyLookup, forbiddenReason } from "./auth";
import { renderDocsPage } from "./docs-page";
import { HttpError } from "./http-errors";
import { parseJsonBodies } from "./json-body";
import { apiDocument } from "./openapi";
import { checkRouteDeclared, registerRoute } from "./route";
import { CALLBACK_PATH } from "./routes/connect";
import { opsRoutes } from "./routes/ops";

declare module "fastify" {
  interface FastifyInstance {
    /** The audit stream: token reads and security events (routes reach it as `request.server.audit`). */
    audit: AuditLog;
  }
}

export interface ServerOptions {
  readonly log: Logger;
  /** Closed (its held-back counts written) when the server closes. */
  readonly audit: AuditLog;
  readonly apiKeys: readonly ApiKey[];
  readonly ops: OpsOptions;
  /** Request counts and durations, on the registry `ops` serves. */
  readonly metrics: HttpMetrics;
  /** Registers the /v1 routes, each from its declaration (see route.ts). */
  readonly routes?: readonly ((app: FastifyInstance) => void)[];
  /**
   * How long, after an answer sent before its body was read (a 413, a 401), the rest of
   * the body is read and thrown away so that the answer reaches a client still sending; a
   * client sending longer, or stalling, is cut off.
   * @defaultValue 30000
   */
  readonly bodyLingerMs?: number;
}

/** Liveness, readiness and metrics. */
const OPS_ROUTES = [opsRoutes.healthz, opsRoutes.readyz, opsRoutes.metrics] as const;

/**
 * The only routes that need no API key: ops, the API's documentation, and the OAuth
 * callback that providers send users' browsers to (its state, single-use and bound to a
 * session, is its credential).
 */
const PUBLIC_ROUTES: ReadonlySet<string> = new Set([
  ...OPS_ROUTES.map(({ url }) => url),
  opsRoutes.openapi.url,
  opsRoutes.docs.url,
  CALLBACK_PATH,
]);

/** SPEC §3: request bodies over 1 MiB are refused with 413. */
const BODY_LIMIT_BYTES = 1024 * 1024;
/** Headers and body must have arrived by then (see buildServer). */
const REQUEST_TIMEOUT_MS = 30_000;
/** What a 503 asks a client to wait when nothing better is known. */
const DEFAULT_RETRY_AFTER_SECONDS = 5;

export async function buildServer({
  log,
  audit,
  apiKeys,
  ops,
  metrics,
  routes = [],
  bodyLingerMs = 30_000,
}: ServerOptions) {
  const app = Fastify({
    // Typed as fastify's logger so route modules take a plain FastifyInstance.
    loggerInstance: log as FastifyBaseLogger,
    // Fastify's own request lines carry the raw URL, query string included, where a
    // client may put what it should not; recordRequest writes one line per request instead.
    logController: new LogController({
      disableRequestLogging: true,
      requestIdLogLabel: "requestId",
    }),
    bodyLimit: BODY_LIMIT_BYTES,
    // Headers and body must arrive within this: a client (with a key or without) that
    // stalls mid-request would otherwise hold its socket, and a stop, forever. Handlers
    // that wait longer (a refresh behind another process's lock) are not cut by it.
    requestTimeout: REQUEST_TIMEOUT_MS,
    // A request that reaches a stopping api (on a keep-alive socket that was busy when the
    // stop began) is served like any other and ends its connection (the preClose hook
    // below). Fastify's default answered it with a 503 of its own shape, without Retry-After.
    return503OnClosing: false,
    frameworkErrors: (error, _request, reply) => answerFrameworkError(error, reply),
    clientErrorHandler: answerClientError,
  });
  const findKey = createKeyLookup(apiKeys);
  // Every request fails the same way while PostgreSQL or Redis is out: one line per kind of
  // failure per window, with the count, rather than one per request.
  const outages = new ClientErrorLog(log);
  parseJsonBodies(app);
  // A client that asks before sending (`Expect: 100-continue`) is invited only to send a body
  // within the limit; Node invited every one, and a 1 GiB upload began before its 413.
  app.server.on("checkContinue", (request, response) => {
    if (!(Number(request.headers["content-length"]) > BODY_LIMIT_BYTES)) response.writeContinue();
    app.server.emit("request", request, response);
  });

  app.setErrorHandler((error: Error & { statusCode?: number; code?: string }, request, reply) => {
    if (error instanceof HttpError) {
      const { retryAfterSeconds } = error.options;
      if (retryAfterSeconds !== undefined) reply.header("retry-after", String(retryAfterSeconds));
      return reply.status(error.statusCode).send({ error: error.code, message: error.message });
    }
    // A client that went away while sending its body (the reset is its socket's, not a
    // backing service's): nobody is left to answer, and on-call has nothing to look at.
    if (request.raw.readableAborted) {
      request.log.info("the client closed its request before sending all of its body");
      return reply.status(400).send({ error: "invalid_request", message: "request aborted" });
    }
    if (isInfraOutage(error)) {
      outages.report("api", error, "request failed: database or Redis unreachable", {
        requestId: request.id,
      });
      return reply
        .status(503)
        .header("retry-after", String(DEFAULT_RETRY_AFTER_SECONDS))
        .send({ error: "unavailable", message: "a backing service is unreachable; retry shortly" });
    }
    if (error instanceof AuditWriteError) {
      // Failing closed: no token leaves unrecorded. The operator's to fix (AUDIT_LOG's disk).
      request.log.error({ err: error }, "request failed: the audit log cannot be written");
      return reply
        .status(503)
        .header("retry-after", String(DEFAULT_RETRY_AFTER_SECONDS))
        .send({ error: "unavailable", message: "the audit log cannot be written; retry shortly" });
    }
    if (error instanceof DecryptionError) {
      // The operator's to fix (ENCRYPTION_KEYS), and not the caller's fault; it says what
      // failed without which key or value.
      request.log.error({ err: error }, "request failed: a stored value could not be opened");
      return reply.status(500).send({
        error: "internal",
        message:
          "this api process cannot open the connection's stored tokens (an encryption key missing from ENCRYPTION_KEYS, or an altered value); see npm run keys:status",
      });
    }
    const status = error.statusCode ?? 500;
    if (status >= 500) request.log.error({ err: error }, "request failed");
    // Fastify marks a 413 `Connection: close`; the connection stays open instead so that
    // the answer reaches a client still sending (see cutOffUnreadBody).
    if (status === 413) reply.removeHeader("connection");
    const code = fastifyErrorCode(status);
    // Fastify's own 4xx messages (bad JSON, media type, size) are safe to show; anything
    // else is internal and its message could carry details a client must not see.
    const message = status < 500 ? error.message : "internal error";
    return reply.status(status).send({ error: code, message });
  });
  app.setNotFoundHandler((_request, reply) => sendNotFound(reply));
  app.addHook("onSend", async (_request, reply) => {
    // Every 503 says when to come back (SPEC §3 asks it of refresh_failed; clients retry
    // the others too: unavailable, exchange_failed, validation_failed).
    if (reply.statusCode === 503 && !reply.hasHeader("retry-after")) {
      reply.header("retry-after", String(DEFAULT_RETRY_AFTER_SECONDS));
    }
    // API answers are about one caller's data, some carry secrets shown once (a webhook's
    // signing secret, a token): never kept by a cache on the way.
    if (!reply.hasHeader("cache-control")) reply.header("cache-control", "no-store");
  });
  app.addHook("onResponse", async (request, reply) => {
    cutOffUnreadBody(request.raw, bodyLingerMs);
    recordRequest(request, reply, metrics);
  });

  // An allowlist of public routes, not a "/v1" prefix test: the router matches decoded
  // paths, so `/%761/...` reaches a /v1 route while its raw URL does not start with /v1.
  // An unknown route is 404 with or without a key (SPEC §3): the route table is public
  // (README, SPEC), so the answer reveals nothing, and a typo in a path is not reported
  // as a bad key. Every known /v1 route still checks the key before anything else, so
  // no id's existence can be probed without one.
  app.addHook("onRequest", async (request, reply) => {
    if (request.is404) return;
    if (request.routeOptions.url && PUBLIC_ROUTES.has(request.routeOptions.url)) return;
    // The admin console's pages answer to its cookie session, checked by its own hooks
    // (admin/admin-console.ts), never to a bearer key.
    if (request.routeOptions.config.console) return;
    const key = findKey(request.headers.authorization);
    if (!key) {
      audit.rejectedKey({
        ip: request.ip,
        route: request.routeOptions.url ?? "unmatched",
        presented: request.headers.authorization !== undefined,
      });
      return reply
        .status(401)
        .header("www-authenticate", 'Bearer realm="evergreen"')
        .send({ error: "unauthorized", message: "missing or unknown API key" });
    }
    request.apiKeyName = key.name;
    const forbidden = forbiddenReason(key, request.routeOptions.config.scope);
    if (forbidden) {
      // A key used beyond its scopes (a token read with a write key) is a security event too.
      audit.security({
        event: "api_key_forbidden",
        keyName: key.name,
        ip: request.ip,
        route: request.routeOptions.url ?? "unmatched",
      });
      return reply.status(403).send({ error: "forbidden", message: forbidden });
    }
  });
  // JSON in, uncompressed: a gzip body reached the JSON parser as bytes and was refused as
  // bad JSON (400), when what it lacks is an encoding this server reads (RFC 9110 §15.5.16,
  // RFC 7694: 415 naming what is accepted). Only for a request with a body, and on /v1
  // routes after the key check: a caller without a key learns nothing.
  app.addHook("onRequest", async (request, reply) => {
    if (request.is404 || reply.sent || !compressedBody(request.headers)) return;
    return reply.status(415).header("accept-encoding", "identity").send({
      error: "unsupported_media_type",
      message: "compressed request bodies are not accepted: send the body without an encoding",
    });
  });
  app.decorateRequest("apiKeyName", undefined);
  app.decorate("audit", audit);
  app.addHook("onClose", async () => audit.close());
  app.addHook("onRoute", (route) => {
    if (route.config?.console) return;
    checkRouteScope(route, PUBLIC_ROUTES);
    checkRouteDeclared(route);
  });

  // A keep-alive socket whose request was still running when close() began stays open
  // after its answer until the client's idle timeout, and close() waits for it: with a
  // refresh in flight at SIGTERM the api took the whole shutdown budget to stop. Answers
  // sent once close() has begun (preClose) or the listener is shut end their connection.
  let closing = false;
  app.addHook("preClose", async () => {
    closing = true;
  });
  app.addHook("onSend", async (_request, reply) => {
    if (closing || !app.server.listening) reply.header("connection", "close");
  });

  for (const register of routes) register(app);
  for (const route of OPS_ROUTES) {
    registerRoute(app, route, async (_input, _request, reply) =>
      sendOps(reply, await answerOpsRequest(route.url, ops)),
    );
  }
  registerRoute(app, opsRoutes.openapi, async () => apiDocument());
  const docs = renderDocsPage(apiDocument());
  registerRoute(app, opsRoutes.docs, async (_input, _request, reply) =>
    reply
      .type("text/html; charset=utf-8")
      .header("content-security-policy", docs.contentSecurityPolicy)
      .header("x-content-type-options", "nosniff")
      .send(docs.html),
  );

  return app;
}

/**
 * The access line and the request metrics of one answered request. Both name the route by its
 * template (`/v1/connections/:id/token`), never the path: an id would make every
 * connection a series, and a query string could carry a secret. A request no route matched
 * (a 404, a path that does not decode) is `unmatched`.
 */
function recordRequest(request: FastifyRequest, reply: FastifyReply, metrics: HttpMetrics) {
  const route = request.routeOptions.url ?? "unmatched";
  const { method } = request;
  const status = reply.statusCode;
  metrics.httpRequests.inc({ route, method, status: String(status) });
  metrics.httpDuration.observe({ route, method }, reply.elapsedTime / 1000);
  // Probes and scrapes arrive every few seconds from every orchestrator and Prometheus:
  // at info they would bury the requests of apps.
  const level = PUBLIC_ROUTES.has(route) ? "debug" : "info";
  request.log[level](
    {
      method,
      route,
      status,
      ms: Math.round(reply.elapsedTime * 10) / 10,
      // Which key called, by its name: never the key.
      key: request.apiKeyName,
    },
    "request answered",
  );
}

function sendOps(reply: FastifyReply, answer: Awaited<ReturnType<typeof answerOpsRequest>>) {
  if (!answer) return sendNotFound(reply);
  return reply.status(answer.status).type(answer.contentType).send(answer.body);
}

/**
 * A path that does not decode (`%ff`) or a parameter over 100 characters names no
 * resource: SPEC §3 answers an unknown id of any shape with 404, in its error shape.
 */
function answerFrameworkError(error: FastifyError, reply: FastifyReply) {
  if (error.code === "FST_ERR_BAD_URL" || error.code === "FST_ERR_MAX_PARAM_LENGTH") {
    return sendNotFound(reply);
  }
  return reply.status(500).send({ error: "internal", message: "internal error" });
}

/** What Node's HTTP parser refuses before any route sees it, by its error code. */
const CLIENT_ERRORS: Record<string, { status: number; reason: string; message: string }> = {
  HPE_HEADER_OVERFLOW: {
    status: 431,
    reason: "Request Header Fields Too Large",
    message: "the request's headers are over 16 KiB",
  },
  ERR_HTTP_REQUEST_TIMEOUT: {
    status: 408,
    reason: "Request Timeout",
    message: `the request did not arrive within ${REQUEST_TIMEOUT_MS / 1000} s`,
  },
};
const MALFORMED = { status: 400, reason: "Bad Request", message: "malformed HTTP request" };

/**
 * A request Node's parser refuses (a bad or doubled Content-Length, Content-Length with
 * Transfer-Encoding, an unknown method, oversized headers, a stalled sender) is answered in
 * the SPEC's error shape; Fastify's default wrote `{"error":"Bad Request","statusCode":400}`.
 * The connection ends: nothing after a malformed request can be framed.
 */
function answerClientError(error: Error & { code?: string }, socket: Duplex) {
  if (error.code === "ECONNRESET" || socket.destroyed) return;
  const { status, reason, message } = CLIENT_ERRORS[error.code ?? ""] ?? MALFORMED;
  const body = JSON.stringify({ error: fastifyErrorCode(status), message });
  // Not into an answer already under way on this connection (pipelined requests): Node's
  // own handler holds back the same way.
  const answering = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (socket.writable && !answering?.headersSent) {
    socket.write(
      `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy();
}

function sendNotFound(reply: FastifyReply) {
  return reply.status(404).send({ error: "not_found", message: "no such route" });
}

/**
 * SPEC §3: a 413 must reach a client that is still sending its body. Were the socket
 * destroyed as soon as the answer is flushed, the bytes still arriving would meet a closed
 * socket, the kernel would reset the connection, and a client still writing (Node's fetch)
 * would fail with EPIPE before it reads the answer (5 and 9 of 10 posts of 64 MiB from
 * another process, chunked and with a length). So after any answer sent before its body
 * was read (a 413, a 401 or 404 on a post) Node reads the rest and throws it away, for at
 * most `lingerMs`: a client that stalls or keeps sending is cut off, where it held the
 * connection, and the shutdown's server.close(), for ever (no key needed).
 */
function cutOffUnreadBody(raw: FastifyRequest["raw"], lingerMs: number) {
  if (raw.complete) return;
  const cutOff = setTimeout(() => raw.socket.destroy(), lingerMs);
  cutOff.unref();
  // Cleared once the body is over: the connection may carry the client's next request.
  finished(raw, () => clearTimeout(cutOff));
}

function fastifyErrorCode(status: number): string {
  switch (status) {
    case 400:
      return "invalid_request";
    case 401:
      return "unauthorized";
    case 404:
      return "not_found";
    case 413:
      return "payload_too_large";
    case 415:
      return "unsupported_media_type";
    default:
      return status >= 500 ? "internal" : "invalid_request";
  }
}

/** A body is coming (a length above 0, or chunks) under a coding other than identity/chunked. */
function compressedBody(headers: IncomingHttpHeaders): boolean {
  const length = headers["content-length"];
  const transfer = codings(headers["transfer-encoding"]);
  if (transfer.length === 0 && (length === undefined || length.trim() === "0")) return false;
  return [...codings(headers["content-encoding"]), ...transfer].some(
    (coding) => coding !== "identity" && coding !== "chunked",
  );
}

function codings(header: string | undefined): string[] {
  return (header ?? "")
    .split(",")
    .map((coding) => coding.trim().toLowerCase())
    .filter((coding) => coding !== "");
}
