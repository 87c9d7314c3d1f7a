export type ProviderConfigProblem =
  | "unknown_provider"
  | "missing_client_id"
  | "missing_token_url"
  | "invalid_token_url"
  | "insecure_token_url"
  | "missing_authorization_url"
  | "invalid_authorization_url"
  | "insecure_authorization_url"
  | "missing_revocation_url"
  | "invalid_revocation_url"
  | "insecure_revocation_url"
  | "invalid_introspection_url"
  | "insecure_introspection_url"
  | "missing_introspection_url"
  | "invalid_placeholder"
  | "placeholder_outside_path"
  | "unresolved_placeholder";

/**
 * The integration (or connection metadata) cannot produce a safe request to the provider. Permanent:
 * retrying does not help until an operator fixes the configuration. Messages never contain
 * secrets, tokens or metadata values.
 */
export class ProviderConfigError extends Error {
  override name = "ProviderConfigError";
  constructor(
    readonly provider: string,
    readonly problem: ProviderConfigProblem,
    message: string,
  ) {
    super(message);
  }
}
