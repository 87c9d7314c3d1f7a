// The mock provider in a process of its own, for `npm run bench -- scaling`: in the
// benchmark's process it would share an event loop and a core with the HTTP ceiling's
// client, and its CPU could not be told apart from the benchmark's. The parent forks this
// file and drives it over IPC (`startProviderProcess` below runs in the parent).
import { type ChildProcess, fork } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import type { IssuedGrant } from "@evergreen/providers/testing";

type Request =
  | {
      readonly id: number;
      readonly kind: "issue";
      readonly count: number;
      readonly rotate: boolean;
    }
  | { readonly id: number; readonly kind: "stats" };

type WithoutId<T> = T extends unknown ? Omit<T, "id"> : never;

interface Ready {
  readonly kind: "ready";
  readonly tokenUrl: string;
  readonly clientId: string;
  readonly clientSecret: string;
}

export interface ProviderStats {
  readonly requests: number;
  readonly reuseCount: number;
}

export interface ProviderProcess {
  readonly pid: number;
  readonly tokenUrl: string;
  readonly clientId: string;
  readonly clientSecret: string;
  issueGrants(count: number, rotate: boolean): Promise<IssuedGrant[]>;
  stats(): Promise<ProviderStats>;
  stop(): Promise<void>;
}

if (process.send && process.argv[2] === "--child") {
  const { startMockProvider } = await import("@evergreen/providers/testing");
  const provider = await startMockProvider({ latencyMs: Number(process.argv[3]) });
  const send = process.send.bind(process);
  process.on("message", (message: Request) => {
    if (message.kind === "issue") {
      const grants = Array.from({ length: message.count }, () =>
        provider.issueGrant({ rotate: message.rotate }),
      );
      send({ id: message.id, result: grants });
    } else {
      send({
        id: message.id,
        result: { requests: provider.requests, reuseCount: provider.reuseCount },
      });
    }
  });
  process.on("disconnect", () => {
    void provider.close().then(() => process.exit(0));
  });
  const ready: Ready = {
    kind: "ready",
    tokenUrl: provider.tokenUrl,
    clientId: provider.clientId,
    clientSecret: provider.clientSecret,
  };
  send(ready);
}

/** Forks the mock provider, answering after `latencyMs`; resolves once it listens. */
export async function startProviderProcess(latencyMs: number): Promise<ProviderProcess> {
  const child: ChildProcess = fork(fileURLToPath(import.meta.url), ["--child", String(latencyMs)], {
    execArgv: ["--import", "tsx"],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const [ready] = (await once(child, "message")) as [Ready];
  const pending = new Map<number, { resolve(result: unknown): void; reject(e: Error): void }>();
  child.on("message", (message: { id?: number; result?: unknown }) => {
    if (message.id === undefined) return;
    pending.get(message.id)?.resolve(message.result);
    pending.delete(message.id);
  });
  child.on("exit", (code) => {
    for (const { reject } of pending.values()) reject(new Error(`mock provider exited (${code})`));
    pending.clear();
  });
  let nextId = 0;
  const ask = <T>(request: WithoutId<Request>): Promise<T> =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      pending.set(id, { resolve: (result) => resolve(result as T), reject });
      child.send({ ...request, id });
    });
  return {
    pid: child.pid ?? 0,
    tokenUrl: ready.tokenUrl,
    clientId: ready.clientId,
    clientSecret: ready.clientSecret,
    issueGrants: (count, rotate) => ask({ kind: "issue", count, rotate }),
    stats: () => ask({ kind: "stats" }),
    async stop() {
      const exited = once(child, "exit");
      child.disconnect();
      await exited;
    },
  };
}
