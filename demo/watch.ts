// Prints each refresh the workers make, as an app would see it through the api.
import { setTimeout as sleep } from "node:timers/promises";
import type { MockProvider } from "@evergreen/providers/testing";
import { type ApiClient, type ConnectionView, clock } from "./api";

const POLL_INTERVAL_MS = 1000;

export const HEADER = `${"time".padEnd(10)}${"connection".padEnd(13)}${"old expiry -> new expiry".padEnd(27)}${"left on old".padEnd(13)}${"provider calls".padEnd(16)}outcome`;

function secondsBetween(from: string | null, to: string | null): string {
  if (from === null || to === null) return "?";
  return ((Date.parse(to) - Date.parse(from)) / 1000).toFixed(1);
}

/** One line when a refresh succeeded or a new error was recorded since the last poll. */
function describeChange(
  before: ConnectionView,
  after: ConnectionView,
  providerCalls: number,
): string | null {
  const refreshed = after.refreshCount > before.refreshCount;
  const failed = after.lastError !== null && after.lastError.at !== before.lastError?.at;
  if (!refreshed && !failed) return null;
  const at = refreshed ? after.lastRefreshedAt : (after.lastError?.at ?? null);
  const outcome = refreshed
    ? "success"
    : `${after.lastError?.code} (status ${after.status}: ${after.lastError?.message ?? ""})`;
  return [
    clock(at).padEnd(10),
    after.externalId.padEnd(13),
    `${clock(before.expiresAt)} -> ${refreshed ? clock(after.expiresAt) : "(kept)"}`.padEnd(27),
    `${secondsBetween(at, before.expiresAt)} s`.padEnd(13),
    String(providerCalls).padEnd(16),
    outcome,
  ].join("");
}

/**
 * Polls each connection until `signal` aborts, calling `onRefreshed` after each refresh it
 * prints; returns how many refreshes it saw.
 */
export async function watchRefreshes(
  api: ApiClient,
  mock: MockProvider,
  connections: readonly ConnectionView[],
  signal: AbortSignal,
  onRefreshed: (connection: ConnectionView) => Promise<void>,
): Promise<number> {
  const last = new Map(connections.map((connection) => [connection.id, connection]));
  let refreshes = 0;
  while (!signal.aborted) {
    const lines: string[] = [];
    const refreshed: ConnectionView[] = [];
    for (const [id, before] of last) {
      const after = await api.get<ConnectionView>(`/v1/connections/${id}`);
      const line = describeChange(before, after, mock.requests);
      if (line !== null) lines.push(line);
      if (after.refreshCount > before.refreshCount) refreshed.push(after);
      refreshes += after.refreshCount - before.refreshCount;
      last.set(id, after);
    }
    // Each line starts with the time of its change: sorted, one poll's changes read in order.
    for (const line of lines.sort()) console.log(line);
    for (const connection of refreshed) await onRefreshed(connection);
    // Rejects only when `signal` aborts, which ends the loop.
    await sleep(POLL_INTERVAL_MS, undefined, { signal }).catch(() => undefined);
  }
  return refreshes;
}
