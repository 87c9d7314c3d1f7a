import type { ApiKey } from "./api-keys";

/** Redacts secrets from a parsed config so it can be logged at start. */
export function describeConfig(config: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(config).map(([name, value]) => {
      if (name === "ENCRYPTION_KEYS" && Array.isArray(value)) {
        return [name, value.map((key: { id: string }) => key.id)];
      }
      // Names and scopes only: what an operator checks, and nothing to call the API with.
      if (name === "API_KEYS" && Array.isArray(value)) {
        return [name, value.map((key: ApiKey) => `${key.name}:${key.scopes.join("+")}`)];
      }
      if (/_URL$/.test(name) && typeof value === "string") return [name, withoutPassword(value)];
      return [name, value];
    }),
  );
}

function withoutPassword(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "***";
    return parsed.toString();
  } catch {
    return "(unparseable)";
  }
}
