import { createHash, timingSafeEqual } from "node:crypto";
import { API_SCOPES, type ApiKey, type ApiScope, grantsScope } from "@evergreen/config";
import type { FastifyRequest, RouteOptions } from "fastify";

/**
 * What a route needs of a key (SPEC §4): one scope, or any one of several. A key with
 * `admin` passes every route.
 */
export type RouteScope = ApiScope | readonly ApiScope[];

declare module "fastify" {
  interface FastifyContextConfig {
    /**
     * The scope a key needs for this route, from its declaration (route.ts: `scope`).
     * Every route that is not public must declare one, or the server refuses to build
     * (see checkRouteScope).
     */
    scope?: RouteScope;
  }
  interface FastifyRequest {
    /** The name (never the key) of the known API key the request came with, 403s included. */
    apiKeyName: string | undefined;
  }
}

/** A route that is not public and declares no valid scope: a bug, caught at start. */
export class RouteScopeError extends Error {
  override name = "RouteScopeError";
  constructor(
    readonly method: string,
    readonly url: string,
  ) {
    super(
      `${method} ${url} declares no known scope: declare a scope (route.ts), one or more of ${API_SCOPES.join(", ")}`,
    );
  }
}

/**
 * Fail closed: run for every route as it is registered, so that a route added without a
 * scope stops the server from being built rather than serving every key.
 */
export function checkRouteScope(route: RouteOptions, publicRoutes: ReadonlySet<string>): void {
  if (publicRoutes.has(route.url)) return;
  const scope = route.config?.scope;
  const scopes: readonly unknown[] = typeof scope === "string" ? [scope] : (scope ?? []);
  const known = API_SCOPES as readonly unknown[];
  if (scopes.length === 0 || !scopes.every((each) => known.includes(each))) {
    throw new RouteScopeError(String(route.method), route.url);
  }
}

/**
 * Why a key may not use a route (the 403's message), or undefined when it may. A route
 * without a scope, which checkRouteScope keeps from being registered, lets no key through.
 */
export function forbiddenReason(key: ApiKey, scope: RouteScope | undefined): string | undefined {
  const needed: readonly ApiScope[] = typeof scope === "string" ? [scope] : (scope ?? []);
  if (needed.length === 0) return "this route declares no scope";
  if (needed.some((each) => grantsScope(key.scopes, each))) return undefined;
  return `this key lacks the ${needed.join(" or ")} scope`;
}

/**
 * Finds the configured key an `Authorization: Bearer` header carries. Keys are compared
 * as SHA-256 digests, in constant time and against every key without stopping at a match:
 * neither the time taken nor a length check tells a caller how close a guess came, or how
 * long the keys are.
 */
export function createKeyLookup(keys: readonly ApiKey[]) {
  const digests = keys.map((key) => ({ key, digest: sha256(key.key) }));
  return (authorization: string | undefined): ApiKey | undefined => {
    const match = /^Bearer (\S+)$/i.exec(authorization ?? "");
    if (!match?.[1]) return undefined;
    const presented = sha256(match[1]);
    let found: ApiKey | undefined;
    for (const { key, digest } of digests) {
      if (timingSafeEqual(digest, presented)) found = key;
    }
    return found;
  };
}

function sha256(text: string): Buffer {
  return createHash("sha256").update(text, "utf8").digest();
}

/**
 * Who a request's audit line names: the key's name (every route that is not public has
 * one by then) and the source address. `request.ip` is the socket's peer: the server sets
 * no `trustProxy`, so behind a proxy it is the proxy's address, never a forwarded header
 * a client could forge.
 */
export function auditActor(request: FastifyRequest): { keyName: string; ip: string } {
  return { keyName: request.apiKeyName ?? "none", ip: request.ip };
}
