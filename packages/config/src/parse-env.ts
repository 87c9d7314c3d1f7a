import type { z } from "zod";

/** Every problem found in the environment, one line each, so ops fix them in one go. */
export class ConfigError extends Error {
  override name = "ConfigError";
  constructor(readonly problems: readonly string[]) {
    super(`invalid configuration:\n${problems.map((problem) => `  - ${problem}`).join("\n")}`);
  }
}

/**
 * Parses an environment with an app's zod schema. Empty strings count as unset, so
 * `FOO=` in a compose file falls back to the default instead of failing a number parse.
 */
export function parseEnv<Schema extends z.ZodType>(
  schema: Schema,
  env: Readonly<Record<string, string | undefined>>,
): z.output<Schema> {
  const cleaned = Object.fromEntries(
    Object.entries(env).filter(([, value]) => value !== undefined && value.trim() !== ""),
  );
  const result = schema.safeParse(cleaned);
  if (result.success) return result.data;
  throw new ConfigError(
    result.error.issues.map((issue) => {
      const name = issue.path.join(".") || "environment";
      // Zod leaves `input` out of its issues, so "absent" is read from the environment.
      const absent = issue.code === "invalid_type" && cleaned[String(issue.path[0])] === undefined;
      const message = absent ? "is required" : issue.message;
      return `${name}: ${message}`;
    }),
  );
}
