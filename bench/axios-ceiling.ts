// The HTTP ceiling of `npm run bench -- scaling`: bare axios POSTs of refresh_token grants
// to the mock provider, from one and then two client processes of their own, like the
// worker processes they are compared with. Two clients on this box show how far any
// second process can add to the first while the provider, Redis and PostgreSQL share the
// same cores: the box's own bound on "2 workers vs 1". The parent forks this file and
// drives it over IPC (`startAxiosClients` below runs in the parent).
import { type ChildProcess, fork } from "node:child_process";
import { once } from "node:events";
import { Agent } from "node:http";
import { fileURLToPath } from "node:url";
import axios from "axios";

type Request =
  | { readonly kind: "setup"; readonly tokenUrl: string; readonly bodies: readonly string[] }
  | { readonly kind: "post"; readonly total: number };

type Reply = { readonly kind: "ready" } | { readonly kind: "done" } | { readonly error: string };

if (process.send && process.argv[2] === "--child") {
  const send = process.send.bind(process);
  let post: (total: number) => Promise<void> = async () => {
    throw new Error("not set up");
  };
  process.on("message", (message: Request) => {
    if (message.kind === "setup") {
      post = postLoop(message.tokenUrl, message.bodies);
      send({ kind: "ready" } satisfies Reply);
      return;
    }
    post(message.total).then(
      () => send({ kind: "done" } satisfies Reply),
      (error: Error) => send({ error: error.message } satisfies Reply),
    );
  });
  process.on("disconnect", () => process.exit(0));
}

/**
 * `bodies.length` loops POSTing their body again and again (non-rotating grants), with the
 * egress client's axios settings: keep-alive agent with a socket per loop, no proxy, no
 * redirects, the answer read as text and parsed.
 */
function postLoop(tokenUrl: string, bodies: readonly string[]) {
  const http = axios.create({
    httpAgent: new Agent({ keepAlive: true, maxSockets: bodies.length }),
    proxy: false,
    maxRedirects: 0,
    responseType: "text",
    transformResponse: [],
    validateStatus: () => true,
  });
  return async (total: number) => {
    let started = 0;
    await Promise.all(
      bodies.map(async (body) => {
        while (started < total) {
          started += 1;
          const response = await http.post<string>(tokenUrl, body, {
            headers: { "content-type": "application/x-www-form-urlencoded" },
          });
          if (response.status !== 200) throw new Error(`provider answered ${response.status}`);
          JSON.parse(response.data);
        }
      }),
    );
  };
}

export interface AxiosClient {
  readonly pid: number;
  /** Sends `total` POSTs, `bodies.length` at a time; resolves when all are answered. */
  post(total: number): Promise<void>;
  stop(): Promise<void>;
}

/** Forks one client process per entry of `bodiesPerClient`; resolves once all are set up. */
export async function startAxiosClients(
  tokenUrl: string,
  bodiesPerClient: readonly (readonly string[])[],
): Promise<AxiosClient[]> {
  return Promise.all(bodiesPerClient.map((bodies) => startClient(tokenUrl, bodies)));
}

async function startClient(tokenUrl: string, bodies: readonly string[]): Promise<AxiosClient> {
  const child: ChildProcess = fork(fileURLToPath(import.meta.url), ["--child"], {
    execArgv: ["--import", "tsx"],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const reply = async (): Promise<void> => {
    const [message] = (await Promise.race([
      once(child, "message"),
      once(child, "exit").then(([code]) => [{ error: `axios client exited (${code})` }]),
    ])) as [Reply];
    if ("error" in message) throw new Error(message.error);
  };
  const ready = reply();
  child.send({ kind: "setup", tokenUrl, bodies } satisfies Request);
  await ready;
  return {
    pid: child.pid ?? 0,
    async post(total) {
      const done = reply();
      child.send({ kind: "post", total } satisfies Request);
      await done;
    },
    async stop() {
      if (child.exitCode !== null) return;
      const exited = once(child, "exit");
      child.disconnect();
      await exited;
    },
  };
}
