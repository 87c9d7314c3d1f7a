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
 * and on failure print every problem to stderr and exit with `exitCode`: 1 for the apps;
 * the command-line tools say 3, "could not run", since their 1 means something else.
 */
export function loadConfigOrExit<Schema extends z.ZodType>(
  appName: string,
  schema: Schema,
  env: Readonly<Record<string, string | undefined>>,
  { exitCode = 1 }: { readonly exitCode?: number } = {},
): LoadedConfig<z.output<Schema>> {
  try {
    const wanted = schema instanceof z.ZodObject ? Object.keys(schema.shape) : [];
    const names = DEV_SECRET_NAMES.filter((name) => wanted.includes(name));
    const dev = withDevSecrets(env, names, DEV_SECRETS_FILE);
    const warnings = dev.fromFile.map(
      (name) =>
        `${name} is not set: using the development value in ${DEV_SECRETS_FILE}` +
        `${dev.created ? " (generated now)" : ""}. Set it explicitly in production.`,
    );
    return { config: parseEnv(schema, dev.env), warnings, fromDevFile: dev.fromFile };
  } catch (error) {
    const problems = error instanceof ConfigError ? error.problems : [(error as Error).message];
    process.stderr.write(
      `${appName}: invalid configuration, not starting:\n${problems.map((p) => `  - ${p}`).join("\n")}\n`,
    );
    process.exit(exitCode);
  }
}
