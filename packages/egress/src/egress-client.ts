import { ClientRequest } from "node:http";
import { performance } from "node:perf_hooks";
import type { Readable } from "node:stream";
import axios, { type AxiosInstance, isAxiosError } from "axios";
import { EgressPolicy, type EgressPolicyOptions } from "./egress-policy";
import { EgressRefusedError, guardedAgents, type ResolveAll } from "./guarded-agents";

/** 64 KiB: a token answer is a few hundred bytes; SPEC §2 bounds what is read. */
export const DEFAULT_MAX_RESPONSE_BYTES = 65_536;

export interface EgressClientOptions extends EgressPolicyOptions {
  /** Open connections kept per origin. @defaultValue 50 */
  readonly maxSockets?: number;
  /** Name resolution, checked by the policy. @defaultValue dns.lookup (all addresses) */
  readonly resolve?: ResolveAll;
}

/** An outbound request, as data: providers describe it, the egress client sends it. */
export interface EgressRequest {
  readonly url: string;
  readonly method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string;
}

export interface SendOptions {
  /**
   * The whole exchange, connection to last byte, must fit in this, unless the process was
   * frozen meanwhile (see FROZEN_LATENESS_MS).
   */
  readonly timeoutMs: number;
  /**
   * `performance.now()` after which an answer is of no use (its sender's lease is ending):
   * a frozen process's extra wait never reaches past it. @defaultValue none
   */
  readonly notAfter?: number;
  /** Longest body read; a longer answer is `response_too_large`. @defaultValue 65536 */
  readonly maxResponseBytes?: number;
  /**
   * The status and headers are the whole answer (a webhook's receiver): the body is read up
   * to `maxResponseBytes` and dropped, so the connection can serve the next request, and a
   * longer one closes the connection; the answer is the status either way. @defaultValue false
   */
  readonly discardBody?: boolean;
}

export interface EgressResponse {
  readonly status: number;
  /** Lower-case names. */
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  /** UTF-8 text, whatever the content type. */
  readonly body: string;
}

/**
 * Why no answer came back. Deliberately coarse: these codes end up in stored errors and
 * API responses, and the socket's own codes (ECONNREFUSED vs ECONNRESET vs a timeout)
 * would turn a token URL into a port scanner.
 */
export type EgressFailureCode =
  /** Nothing complete within `timeoutMs`. */
  | "timeout"
  /**
   * Name not found, connection refused, TLS failure, a malformed answer, or a connection
   * that broke before the whole request was sent.
   */
  | "unreachable"
  /** The destination is loopback, private or otherwise internal, and not allowlisted. */
  | "refused_by_policy"
  /** The answer's body exceeded `maxResponseBytes`; reading stopped there. */
  | "response_too_large"
  /**
   * The whole request was sent and the connection broke before the answer was complete
   * (reset or closed before it began, or its body cut off): unlike `unreachable`, the peer
   * may well have processed the request.
   */
  | "interrupted";

export interface EgressFailure {
  readonly failure: EgressFailureCode;
}

const TIMEOUT: EgressFailure = { failure: "timeout" };
const UNREACHABLE: EgressFailure = { failure: "unreachable" };
const REFUSED: EgressFailure = { failure: "refused_by_policy" };
const TOO_LARGE: EgressFailure = { failure: "response_too_large" };
const INTERRUPTED: EgressFailure = { failure: "interrupted" };

const HTTP_URL = /^https?:\/\//i;

/**
 * A process frozen (SIGSTOP, a frozen VM, a long pause) while a request was out may have
 * written the request only as it woke, its answer not back yet, and cutting it then loses an
 * answer a rotating provider has already acted on. So a time limit that finds the process
 * was frozen since the request began runs once more, from the waking. A freeze shows as a
 * gap of more than this between the event loop's heartbeats (a limit firing this late is
 * one). How late the limit fires alone misses a freeze that ends just after it was due, the
 * likely cause of one answer lost under `npm run chaos`: a worker paused 2.2 s against a
 * 2 s limit, the provider answering as it woke.
 */
const FROZEN_LATENESS_MS = 250;

/** How often the event loop's heartbeat beats (see FROZEN_LATENESS_MS). */
const HEARTBEAT_MS = 100;

/** The event loop's heartbeat, one per process: when it last beat, when it last missed. */
const heartbeat = {
  lastBeat: performance.now(),
  /** When the latest gap longer than FROZEN_LATENESS_MS ended. */
  lastGapEnded: Number.NEGATIVE_INFINITY,
  timer: undefined as NodeJS.Timeout | undefined,
};

function startHeartbeat(): void {
  if (heartbeat.timer) return;
  heartbeat.lastBeat = performance.now();
  heartbeat.timer = setInterval(() => {
    const now = performance.now();
    if (now - heartbeat.lastBeat > FROZEN_LATENESS_MS) heartbeat.lastGapEnded = now;
    heartbeat.lastBeat = now;
  }, HEARTBEAT_MS).unref();
}

/** Whether the process was frozen (or stalled) at some point since `since`. */
function frozenSince(since: number, now: number): boolean {
  return now - heartbeat.lastBeat > FROZEN_LATENESS_MS || heartbeat.lastGapEnded > since;
}

/**
 * The one way Evergreen calls out (STYLE.md): every request passes the egress policy at
 * connect time, has a time limit, and has its answer read up to a size limit, streaming,
 * so a hostile endpoint can neither reach inside the network nor fill the heap.
 */
