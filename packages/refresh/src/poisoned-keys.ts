/**
 * Where parsed JSON holds a key that can poison prototypes once merged into another object:
 * `__proto__`, or a `constructor` holding a `prototype` (the keys Fastify's JSON parser
 * refuses). Null when none. A loop, not recursion (nor a JSON.parse reviver, which recurses):
 * a body nested thousands deep would overflow the call stack. Only objects and arrays are
 * visited, and a path is built only for the key found: a megabyte of numbers costs a scan.
 * @returns the key's dot path (`metadata.a.constructor`)
 */
export function poisonedKeyPath(value: unknown): string | null {
  // Every container met, with where it hangs: its parent's index here and its key there.
  const seen: { readonly node: object; readonly parent: number; readonly key: string }[] = [];
  const pending: number[] = [];
  const visit = (node: unknown, parent: number, key: string) => {
    if (typeof node !== "object" || node === null) return;
    pending.push(seen.length);
    seen.push({ node, parent, key });
  };
  const pathOf = (index: number, key: string): string => {
    const keys = [key];
    for (let at = index; at > 0; at = seen[at]?.parent ?? 0) keys.push(seen[at]?.key ?? "");
    return keys.reverse().join(".");
  };
  visit(value, -1, "");
  for (let index = pending.pop(); index !== undefined; index = pending.pop()) {
    const { node } = seen[index] as (typeof seen)[number];
    if (Array.isArray(node)) {
      node.forEach((child: unknown, i) => {
        if (typeof child === "object" && child !== null) visit(child, index, String(i));
      });
      continue;
    }
    if (Object.hasOwn(node, "__proto__")) return pathOf(index, "__proto__");
    const ctor: unknown = Object.hasOwn(node, "constructor")
      ? (node as { constructor: unknown }).constructor
      : undefined;
    if (typeof ctor === "object" && ctor !== null && "prototype" in ctor) {
      return pathOf(index, "constructor");
    }
    for (const key of Object.keys(node)) visit((node as Record<string, unknown>)[key], index, key);
  }
  return null;
}
