/**
 * An error named safely for output a person reads (a CLI's stderr, an import's line
 * report): its name and string `code` ("PrismaClientInitializationError P1001"), never its
 * message, which a driver may fill with a connection string or the values it was given.
 */
export function errorName(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return typeof code === "string" ? `${error.name} ${code}` : error.name;
  }
  return "unknown error";
}
