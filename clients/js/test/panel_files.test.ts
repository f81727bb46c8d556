// The panel's modules the daemon serves (server/web/panel/*.js, compiled into playbookd) are this
// package's compiled output, copied by `npm run build:panel`: a change to the sources without a
// fresh copy fails here (the C++ build needs no Node, so the copies are committed).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const pkg = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
// @ts-ignore: a plain .mjs script, shared with the copy step
const { MODULES, header } = await import("../../scripts/copy-panel.mjs") as
  { MODULES: string[]; header: (m: string) => string };

test("server/web/panel/ holds the current build of the panel's modules (npm run build:panel)", () => {
  for (const m of MODULES) {
    const built = readFileSync(path.join(pkg, "dist/src", m + ".js"), "utf8");
    const served = readFileSync(path.join(pkg, "../../server/web/panel", m + ".js"), "utf8");
    assert.ok(header(m) + built === served, `server/web/panel/${m}.js differs from the build: run npm run build:panel in clients/js`);
  }
});

test("the panel's modules import only each other (what the daemon serves)", () => {
  for (const m of MODULES) {
    const code = readFileSync(path.join(pkg, "dist/src", m + ".js"), "utf8");
    for (const [, spec] of code.matchAll(/(?:^|\n)(?:import|export)[^"'\n]*from\s*["']([^"']+)["']/g)) {
      assert.ok(MODULES.some((x) => spec === `./${x}.js`), `${m}.js imports ${spec}`);
    }
  }
});
