import { z } from "zod";
import { DEV_SECRET_NAMES, DEV_SECRETS_FILE, withDevSecrets } from "./dev-secrets";
import { ConfigError, parseEnv } from "./parse-env";

export interface LoadedConfig<T> {
  readonly config: T;
  /** Warnings to log once a logger exists (development secrets in use). */
  readonly warnings: readonly string[];
  /** Names of secrets taken from the development secrets file. */
  readonly fromDevFile: readonly string[];
}

/**
 * What every app's `main()` does first: fill development secrets, parse the environment,
 * and on failure print every problem to stderr and exit 1.
 */
export function loadConfigOrExit<Schema extends z.ZodType>(
  appName: string,
  schema: Schema,
  env: Readonly<Record<string, string | undefined>>,
  devSecretsFile: string = DEV_SECRETS_FILE,
): LoadedConfig<z.output<Schema>> {
  try {
    const wanted = schema instanceof z.ZodObject ? Object.keys(schema.shape) : [];
    const names = DEV_SECRET_NAMES.filter((name) => wanted.includes(name));
    const dev = withDevSecrets(env, names, devSecretsFile);
    const warnings = dev.fromFile.map(
      (name) =>
        `${name} is not set: using the development value in ${devSecretsFile}` +
        `${dev.created ? " (generated now)" : ""}. Set it explicitly in production.`,
    );
    return { config: parseEnv(schema, dev.env), warnings, fromDevFile: dev.fromFile };
  } catch (error) {
    const problems = error instanceof ConfigError ? error.problems : [(error as Error).message];
    process.stderr.write(
      `${appName}: invalid configuration, not starting:\n${problems.map((p) => `  - ${p}`).join("\n")}\n`,
    );
    process.exit(1);
  }
}
