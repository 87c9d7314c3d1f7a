import { buildTokenRequest, definitionOf } from "./build-refresh-request";
import type {
  BuildRefreshRequestOptions,
  CodeGrant,
  IntegrationSettings,
  TokenRequest,
} from "./types";

/**
 * Builds the authorization_code grant request (RFC 6749 §4.1.3, with RFC 7636's
 * `code_verifier`): the token URL, client authentication and body format of the
 * provider's refreshes. Its answer is read by classifyAnswer like a refresh's. Pure.
 *
 * @throws ProviderConfigError when the integration or the metadata cannot give a safe URL.
 */
export function buildCodeExchangeRequest(
  settings: IntegrationSettings,
  grant: CodeGrant,
  options: BuildRefreshRequestOptions = {},
): TokenRequest {
  const params: Record<string, string> = {
    grant_type: "authorization_code",
    code: grant.code,
    redirect_uri: grant.redirectUri,
  };
  if (grant.codeVerifier) params.code_verifier = grant.codeVerifier;
  return buildTokenRequest(definitionOf(settings), settings, params, grant.metadata, options);
}
