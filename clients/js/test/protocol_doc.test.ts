// The client's method table against docs/protocol.md: the same methods with the same roles, and for
// each the same top-level params and result fields; the records the doc lays out in tables (an event,
// an asset, a lead, a filter, a report row, a recommended item) field for field. A method or field
// added to the doc and not to the client (or the other way round) fails here, naming it.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { ErrorCode, METHODS, RECORDS, PlaybookClient, methodOf, type Method, type WebSocketLike } from "../src/index.js";

const doc = readFileSync(new URL("../../../../docs/protocol.md", import.meta.url), "utf8");

interface Section { names: string[]; role: string; text: string }

// "### debug.sleep, debug.fail (admin; only with ...)" and what follows, up to the next heading.
function methodSections(): Section[] {
  const methods = doc.slice(doc.indexOf("\n## Methods"));
  const body = methods.slice(0, methods.indexOf("\n## ", 1));
  return body.split("\n### ").slice(1).map((chunk) => {
    const heading = chunk.slice(0, chunk.indexOf("\n"));
    const m = /^(.*?) \((\w+)/.exec(heading);
    assert.ok(m, `unparsed heading: ${heading}`);
    return { names: m[1]!.split(",").map((s) => s.trim()), role: m[2]!, text: chunk.slice(heading.length) };
  });
}

// Removes parenthesised remarks ("(default 10)", "(sum of `amount` of ...)"), innermost first.
function stripParens(s: string): string {
  let prev;
  do { prev = s; s = s.replace(/\([^()]*\)/g, ""); } while (s !== prev);
  return s;
}

/**
 * The keys of the doc's JSON-like sketches (`{"from"?, "to"?, "filter"?: {"types"?}}`), by the path of
 * the object holding them ("" top level, "filter", "items" for `"items": [{...}]`). A string is a key
 * when it starts an element of an object; values (`"graph": "loading" | "ready"`) are not.
 */
function sketchKeys(sketch: string): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  const stack: { kind: string; path: string; lastKey?: string }[] = [];
  let prev = "";
  const re = /"((?:[^"\\]|\\.)*)"|([{}[\],:|])/g;
  for (let m; (m = re.exec(stripParens(sketch)));) {
    const top = stack[stack.length - 1];
    if (m[1] !== undefined) {
      if (top?.kind === "{" && (prev === "{" || prev === ",")) {
        if (!out.has(top.path)) out.set(top.path, new Set());
        out.get(top.path)!.add(m[1]);
        top.lastKey = m[1];
      }
      prev = "s";
    } else {
      const p = m[2]!;
      if (p === "{" || p === "[") {
        const path = !top ? "" : top.kind === "{" ? (top.lastKey ?? "") : top.path;
        stack.push({ kind: p, path });
      } else if (p === "}" || p === "]") {
        stack.pop();
      }
      prev = p;
    }
  }
  return out;
}

const keysAt = (sketch: string, path = "") => [...(sketchKeys(sketch).get(path) ?? [])].sort();
const sorted = (xs: readonly unknown[]) => [...xs].map(String).sort();
// The `name`s in a table's first column (`| \`rep_id\`, \`recommendation_id\` | ...`).
function tableNames(text: string, header: string): string[] {
  const start = text.indexOf(header);
  assert.ok(start >= 0, `table "${header}" not found`);
  const names: string[] = [];
  for (const line of text.slice(start).split("\n").slice(2)) {
    if (!line.startsWith("|")) break;
    for (const m of line.split("|")[1]!.matchAll(/`([a-z_]+)`/g)) names.push(m[1]!);
  }
  return names.sort();
}
const ticked = (s: string) => [...stripParens(s).matchAll(/`([a-z_]+)`/g)].map((m) => m[1]!).sort();

