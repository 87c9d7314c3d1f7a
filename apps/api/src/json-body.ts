import { poisonedKeyPath } from "@evergreen/refresh";
import type { FastifyInstance } from "fastify";
import { HttpError } from "./http-errors";

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });
const CHARSET = /;\s*charset\s*=\s*("[^"]*"|[^;\s]*)/i;

/**
 * JSON request bodies (SPEC §3: JSON in, a 400 naming what is wrong). Parsed by Fastify's
 * parser, which refuses a `__proto__` key and a `constructor` holding a `prototype` (either
 * can poison an object's prototype once merged into another), but calls any refusal "not
 * valid JSON": a body that is valid JSON is told which key it may not carry.
 */
export function parseJsonBodies(app: FastifyInstance): void {
  // JSON in (SPEC §3): any other body is a 415, not a string for validation.
  app.removeContentTypeParser("text/plain");
  const parseJson = app.getDefaultJsonParser("error", "error");
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "buffer" }, (request, body, done) => {
    // JSON between systems is UTF-8 (RFC 8259 §8.1): a body declared in another charset
    // would be read as what it is not, so it is refused as a media type this API does not take.
    const charset = CHARSET.exec(request.headers["content-type"] ?? "")?.[1];
    if (charset !== undefined && !/^"?utf-?8"?$/i.test(charset)) {
      return done(
        new HttpError(415, "unsupported_media_type", "content-type: JSON bodies are UTF-8"),
        undefined,
      );
    }
    // Bytes that are no UTF-8 are refused, not read as U+FFFD: "jos\xE9" and "jos\xE8"
    // (Latin-1) would be one external id, and a second user's tokens would overwrite the
    // first's.
    let text: string;
    try {
      text = strictUtf8.decode(body as Buffer);
    } catch {
      return done(new HttpError(400, "invalid_request", "body: not valid UTF-8"), undefined);
    }
    // An empty body under a JSON content type is no body, not bad JSON: clients that set the
    // header on every request (POST .../refresh, DELETE) must not get a 400 for it.
    if (text === "") return done(null, undefined);
    parseJson(request, text, (error, parsed) => {
      const path = error ? forbiddenKeyPath(text) : null;
      if (path === null) return done(error, parsed);
      // A path hundreds of thousands of levels deep is not sent back whole.
      const shown = path.length > 200 ? `…${path.slice(-200)}` : path;
      done(new HttpError(400, "invalid_request", `${shown}: a key this API does not accept`));
    });
  });
}

/** Where a body that is valid JSON carries a key that can poison prototypes; null if none. */
function forbiddenKeyPath(text: string): string | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  return poisonedKeyPath(value);
}
