// The demo's view of the Evergreen api: plain HTTP with an API key, as any app calls it.

/** Bounds every call, so that Ctrl-C always gets to the cleanup and the exit. */
const REQUEST_TIMEOUT_MS = 10_000;

export interface ConnectionView {
  id: string;
  externalId: string;
  status: string;
  expiresAt: string | null;
  lastRefreshedAt: string | null;
  refreshCount: number;
  lastError: { code: string; message: string | null; at: string } | null;
}

export interface TokenView {
  accessToken: string;
  tokenType: string;
  expiresAt: string | null;
}

export class ApiError extends Error {
  override name = "ApiError";
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export interface ApiClient {
  get<T>(path: string): Promise<T>;
  post<T>(path: string, body: unknown): Promise<T>;
  /** Deletes; a resource that is already gone counts as deleted. */
  delete(path: string): Promise<void>;
}

export function createApiClient(baseUrl: string, apiKey: string): ApiClient {
  const send = async (method: string, path: string, body?: unknown): Promise<Response> => {
    const response = await fetch(`${baseUrl}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${apiKey}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    if (response.ok || (method === "DELETE" && response.status === 404)) return response;
    const error = (await response.json().catch(() => ({}))) as { error?: string; message?: string };
    throw new ApiError(
      response.status,
      `${method} ${path} answered ${response.status} ${error.error ?? ""}: ${error.message ?? ""}`,
    );
  };
  return {
    // The api's answers are trusted to follow SPEC §3; the demo does not validate them.
    get: async <T>(path: string) => (await (await send("GET", path)).json()) as T,
    post: async <T>(path: string, body: unknown) =>
      (await (await send("POST", path, body)).json()) as T,
    delete: async (path) => {
      await send("DELETE", path);
    },
  };
}

/** fetch says only "fetch failed"; the reason (ECONNREFUSED, a timeout) is in its cause. */
export function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  return error.cause instanceof Error ? `${error.message}: ${error.cause.message}` : error.message;
}

/** A wall-clock time as the demo prints it, e.g. `15:20:04`. */
export function clock(iso: string | null): string {
  return iso === null ? "--:--:--" : new Date(iso).toLocaleTimeString("en-GB", { hour12: false });
}
