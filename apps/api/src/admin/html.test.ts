import { describe, expect, it } from "vitest";
import { escapeHtml, html } from "./html";

describe("html", () => {
  it("escapes every interpolated string, in text and in attributes", () => {
    const payload = `"><script>alert(1)</script><img src=x onerror='alert(2)'>`;
    const out = html`<a title="${payload}">${payload}</a>`.text;
    expect(out).not.toContain("<script>");
    expect(out).not.toContain("<img");
    expect(out).toBe(
      `<a title="${escapeHtml(payload)}">&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=&#39;alert(2)&#39;&gt;</a>`,
    );
  });

  it("keeps nested templates as markup and escapes the values inside them", () => {
    const rows = ["<b>", "&"].map((cell) => html`<td>${cell}</td>`);
    expect(html`<tr>${rows}</tr>`.text).toBe("<tr><td>&lt;b&gt;</td><td>&amp;</td></tr>");
  });

  it("renders nothing for null, undefined and false, and numbers as text", () => {
    expect(html`${null}${undefined}${false}${0}${12.5}`.text).toBe("012.5");
  });
});
