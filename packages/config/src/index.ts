export {
  API_SCOPES,
  type ApiKey,
  type ApiScope,
  grantsScope,
  SHORT_KEYS_IN_PRODUCTION,
  shortApiKeys,
  shortApiKeyWarnings,
} from "./api-keys";
export { describeConfig } from "./describe-config";
export {
  DEV_SECRETS_FILE,
  type DevSecretName,
  type DevSecrets,
  readDevSecrets,
  withDevSecrets,
} from "./dev-secrets";
export * as fields from "./fields";
export { type LoadedConfig, loadConfigOrExit } from "./load-config";
export { ConfigError, parseEnv } from "./parse-env";
