// Node: a WebSocket made with `ws` (Node 18 and 20 have no global one) and a file-backed outbox store.
// Browsers import "@playbook/client" only; this entry point needs Node and the `ws` package.
import { randomUUID } from "node:crypto";
import { promises as fs } from "node:fs";
import * as path from "node:path";
import WebSocket from "ws";

import { PlaybookClient, type ClientOptions, type WebSocketFactory, type WebSocketLike } from "./client.js";
import type { OutboxStore } from "./outbox.js";
import type { FeedbackEvent } from "./protocol.js";

export * from "./index.js";

/** Opens sockets with `ws`; a token that is not made of token characters goes in `Authorization`. */
export const wsFactory: WebSocketFactory = (url, protocols, token) => {
  const ws = new WebSocket(url, protocols, {
    headers: token !== undefined ? { Authorization: `Bearer ${token}` } : {},
    maxPayload: 64 * 1024 * 1024,  // the daemon's max_response_bytes
  });
  ws.on("error", () => {});  // reported through onclose; an unheard "error" would throw
  return ws as unknown as WebSocketLike;
};

/** A client over `ws`. */
export function createNodeClient(options: ClientOptions): PlaybookClient {
  return new PlaybookClient({ webSocket: wsFactory, ...options });
}

/** Event ids from node:crypto (Node 18 has no global crypto). */
export const nodeEventId = (): string => randomUUID();

/**
 * The outbox in one file: a journal of JSON lines, `{"add":EVENT}` appended and fsync'd before
 * append() resolves, `{"ack":[ids]}` appended (not synced: a lost ack only resends) when acknowledged.
 * load() reads it (a torn last line from a crash is skipped) and rewrites it with only the unacknowledged
 * events (written to a temporary file, synced and renamed over it); it is rewritten so again once
 * acknowledged lines outnumber the live ones. One process at a time per file.
 */
export class FileOutboxStore implements OutboxStore {
  private readonly file: string;
  private handle: fs.FileHandle | undefined;
  private readonly live = new Map<string, FeedbackEvent>();
  private dead = 0;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(file: string) { this.file = file; }

  async load(): Promise<FeedbackEvent[]> {
    let text = "";
    try {
      text = await fs.readFile(this.file, "utf8");
    } catch (e: any) {
      if (e.code !== "ENOENT") throw e;
    }
    for (const line of text.split("\n")) {
      if (!line) continue;
      let rec: any;
      try { rec = JSON.parse(line); } catch { continue; }  // torn by a crash mid-write: never acknowledged
      if (rec && rec.add && typeof rec.add.event_id === "string") this.live.set(rec.add.event_id, rec.add);
      else if (rec && Array.isArray(rec.ack)) for (const id of rec.ack) this.live.delete(id);
    }
    await this.compact();
    return [...this.live.values()];
  }

  append(events: FeedbackEvent[]): Promise<void> {
    return this.serial(async () => {
      const h = await this.open();
      await h.write(events.map((e) => JSON.stringify({ add: e }) + "\n").join(""));
      await h.datasync();
      for (const e of events) this.live.set(e.event_id, e);
    });
  }

  remove(ids: string[]): Promise<void> {
    return this.serial(async () => {
      const h = await this.open();
      await h.write(JSON.stringify({ ack: ids }) + "\n");
      for (const id of ids) if (this.live.delete(id)) this.dead++;
      if (this.dead > 1000 && this.dead > this.live.size) await this.compact();
    });
  }

  close(): Promise<void> {
    return this.serial(async () => {
      await this.handle?.close();
      this.handle = undefined;
    });
  }

  private serial<T>(f: () => Promise<T>): Promise<T> {
    const r = this.chain.then(f);
    this.chain = r.catch(() => {});
    return r;
  }

  private async open(): Promise<fs.FileHandle> {
    if (!this.handle) this.handle = await fs.open(this.file, "a");
    return this.handle;
  }

  private async compact(): Promise<void> {
    await this.handle?.close();
    this.handle = undefined;
    const tmp = this.file + ".tmp";
    const h = await fs.open(tmp, "w");
    try {
      await h.write([...this.live.values()].map((e) => JSON.stringify({ add: e }) + "\n").join(""));
      await h.sync();
    } finally {
      await h.close();
    }
    await fs.rename(tmp, this.file);
    try {  // make the rename durable
      const dir = await fs.open(path.dirname(path.resolve(this.file)), "r");
      try { await dir.sync(); } finally { await dir.close(); }
    } catch { /* some file systems refuse fsync on a directory */ }
    this.dead = 0;
  }
}