// "`{params}` (remark) -> `{result}`", or for debug.* "`NAME {params}`" and "Result `{...}`".
function signature(section: Section, name: string): { params: string[]; result: string[] | undefined } {
  if (name === "recommend") {
    const result = /Result: `(\{[^`]*\})`/.exec(section.text);
    return { params: tableNames(section.text, "| param |"), result: keysAt(result![1]!) };
  }
  if (name === "server.stats") {
    const json = /```json\n([\s\S]*?)```/.exec(section.text);
    assert.match(section.text, /Params: `\{\}`/);
    return { params: [], result: Object.keys(JSON.parse(json![1]!)).sort() };
  }
  if (section.names.length > 1) {  // debug.sleep, debug.fail: one list item each
    const item = section.text.split("\n- ").find((x) => x.startsWith("`" + name + " "))!;
    assert.ok(item, `no list item for ${name}`);
    const params = new RegExp("`" + name.replace(".", "\\.") + " (\\{[^`]*\\})`").exec(item)!;
    const result = /Result `(\{[^`]*\})`/.exec(item);
    return { params: keysAt(params[1]!), result: result ? keysAt(result[1]!) : undefined };
  }
  const m = /`(\{[^`]*\})`[^`]{0,60}->\s*`(\{[^`]*\})`/.exec(section.text);
  assert.ok(m, `no "params -> result" line for ${name}`);
  return { params: keysAt(m[1]!), result: keysAt(m[2]!) };
}

const TABLE = "clients/js/src/protocol.ts (MethodTypes, METHODS)";

test("docs/protocol.md and the client have the same methods and roles", () => {
  const documented = methodSections().flatMap((s) => s.names.map((n) => [n, s.role] as const));
  const names = new Set(documented.map(([n]) => n));
  const missing = [...names].filter((n) => !(n in METHODS));
  const extra = Object.keys(METHODS).filter((n) => !names.has(n));
  assert.deepEqual(missing, [], `documented in docs/protocol.md, missing from ${TABLE}: ${missing.join(", ")}`);
  assert.deepEqual(extra, [], `in ${TABLE}, not documented in docs/protocol.md: ${extra.join(", ")}`);
  for (const [name, role] of documented) assert.equal(METHODS[name as Method].role, role, `role of ${name}`);
});

test("every method's params and result fields are the documented ones", () => {
  for (const section of methodSections()) {
    for (const name of section.names) {
      const spec = METHODS[name as Method];
      const sig = signature(section, name);
      assert.deepEqual(sorted(spec.params), sig.params,
                       `params of ${name}: ${TABLE} (actual) vs docs/protocol.md (expected)`);
      assert.deepEqual(sorted(spec.result), sig.result ?? [],
                       `result of ${name}: ${TABLE} (actual) vs docs/protocol.md (expected)`);
    }
  }
});

test("records laid out in the doc have the client's fields", () => {
  const sections = new Map(methodSections().flatMap((s) => s.names.map((n) => [n, s.text] as const)));
  assert.deepEqual(sorted(RECORDS.event), tableNames(sections.get("feedback.record")!, "| field | rules |"));
  assert.deepEqual(sorted(RECORDS.asset), tableNames(sections.get("assets.upsert")!, "| field | type | rules |"));
  const row = (name: string) => sections.get("recommend")!.split("\n").find((l) => l.startsWith(`| \`${name}\``))!;
  assert.deepEqual(sorted(RECORDS.lead), ticked(row("lead").split("|")[3]!));
  assert.deepEqual(sorted(RECORDS.filter), ticked(row("filter").split("|")[3]!));
  const result = /Result: `(\{[^`]*\})`/.exec(sections.get("recommend")!)![1]!;
  assert.deepEqual(sorted(RECORDS.recommended_item), keysAt(result, "items"));
  const assets = sections.get("reports.assets")!;
  const rowText = assets.slice(assets.indexOf("Row:"), assets.indexOf("Rows are"));
  assert.deepEqual(sorted(RECORDS.asset_row), ticked(rowText));
});

test("the error codes are the documented ones", () => {
  const errors = doc.slice(doc.indexOf("### Errors"), doc.indexOf("## Methods"));
  const codes = [...errors.matchAll(/^\| (-\d+) \|/gm)].map((m) => Number(m[1])).sort();
  assert.ok(codes.length >= 8, "the Errors table was not found");
  assert.deepEqual(codes, Object.values(ErrorCode).sort());
});

test("the sketch reader finds keys, not values or remarks", () => {
  assert.deepEqual(keysAt(`{"a"? (default "x"), "b": "v" | "w", "c": [{"d"}], "e"?: {"f"}}`), ["a", "b", "c", "e"]);
  assert.deepEqual(keysAt(`{"c": [{"d", "g": 1}]}`, "c"), ["d", "g"]);
});

test("every method of the table is a function of the client object", () => {
  const idle: WebSocketLike = { readyState: 0, send() {}, close() {}, onopen: null, onclose: null, onerror: null, onmessage: null };
  const client = new PlaybookClient({ url: "ws://127.0.0.1:1/v1", webSocket: () => idle });
  try {
    for (const m of Object.keys(METHODS) as Method[]) assert.equal(typeof methodOf(client, m), "function", m);
  } finally {
    client.close();
  }
});
