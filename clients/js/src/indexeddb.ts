// The browser's outbox store: one IndexedDB object store, written with strict durability where the
// browser offers it (Chromium), so an event survives a closed tab, a reload and a crash of the browser.
import type { OutboxStore } from "./outbox.js";
import type { FeedbackEvent } from "./protocol.js";

interface Row { event_id: string; seq: number; event: FeedbackEvent }

function done(req: IDBRequest | IDBTransaction): Promise<any> {
  return new Promise((resolve, reject) => {
    if ("oncomplete" in req) {
      req.oncomplete = () => resolve(undefined);
      req.onerror = () => reject(req.error);
      req.onabort = () => reject(req.error ?? new Error("IndexedDB transaction aborted"));
    } else {
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    }
  });
}

/** Events in the object store "events" of database `name` (default "playbook-outbox"), keyed by event_id. */
export class IndexedDbOutboxStore implements OutboxStore {
  private readonly name: string;
  private db: IDBDatabase | undefined;
  private seq = 0;

  constructor(name = "playbook-outbox") { this.name = name; }

  async load(): Promise<FeedbackEvent[]> {
    const open = indexedDB.open(this.name, 1);
    open.onupgradeneeded = () => open.result.createObjectStore("events", { keyPath: "event_id" });
    this.db = await done(open);
    const rows: Row[] = await done(this.tx("readonly").objectStore("events").getAll());
    rows.sort((a, b) => a.seq - b.seq);
    this.seq = rows.length ? rows[rows.length - 1]!.seq : 0;
    return rows.map((r) => r.event);
  }

  async append(events: FeedbackEvent[]): Promise<void> {
    const tx = this.tx("readwrite");
    const store = tx.objectStore("events");
    // seq keeps record() order across reloads (ms * 1000 leaves room for 1000 events per ms).
    for (const event of events) {
      this.seq = Math.max(this.seq + 1, Date.now() * 1000);
      store.put({ event_id: event.event_id, seq: this.seq, event } satisfies Row);
    }
    await done(tx);
  }

  async remove(ids: string[]): Promise<void> {
    const tx = this.tx("readwrite");
    const store = tx.objectStore("events");
    for (const id of ids) store.delete(id);
    await done(tx);
  }

  async close(): Promise<void> { this.db?.close(); }

  private tx(mode: IDBTransactionMode): IDBTransaction {
    if (!this.db) throw new Error("IndexedDbOutboxStore: load() first");
    // `durability` is a Chromium/Firefox option; older browsers ignore the third argument.
    return (this.db as any).transaction("events", mode, { durability: "strict" });
  }
}
