import type { FastifyInstance, FastifyRequest } from "fastify";

/**
 * A request still unanswered at its deadline: a backing service holds it without answering
 * (a PostgreSQL frozen with its VM, dropped packets). Answered like an outage (503), while
 * the work under way goes on: a statement sent to PostgreSQL commits whether or not anyone
 * waits for it.
 */
export class RequestDeadlineError extends Error {
  override name = "RequestDeadlineError";
  constructor(readonly deadlineMs: number) {
    super(`no answer within the request deadline of ${deadlineMs} ms`);
  }
}

/**
 * Answers every request still unanswered `deadlineMs` after it arrived with a
 * RequestDeadlineError, through its scope's error handler (the API's JSON 503, the admin
 * console's page). Fastify checks between steps whether the reply went, so the request goes
 * no further; a hook or handler already running finishes, and what it sends is dropped.
 */
export function answerByDeadline(app: FastifyInstance, deadlineMs: number): void {
  const timers = new WeakMap<FastifyRequest, NodeJS.Timeout>();
  const disarm = async (request: FastifyRequest) => clearTimeout(timers.get(request));
  app.addHook("onRequest", async (request, reply) => {
    const timer = setTimeout(() => {
      if (reply.sent) return;
      // A late handler that sends would make Fastify log that the reply went already, with
      // the raw URL, whose query string may carry an external id. Nothing is left to log for
      // this reply; the request's own logger records the 503.
      reply.log = reply.log.child({}, { level: "silent" });
      reply.send(new RequestDeadlineError(deadlineMs));
    }, deadlineMs);
    timers.set(request, timer);
  });
  app.addHook("onResponse", disarm);
  app.addHook("onRequestAbort", disarm);
}
