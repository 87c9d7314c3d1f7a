/**
 * Where parsed JSON holds a key that can poison prototypes once merged into another object:
 * `__proto__`, or a `constructor` holding a `prototype` (the keys Fastify's JSON parser
 * refuses). Null when none. A loop, not recursion (nor a JSON.parse reviver, which recurses):
 * a body nested thousands deep would overflow the call stack.
 * @returns the key's dot path (`metadata.a.constructor`)
 */
export function poisonedKeyPath(value: unknown): string | null {
  const pending: [unknown, string][] = [[value, ""]];
  for (let entry = pending.pop(); entry !== undefined; entry = pending.pop()) {
    const [node, path] = entry;
    if (typeof node !== "object" || node === null) continue;
    const at = (key: string) => (path === "" ? key : `${path}.${key}`);
    if (Object.hasOwn(node, "__proto__")) return at("__proto__");
    const ctor: unknown = Object.hasOwn(node, "constructor")
      ? (node as { constructor: unknown }).constructor
      : undefined;
    if (typeof ctor === "object" && ctor !== null && "prototype" in ctor) return at("constructor");
    // One by one: spreading an array of a million items would overflow the call stack.
    for (const [key, child] of Object.entries(node)) pending.push([child, at(key)]);
  }
  return null;
}
