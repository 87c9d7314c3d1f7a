import { createConnection } from "node:net";
import { after, type Fault, holding, type Started } from "./fault";

/**
 * `pg_ctl stop -m immediate` (a crash: no checkpoint, every client cut off), down 2-10 s,
 * then started again; it recovers from its WAL.
 */
export const postgresStop: Fault = {
  kind: "PostgreSQL stop -m immediate",
  start(context): Started | null {
    const { postgres } = context.cluster;
    if (!postgres.up) return null;
    const end = holding(context, "postgres", async () => {
      await postgres.stopImmediate();
      await after(context.random.between(2, 10));
      await postgres.start();
    });
    return end && { target: "postgres", end, healthy: () => accepts(postgres.port) };
  },
};

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}
