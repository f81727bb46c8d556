// The client against the real daemon: typed calls, errors, roles and tokens, per-call timeouts,
// back-pressure and reconnection.
import assert from "node:assert/strict";
import { createServer, type AddressInfo, type Socket } from "node:net";
import { after, before, test } from "node:test";

import { PlaybookError, createNodeClient, type PlaybookClient } from "../src/node.js";
import { ASSETS, Daemon, TOKENS } from "./daemon.js";

// A token with a space: legal in the config, not as a subprotocol.
const SPACED = "spaced token 1";
const daemon = new Daemon(`[[auth.tokens]]\nrole = "crm"\ntoken = "${SPACED}"\nname = "spaced"\n`);
const clients: PlaybookClient[] = [];
function client(token: string, extra: object = {}): PlaybookClient {
  const c = createNodeClient({ url: daemon.url, token, reconnectInitialMs: 50, reconnectMaxMs: 400, ...extra });
  clients.push(c);
  return c;
}

before(async () => {
  await daemon.start();
  const marketing = client(TOKENS.marketing);
  const r = await marketing.assets.upsert({ assets: ASSETS });
  assert.equal(r.upserted, ASSETS.length);
});

after(async () => {
  for (const c of clients) c.close();
  await daemon.dispose();
});

test("typed calls: recommend, leads.get, assets.get, reports.assets", async () => {
  const crm = client(TOKENS.crm);
  const rec = await crm.recommend({ lead: { id: "lead-typed", stage: "evaluation", context: "客户说太贵了" }, k: 2 });
  assert.match(rec.recommendation_id, /^rec-/);
  assert.equal(rec.items.length, 2);
  for (const item of rec.items) {
    assert.ok(ASSETS.some((a) => a.id === item.asset_id));
    assert.ok(Array.isArray(item.reasons));
  }
  const lead = await crm.leads.get({ id: "lead-typed" });
  assert.equal(lead.stage, "evaluation");
  assert.equal(lead.history.filter((e) => e.type === "shown").length, 2);
  const got = await crm.assets.get({ ids: ["roi-calc", "nope"] });
  assert.deepEqual(got.missing, ["nope"]);
  assert.equal(got.assets[0]!.vector_source, "embedder");
  const report = await client(TOKENS.marketing).reports.assets({ stage: "evaluation" });
  assert.ok(report.totals.shown >= 2);
});

test("errors carry the daemon's code, field and reason; roles are enforced", async () => {
  const crm = client(TOKENS.crm);
  await assert.rejects(crm.recommend({ lead: { id: "x", stage: "closing" } }), (e: PlaybookError) => {
    assert.equal(e.code, -32602);
    assert.equal(e.data?.field, "lead.stage");
    assert.equal(e.retryable, false);
    return true;
  });
  await assert.rejects(crm.reports.assets(), (e: PlaybookError) => e.code === -32001 && e.data?.field === "method");
  await assert.rejects(crm.leads.get({ id: "never-seen" }), (e: PlaybookError) => e.code === -32002);
});

test("a wrong token never connects: calls time out", async () => {
  const bad = client("not-a-token", { timeoutMs: 600 });
  await assert.rejects(bad.leads.get({ id: "x" }), (e: PlaybookError) => e.code === "timeout" && e.retryable);
  assert.notEqual(bad.state, "open");
});

test("a token outside token characters goes in the Authorization header", async () => {
  const spaced = client(SPACED);
  await assert.rejects(spaced.leads.get({ id: "never-seen" }), (e: PlaybookError) => e.code === -32002);
  await assert.rejects(spaced.reports.assets(), (e: PlaybookError) => e.code === -32001);
});

test("per-call timeout: a slow call fails alone, the connection goes on", async () => {
  const admin = client(TOKENS.admin);
  const slow = admin.debug.sleep({ ms: 1500 }, { timeoutMs: 150 });
  await assert.rejects(slow, (e: PlaybookError) => e.code === "timeout");
  assert.deepEqual(await admin.debug.sleep({ ms: 0 }), { slept_ms: 0 });
});

test("back-pressure: at most maxInFlight sent, at most maxQueued waiting, the rest refused at once", async () => {
  const admin = client(TOKENS.admin, { maxInFlight: 2, maxQueued: 3 });
  await admin.waitOpen();
  const calls = [0, 1, 2, 3, 4].map(() => admin.debug.sleep({ ms: 200 }));
  assert.equal(admin.inFlightCount, 2);
  assert.equal(admin.queuedCount, 3);
  await assert.rejects(admin.debug.sleep({ ms: 0 }), (e: PlaybookError) => e.code === "queue_full");
  let peak = 0;
  const watch = setInterval(() => { peak = Math.max(peak, admin.inFlightCount); }, 5);
  const results = await Promise.all(calls);
  clearInterval(watch);
  assert.equal(results.length, 5);
  assert.ok(peak <= 2, `peak in flight ${peak}`);
});

test("reconnects after a dropped connection; in-flight calls fail as retryable", async () => {
  const admin = client(TOKENS.admin);
  await admin.waitOpen();
  let closes = 0;
  admin.on("close", () => { closes++; });
  const pending = admin.debug.sleep({ ms: 500 });
  await new Promise((r) => setTimeout(r, 50));
  admin.reconnectNow();
  await assert.rejects(pending, (e: PlaybookError) => e.code === "disconnected" && e.retryable);
  assert.equal(closes, 1);
  assert.deepEqual(await admin.debug.sleep({ ms: 0 }), { slept_ms: 0 });
});

test("notifications reach listeners", async () => {
  const admin = client(TOKENS.admin);
  const seen: unknown[] = [];
  admin.on("notification", (n) => { if (n.method === "debug.progress") seen.push(n.params); });
  await admin.debug.sleep({ ms: 30, notify: 3 });
  assert.equal(seen.length, 3);
});

test("close() fails pending calls with 'closed' and stops reconnecting", async () => {
  const admin = client(TOKENS.admin);
  await admin.waitOpen();
  const p = admin.debug.sleep({ ms: 300 });
  admin.close();
  await assert.rejects(p, (e: PlaybookError) => e.code === "closed");
  await assert.rejects(admin.debug.sleep({}), (e: PlaybookError) => e.code === "closed");
  assert.equal(admin.state, "closed");
});

test("a handshake that never completes is abandoned and retried; closing while connecting is quiet", async () => {
  const sockets: Socket[] = [];
  const silent = createServer((s) => { sockets.push(s); });  // accepts, never answers
  await new Promise<void>((r) => silent.listen(0, "127.0.0.1", () => r()));
  const port = (silent.address() as AddressInfo).port;
  const c = createNodeClient({ url: `ws://127.0.0.1:${port}/v1`, connectTimeoutMs: 100, reconnectInitialMs: 10,
                               reconnectMaxMs: 20, timeoutMs: 2000 });
  let closes = 0;
  c.on("close", () => { closes++; });
  const call = c.leads.get({ id: "x" }, { timeoutMs: 450 });
  await assert.rejects(call, (e: PlaybookError) => e.code === "timeout");
  assert.ok(closes >= 2, `${closes} attempts abandoned`);
  assert.ok(sockets.length >= 2, `${sockets.length} connections`);
  await new Promise((r) => setTimeout(r, 30));
  c.close();  // most likely while connecting again
  await new Promise((r) => setTimeout(r, 50));
  for (const s of sockets) s.destroy();
  await new Promise((r) => silent.close(() => r(undefined)));
});
