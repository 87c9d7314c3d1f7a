import { createHash } from "node:crypto";
import { definitionOf, resolveUrl } from "./build-refresh-request";
import type {
  AuthorizationRequest,
  AuthorizationSettings,
  BuildRefreshRequestOptions,
} from "./types";

/**
 * Parameters the authorization request itself sets: an integration's extra parameters
 * may not replace them, or it could send the code elsewhere or drop the state check.
 */
export const RESERVED_AUTHORIZATION_PARAMS: readonly string[] = [
  "response_type",
  "client_id",
  "redirect_uri",
  "state",
  "scope",
  "code_challenge",
  "code_challenge_method",
];

/**
 * The URL a user's browser is sent to, to consent (RFC 6749 §4.1.1): the provider's
 * authorization endpoint (or the integration's), its parameters, then the integration's,
 * then the request's own. With a verifier and a provider that accepts PKCE, its S256
 * challenge (RFC 7636 §4.2). Pure.
 *
 * @throws ProviderConfigError when the integration or the metadata cannot give a safe URL.
 */
export function buildAuthorizationUrl(
  settings: AuthorizationSettings,
  request: AuthorizationRequest,
  options: BuildRefreshRequestOptions = {},
): string {
  const definition = definitionOf(settings);
  const rule = definition.authorization;
  const url = new URL(
    resolveUrl(
      "authorization",
      definition,
      rule.url,
      { ...definition.placeholders, ...rule.placeholders },
      settings.authorizationUrl,
      request.metadata,
      options.allowInsecureTokenUrls,
    ),
  );
  const params = url.searchParams;
  for (const [name, value] of Object.entries(rule.params)) params.set(name, value);
  for (const [name, value] of Object.entries(settings.authorizationParams ?? {})) {
    if (!RESERVED_AUTHORIZATION_PARAMS.includes(name)) params.set(name, value);
  }
  params.set("response_type", "code");
  params.set("client_id", settings.clientId);
  params.set("redirect_uri", request.redirectUri);
  params.set("state", request.state);
  const scopes = (request.scopes ?? settings.scopes ?? [])
    .flatMap((scope) => scope.split(rule.scopeSeparator === "," ? /[\s,]+/ : /\s+/))
    .filter((scope) => scope !== "");
  for (const ensured of rule.ensureScopes) if (!scopes.includes(ensured)) scopes.push(ensured);
  if (scopes.length > 0) params.set(rule.scopeParam, scopes.join(rule.scopeSeparator));
  else params.delete(rule.scopeParam);
  if (rule.pkce && request.codeVerifier) {
    params.set("code_challenge", pkceChallenge(request.codeVerifier));
    params.set("code_challenge_method", "S256");
  } else {
    params.delete("code_challenge");
    params.delete("code_challenge_method");
  }
  return url.toString();
}

/** RFC 7636 §4.2: BASE64URL(SHA256(ASCII(code_verifier))). */
export function pkceChallenge(verifier: string): string {
  return createHash("sha256").update(verifier, "ascii").digest("base64url");
}
