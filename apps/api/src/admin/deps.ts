import type { PrismaClient } from "@evergreen/db";
import type { RefreshDeps, RevocationJobPayload } from "@evergreen/refresh";
import type { Queue } from "bullmq";
import type { TokenService } from "../token-service";
import type { FleetStats } from "./fleet-stats";
import type { AdminSessions } from "./session";

/** What the console's pages and actions use: the same parts the API's routes use. */
export interface ConsoleDeps {
  readonly prisma: PrismaClient;
  readonly refresh: RefreshDeps;
  readonly tokens: TokenService;
  readonly revocations: Queue<RevocationJobPayload>;
  readonly sessions: AdminSessions;
  readonly fleet: FleetStats;
}
