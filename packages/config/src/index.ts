export { DEV_SECRETS_FILE, type DevSecretName, type DevSecrets, withDevSecrets } from "./dev-secrets";
export * as fields from "./fields";
export { describeConfig } from "./describe-config";
export { ConfigError, parseEnv } from "./parse-env";
export { type LoadedConfig, loadConfigOrExit } from "./load-config";
