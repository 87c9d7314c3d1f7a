import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from "node:dns";
import { type ClientRequestArgs, Agent as HttpAgent } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import { isIP, type LookupFunction, Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { EgressPolicy } from "./egress-policy";

/** Every address a name resolves to: `dns.lookup` with `all: true`, or a stand-in in tests. */
export type ResolveAll = (
  hostname: string,
  options: LookupOptions,
  callback: (err: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void,
) => void;

export const resolveWithDns: ResolveAll = (hostname, options, callback) =>
  dnsLookup(hostname, { ...options, all: true }, callback);

/** A connection the egress policy does not allow; never leaves the egress client. */
export class EgressRefusedError extends Error {
  override name = "EgressRefusedError";
  readonly code = "EGRESS_REFUSED";
  constructor() {
    super("the egress policy refuses this destination");
  }
}

type Connect = (
  options: ClientRequestArgs,
  callback?: (err: Error | null, stream: Duplex) => void,
) => Duplex | null | undefined;

/**
 * Checks a connection's destination where it is opened: an IP literal before connecting
 * (Node skips the lookup for those), a name through a lookup that refuses it if any of
 * its addresses is refused. The check therefore sees the very address the socket goes
 * to, so DNS rebinding cannot slip past it, and a keep-alive socket was checked when opened.
 */
function guardedConnect(policy: EgressPolicy, resolve: ResolveAll, connect: Connect): Connect {
  return (options, callback) => {
    const host = options.host ?? "localhost";
    const port = Number(options.port);
    if (!policy.allowsName(host, port)) {
      if (isIP(host) !== 0) {
        if (!policy.allowsAddress(host, port)) {
          process.nextTick(() => callback?.(new EgressRefusedError(), undefined as never));
          return undefined;
        }
      } else {
        (options as { lookup?: LookupFunction }).lookup = guardedLookup(policy, resolve, port);
      }
    }
    const socket = connect(options, callback);
    if (socket instanceof Socket) keepAliveOnce(socket);
    return socket;
  };
}

/**
 * Turns TCP keep-alive on once per connection. Node's agent turns it on again each time a
 * socket goes back to its pool, and axios once more for each request: each is a system
 * call, together 3-4 % of a worker's CPU under load (docs/scaling.md), for a setting that
 * matters only while a connection sits idle, which IDLE_SOCKET_MS ends anyway. The first
 * call's delay stays (axios's 60 s; the agent's 1 s asks again each time); turning it off
 * still goes through.
 */
function keepAliveOnce(socket: Socket): void {
  const setKeepAlive = socket.setKeepAlive.bind(socket);
  let on = false;
  socket.setKeepAlive = (enable = false, initialDelay?: number) => {
    if (enable && on) return socket;
    on = enable;
    return setKeepAlive(enable, initialDelay);
  };
}

function guardedLookup(policy: EgressPolicy, resolve: ResolveAll, port: number): LookupFunction {
  return (hostname, options, callback) => {
    resolve(hostname, options, (err, addresses) => {
      if (err) return callback(err, "");
      if (
        addresses.length === 0 ||
        addresses.some(({ address }) => !policy.allowsAddress(address, port))
      ) {
        return callback(new EgressRefusedError(), "");
      }
      if (options.all) return callback(null, addresses);
      const [first] = addresses as [LookupAddress];
      callback(null, first.address, first.family);
    });
  };
}

export interface AgentOptions {
  readonly policy: EgressPolicy;
  readonly maxSockets: number;
  /** @defaultValue dns.lookup with `all: true` */
  readonly resolve?: ResolveAll;
}

/**
 * How long a kept-alive connection may sit idle before we close it: under the idle limits
 * servers commonly set (Node's 5 s; load balancers 60 s and more), so that we close an idle
 * connection before the server does. A request written onto a connection the server is
 * closing meets a reset although the server never read it, and a reset after the whole
 * request was sent reads as a lost answer (`interrupted`, docs/adr/0016).
 */
const IDLE_SOCKET_MS = 4_000;

/** Keep-alive http and https agents whose every new connection the policy checks. */
export function guardedAgents({ policy, maxSockets, resolve = resolveWithDns }: AgentOptions) {
  // Node applies `timeout` to sockets in the free pool (destroyed when it fires); a request
  // in flight has its own time limit (EgressClient).
  const options = { keepAlive: true, maxSockets, timeout: IDLE_SOCKET_MS };
  const httpAgent = new HttpAgent(options);
  const httpsAgent = new HttpsAgent(options);
  httpAgent.createConnection = guardedConnect(
    policy,
    resolve,
    httpAgent.createConnection.bind(httpAgent),
  );
  httpsAgent.createConnection = guardedConnect(
    policy,
    resolve,
    httpsAgent.createConnection.bind(httpsAgent),
  );
  return { httpAgent, httpsAgent };
}