export class EgressClient {
  readonly policy: EgressPolicy;
  readonly #http: AxiosInstance;
  readonly #agents: ReturnType<typeof guardedAgents>;

  constructor(options: EgressClientOptions = {}) {
    startHeartbeat();
    this.policy = new EgressPolicy(options);
    this.#agents = guardedAgents({
      policy: this.policy,
      maxSockets: options.maxSockets ?? 50,
      ...(options.resolve ? { resolve: options.resolve } : {}),
    });
    this.#http = axios.create({
      ...this.#agents,
      // HTTP(S)_PROXY from the environment would send requests to the proxy, past the
      // address check; a redirect would be a second request nobody checked.
      proxy: false,
      maxRedirects: 0,
      responseType: "stream",
      transformResponse: [],
      validateStatus: () => true,
    });
  }

  /** Sends one request; never throws for anything the network or the peer does. */
  async send(
    request: EgressRequest,
    {
      timeoutMs,
      notAfter = Number.POSITIVE_INFINITY,
      maxResponseBytes = DEFAULT_MAX_RESPONSE_BYTES,
      discardBody = false,
    }: SendOptions,
  ): Promise<EgressResponse | EgressFailure> {
    // axios would also fetch data: URLs, without any connection to check.
    if (!HTTP_URL.test(request.url)) return REFUSED;
    // After the process was paused (SIGSTOP, a long GC, a frozen VM), the overdue timer
    // fires before the event loop reads an answer that may already sit in the socket, or
    // before one to a request written only on waking has come back. A plain timeout would
    // discard it, although a rotating provider has already revoked the refresh token we
    // hold: the next try would reuse it and kill the grant (`npm run bench -- faults`: 95
    // and 153 grants of 8,000 lost to 2 s pauses under a 3 s lease). So a limit that finds
    // the process frozen since the request began runs once more from the waking (never past
    // `notAfter`; see FROZEN_LATENESS_MS), and the abort itself waits two
    // turns of the event loop, for pending I/O to be read first.
    const controller = new AbortController();
    const startedAt = performance.now();
    const abortSoon = () => setImmediate(() => setImmediate(() => controller.abort()));
    let timer = setTimeout(() => {
      const now = performance.now();
      const again = Math.min(timeoutMs, notAfter - now);
      if (frozenSince(startedAt, now) && again > 0) {
        timer = setTimeout(abortSoon, again);
      } else {
        abortSoon();
      }
    }, timeoutMs);
    try {
      const response = await this.#http.request<Readable>({
        url: request.url,
        method: request.method,
        headers: request.headers,
        data: request.body,
        signal: controller.signal,
      });
      const headers = response.headers as EgressResponse["headers"];
      const tooLarge = Number(headers["content-length"]) > maxResponseBytes;
      if (discardBody) {
        // A body read to its end leaves the connection for the next request; past the limit
        // (or the time limit) reading stops and the connection is closed, as below.
        if (tooLarge) response.data.destroy();
        else await readBody(response.data, maxResponseBytes, controller.signal);
        return { status: response.status, headers, body: "" };
      }
      if (tooLarge) {
        response.data.destroy();
        return TOO_LARGE;
      }
      const body = await readBody(response.data, maxResponseBytes, controller.signal);
      return typeof body === "string" ? { status: response.status, headers, body } : body;
    } catch (error) {
      if (controller.signal.aborted) return TIMEOUT;
      if (isRefusal(error)) return REFUSED;
      return droppedAfterSending(error) ? INTERRUPTED : UNREACHABLE;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Closes kept-alive connections. */
  close(): void {
    this.#agents.httpAgent.destroy();
    this.#agents.httpsAgent.destroy();
  }
}

/** axios wraps the agent's error; the refusal is its cause. */
function isRefusal(error: unknown): boolean {
  return (
    error instanceof EgressRefusedError ||
    (error instanceof Error && error.cause instanceof EgressRefusedError)
  );
}

/**
 * The connection was reset or closed after the whole request had been handed to the
 * network, before any answer: a provider that rotated the refresh token and then lost the
 * connection looks like this. A malformed answer (a parse error) is not: the peer is no
 * token endpoint.
 */
function droppedAfterSending(error: unknown): boolean {
  if (!isAxiosError(error) || error.code !== "ECONNRESET") return false;
  const request: unknown = error.request;
  return request instanceof ClientRequest && request.writableFinished;
}

/**
 * Reads a body of at most `maxBytes`, and stops reading (closing the connection) at the
 * first byte past it: a 300 MB answer costs 64 KiB of memory, not 300 MB.
 */
function readBody(
  stream: Readable,
  maxBytes: number,
  signal: AbortSignal,
): Promise<string | EgressFailure> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (result: string | EgressFailure) => {
      if (done) return;
      done = true;
      signal.removeEventListener("abort", onAbort);
      if (typeof result !== "string") stream.destroy();
      resolve(result);
    };
    const onAbort = () => finish(TIMEOUT);
    signal.addEventListener("abort", onAbort);
    stream.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) finish(TOO_LARGE);
      else chunks.push(chunk);
    });
    stream.on("end", () => {
      const text = (chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size))
        .toString("utf8")
        // As axios's text mode does: a BOM would make JSON.parse fail on a good answer.
        .replace(/^\uFEFF/, "");
      finish(text);
    });
    stream.on("error", () => finish(signal.aborted ? TIMEOUT : INTERRUPTED));
  });
}
