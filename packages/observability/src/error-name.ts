/**
 * An error named safely for output a person reads (a CLI's stderr, an import's line
 * report): its name and string `code` ("PrismaClientInitializationError P1001"), never its
 * message, which a driver may fill with a connection string or the values it was given.
 * A Redis error reply's code is the word it starts with ("ReplyError WRONGPASS").
 */
export function errorName(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    if (typeof code === "string") return `${error.name} ${code}`;
    const reply = error.name === "ReplyError" ? /^[A-Z]+(?= )/.exec(error.message) : null;
    return reply ? `${error.name} ${reply[0]}` : error.name;
  }
  return "unknown error";
}

/**
 * For a command-line tool: the first error event of each of `sources` (a Redis connection
 * reconnecting, a queue) is told as `label: what: name`, once; the rest are the same
 * failure again. Unheard, ioredis printed each as a raw error with its stack; silenced,
 * the cause (a refused connection, a wrong password) went unsaid.
 */
export function tellFirstError(
  label: string,
  sources: Record<string, { on(event: "error", listener: (error: Error) => void): unknown }>,
): void {
  for (const [what, source] of Object.entries(sources)) {
    let told = false;
    source.on("error", (error) => {
      if (told) return;
      told = true;
      process.stderr.write(`${label}: ${what}: ${errorName(error)}\n`);
    });
  }
}
