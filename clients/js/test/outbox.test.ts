// The durable feedback outbox against the real daemon: events recorded while the daemon is down,
// stopped, killed mid-batch or restarted, and by a client process that restarts, all arrive exactly
// once (each event_id once in leads.get's history; reports.assets counts each use once).
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { after, before, test } from "node:test";

import {
  FeedbackOutbox, FileOutboxStore, MemoryOutboxStore, createNodeClient, nodeEventId, type FeedbackEvent,
  type PlaybookClient,
} from "../src/node.js";
import { ASSETS, Daemon, TOKENS } from "./daemon.js";

const daemon = new Daemon();
const dir = mkdtempSync(path.join(tmpdir(), "playbook-outbox-test-"));
let crm: PlaybookClient;
let marketing: PlaybookClient;
const fast = { reconnectInitialMs: 50, reconnectMaxMs: 300 };

before(async () => {
  await daemon.start();
  crm = createNodeClient({ url: daemon.url, token: TOKENS.crm, ...fast });
  marketing = createNodeClient({ url: daemon.url, token: TOKENS.marketing, ...fast });
  await marketing.assets.upsert({ assets: ASSETS });
});

after(async () => {
  crm.close();
  marketing.close();
  await daemon.dispose();
  rmSync(dir, { recursive: true, force: true });
});

const outboxOptions = { retryInitialMs: 50, retryMaxMs: 300, newId: nodeEventId };

// Each recorded event_id exactly once in the lead's history, and nothing else of those types.
async function assertExactlyOnce(leadId: string, recorded: FeedbackEvent[]): Promise<void> {
  const { history } = await crm.leads.get({ id: leadId });
  const ids = history.filter((e) => e.type !== "shown").map((e) => e.event_id);
  assert.equal(new Set(ids).size, ids.length, "an event_id twice in the history");
  assert.deepEqual([...ids].sort(), recorded.map((e) => e.event_id).sort());
}

async function usedCount(assetId: string): Promise<number> {
  const { rows } = await marketing.reports.assets({ limit: 100 });
  return rows.find((r) => r.asset_id === assetId)?.used ?? 0;
}

test("record() makes the id and ts at once and refuses what the daemon would refuse", async () => {
  const outbox = new FeedbackOutbox(crm, new MemoryOutboxStore(), outboxOptions);
  const before = Date.now();
  const e = await outbox.used("lead-ids", "roi-calc", { rep_id: "rep-1" });
  assert.match(e.event_id, /^[0-9a-f-]{36}$/);
  assert.ok(e.ts! >= before && e.ts! <= Date.now());
  await assert.rejects(outbox.record({ type: "used", lead_id: "lead-ids" } as any), /asset_id/);
  await assert.rejects(outbox.record({ type: "won", lead_id: "x", stage: "evaluation" } as any), /stage/);
  await assert.rejects(outbox.record({ type: "shown", lead_id: "x" } as any), /type/);
  await outbox.drain(5000);
  await assertExactlyOnce("lead-ids", [e]);
  await outbox.close();
});

test("daemon stopped and restarted while events are queued: every event arrives exactly once", async () => {
  const store = new FileOutboxStore(path.join(dir, "restart.jsonl"));
  const outbox = new FeedbackOutbox(crm, store, outboxOptions);
  const lead = "lead-restart";
  const recorded: FeedbackEvent[] = [];
  const usedBefore = await usedCount("case-price");
  recorded.push(await outbox.stageChanged(lead, "evaluation"));
  for (let i = 0; i < 10; i++) recorded.push(await outbox.used(lead, "case-price"));
  await outbox.drain(10000);

  await daemon.stop();
  for (let i = 0; i < 15; i++) recorded.push(await outbox.used(lead, "case-price"));
  recorded.push(await outbox.dismissed(lead, "vs-competitor", "不相关"));
  recorded.push(await outbox.won(lead, 120000));
  assert.equal(outbox.pending, 17);
  await new Promise((r) => setTimeout(r, 300));  // retries meanwhile find no daemon
  assert.equal(outbox.pending, 17);

  await daemon.start();
  await outbox.drain(15000);
  await assertExactlyOnce(lead, recorded);
  assert.equal(await usedCount("case-price"), usedBefore + 25);
  await outbox.close();
});

test("daemon killed while batches are in flight: nothing lost, nothing counted twice", async () => {
  const store = new FileOutboxStore(path.join(dir, "kill.jsonl"));
  const outbox = new FeedbackOutbox(crm, store, { ...outboxOptions, batchSize: 20, flushDelayMs: 0 });
  const lead = "lead-kill";
  const recorded: FeedbackEvent[] = [];
  const usedBefore = await usedCount("roi-calc");
  const killed = (async () => {
    while (outbox.pending === 0 || recorded.length < 100) await new Promise((r) => setTimeout(r, 2));
    await daemon.kill();
  })();
  for (let i = 0; i < 300; i++) recorded.push(await outbox.used(lead, "roi-calc"));
  await killed;
  assert.ok(outbox.pending > 0, "everything was sent before the kill: the test proved nothing");
  await daemon.start();
  await outbox.drain(20000);
  await assertExactlyOnce(lead, recorded);
  assert.equal(await usedCount("roi-calc"), usedBefore + 300);
  await outbox.close();
});

test("a client process that restarts sends what it had stored, and a resent batch is counted once", async () => {
  const file = path.join(dir, "process.jsonl");
  const lead = "lead-process";
  const recorded: FeedbackEvent[] = [];
  await daemon.stop();
  {
    const first = new FeedbackOutbox(crm, new FileOutboxStore(file), outboxOptions);
    for (let i = 0; i < 5; i++) recorded.push(await first.viewed(lead, "vs-competitor"));
    await first.close();  // the process ends with 5 events unsent
  }
  await daemon.start();
  // The daemon got some of them before the "crash" (an answer lost on the way): they are resent.
  await crm.feedback.record({ events: recorded.slice(0, 2) });
  let duplicates = 0;
  const second = new FeedbackOutbox(crm, new FileOutboxStore(file),
                                    { ...outboxOptions, onSent: (_, r) => { duplicates += r.duplicates; } });
  await second.open();
  assert.equal(second.pending, 5);
  await second.drain(10000);
  assert.equal(duplicates, 2);
  await assertExactlyOnce(lead, recorded);
  await second.close();
  const third = new FeedbackOutbox(crm, new FileOutboxStore(file), outboxOptions);
  await third.open();
  assert.equal(third.pending, 0, "acknowledged events were sent again by the next process");
  await third.close();
});

test("an event the daemon refuses is dropped and reported, the rest go on", async () => {
  const rejected: string[] = [];
  const outbox = new FeedbackOutbox(crm, new MemoryOutboxStore(),
                                    { ...outboxOptions, onRejected: (e) => rejected.push(e.event_id) });
  const lead = "lead-rejected";
  const good1 = await outbox.used(lead, "roi-calc");
  // 2 days ahead: valid for the client's check, refused by the daemon ("not more than a day in the future").
  const bad = await outbox.used(lead, "roi-calc", { ts: Date.now() + 2 * 86400000 });
  const good2 = await outbox.used(lead, "case-price");
  await outbox.drain(10000);
  assert.deepEqual(rejected, [bad.event_id]);
  await assertExactlyOnce(lead, [good1, good2]);
  await outbox.close();
});
