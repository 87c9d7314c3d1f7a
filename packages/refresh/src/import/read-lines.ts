/** One line of an import file: its text, or why it could not be read (never its content). */
export type FileLine = { readonly text: string } | { readonly error: string };

/**
 * Splits a byte stream into lines (`\n`, a `\r` before it dropped) without ever holding more
 * than `maxBytes` of one: a longer line is skipped to its end and reported, so a hostile or
 * broken file (gigabytes without a newline) cannot exhaust memory. Each line is decoded as
 * strict UTF-8: bytes that are not UTF-8 make the line an error instead of U+FFFD in a token.
 */
export async function* readLines(
  input: AsyncIterable<Buffer>,
  maxBytes: number,
): AsyncGenerator<FileLine> {
  const decoder = new TextDecoder("utf-8", { fatal: true });
  let parts: Buffer[] = [];
  let size = 0;
  let tooLong = false;
  const add = (piece: Buffer) => {
    if (tooLong) return;
    if (size + piece.length > maxBytes) {
      tooLong = true;
      parts = [];
      return;
    }
    parts.push(piece);
    size += piece.length;
  };
  const take = (): FileLine => {
    const bytes = Buffer.concat(parts);
    const skipped = tooLong;
    parts = [];
    size = 0;
    tooLong = false;
    if (skipped) return { error: `longer than ${maxBytes} bytes` };
    const end = bytes.at(-1) === 0x0d ? bytes.length - 1 : bytes.length;
    try {
      return { text: decoder.decode(bytes.subarray(0, end)) };
    } catch {
      return { error: "not valid UTF-8" };
    }
  };
  for await (const chunk of input) {
    let start = 0;
    for (let end = chunk.indexOf(0x0a); end !== -1; end = chunk.indexOf(0x0a, start)) {
      add(chunk.subarray(start, end));
      yield take();
      start = end + 1;
    }
    add(chunk.subarray(start));
  }
  if (size > 0 || tooLong) yield take();
}
