// docs/clients.md's code blocks type-check against the package as it is (the plugin block in under
// 30 lines, as the issue asks), so the page cannot show an API the client does not have.
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import ts from "typescript";

const here = path.dirname(fileURLToPath(import.meta.url));  // dist/test
const pkg = path.resolve(here, "../..");
const page = readFileSync(path.resolve(pkg, "../../docs/clients.md"), "utf8");
const blocks = [...page.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);

// The blocks as files of one program (the package's own imports point at its sources); its errors.
function typeCheck(codes: string[]): string[] {
  const dir = path.join(pkg, "dist", "docs-check");
  mkdirSync(dir, { recursive: true });
  const files = codes.map((code, i) => {
    const file = path.join(dir, `block${i}.ts`);
    writeFileSync(file, code
      .replace(/"@playbook\/client\/node"/g, JSON.stringify(path.join(pkg, "src/node.js")))
      .replace(/"@playbook\/client"/g, JSON.stringify(path.join(pkg, "src/index.js"))));
    return file;
  });
  const config = ts.getParsedCommandLineOfConfigFile(path.join(pkg, "tsconfig.json"), {}, {
    ...ts.sys, onUnRecoverableConfigFileDiagnostic: (d) => { throw new Error(String(d.messageText)); },
  })!;
  const program = ts.createProgram(files, { ...config.options, noEmit: true });
  return ts.getPreEmitDiagnostics(program).map((d) =>
    `${d.file ? path.basename(d.file.fileName) : ""}: ${ts.flattenDiagnosticMessageText(d.messageText, "\n")}`);
}

test("docs/clients.md: the plugin is under 30 lines and every block type-checks", () => {
  assert.ok(blocks.length >= 2, "no ts blocks found");
  const plugin = page.slice(page.indexOf("<!-- clients.md: plugin"));
  const first = /```ts\n([\s\S]*?)```/.exec(plugin)![1]!;
  const lines = first.split("\n").filter((l) => l.trim() !== "").length;
  assert.ok(lines < 30, `the plugin block has ${lines} lines`);
  assert.deepEqual(typeCheck(blocks), []);
});
