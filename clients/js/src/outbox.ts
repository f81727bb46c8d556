// The durable feedback outbox: an event gets its idempotency key (`event_id`) and its time (`ts`) when
// the rep acts, is stored durably before record() resolves, and is sent with feedback.record in batches,
// again and again until the daemon acknowledges it (its answer comes after a synced write). A resend of
// an event the daemon already has is counted once (docs/protocol.md, feedback.record: `event_id`), so
// the outbox may resend freely: after a lost answer, a daemon restart, a page reload or a crash.
import { PlaybookError, backoffDelay, type PlaybookClient } from "./client.js";
import { ErrorCode, type EventType, type FeedbackEvent, type FeedbackRecordResult } from "./protocol.js";

/**
 * Where queued events live until acknowledged. Implementations: MemoryOutboxStore (tests; not durable),
 * IndexedDbOutboxStore (browsers, indexeddb.ts), FileOutboxStore (Node, node.ts).
 */
export interface OutboxStore {
  /** Every stored event, oldest first. Called once, before anything else. */
  load(): Promise<FeedbackEvent[]>;
  /** Stores events; durable (survives a crash of the process) when the promise resolves. */
  append(events: FeedbackEvent[]): Promise<void>;
  /** Forgets acknowledged events. Need not be durable: a forgotten removal only causes a resend. */
  remove(eventIds: string[]): Promise<void>;
  close?(): Promise<void>;
}

/** Not durable: for tests and for callers that accept losing the queue with the process. */
export class MemoryOutboxStore implements OutboxStore {
  private readonly events = new Map<string, FeedbackEvent>();
  async load(): Promise<FeedbackEvent[]> { return [...this.events.values()]; }
  async append(events: FeedbackEvent[]): Promise<void> { for (const e of events) this.events.set(e.event_id, e); }
  async remove(ids: string[]): Promise<void> { for (const id of ids) this.events.delete(id); }
}

/** An event as record() takes it: `event_id` and `ts` are made at once when absent. */
export type NewEvent = Omit<FeedbackEvent, "event_id" | "ts"> & { event_id?: string; ts?: number };

export interface OutboxOptions {
  /** Events per feedback.record call, 1..10000. 500. */
  batchSize?: number;
  /** Wait this long after a record() before sending, so that events close together share a call. 20 ms. */
  flushDelayMs?: number;
  /** Retry delays: full jitter between 0 and initial * 2^attempt, at most max. 250 / 30000 ms. */
  retryInitialMs?: number;
  retryMaxMs?: number;
  /** Timeout of one feedback.record call. 15000 ms. */
  callTimeoutMs?: number;
  /** Makes event ids; default: crypto.randomUUID where there is one. */
  newId?: () => string;
  /**
   * An event the daemon refused as invalid (-32602 naming it): dropped from the outbox, so that it does
   * not block the others forever. record() refuses most such events before storing them.
   */
  onRejected?: (event: FeedbackEvent, error: PlaybookError) => void;
  /** Every acknowledged batch, with the daemon's counts (`duplicates`: events it already had). */
  onSent?: (events: FeedbackEvent[], result: FeedbackRecordResult) => void;
  /** Every failed send (it will be retried). */
  onError?: (error: unknown) => void;
}

const TYPES: ReadonlySet<string> = new Set<EventType>(["used", "viewed", "dismissed", "stage_changed", "won", "lost"]);

/** A random id: crypto.randomUUID, else 128 random bits from getRandomValues (or Math.random). */
export function randomEventId(): string {
  const c = (globalThis as any).crypto;
  if (c && typeof c.randomUUID === "function") return c.randomUUID();
  const bytes = new Uint8Array(16);
  if (c && typeof c.getRandomValues === "function") c.getRandomValues(bytes);
  else for (let i = 0; i < 16; i++) bytes[i] = Math.floor(Math.random() * 256);
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

// What feedback.record would refuse; checked before the event is stored (docs/protocol.md).
function check(e: FeedbackEvent): void {
  const bad = (field: string, why: string) => { throw new TypeError(`feedback event: ${field}: ${why}`); };
  if (typeof e.event_id !== "string" || e.event_id.length === 0 || e.event_id.length > 256) bad("event_id", "1..256 bytes");
  if (!TYPES.has(e.type)) bad("type", `unknown type '${String(e.type)}'`);
  if (typeof e.lead_id !== "string" || e.lead_id.length === 0) bad("lead_id", "required");
  const needsAsset = e.type === "used" || e.type === "viewed" || e.type === "dismissed";
  if (needsAsset && (typeof e.asset_id !== "string" || e.asset_id.length === 0)) bad("asset_id", `required for ${e.type}`);
  if (e.type === "stage_changed" ? typeof e.stage !== "string" : e.stage !== undefined) {
    bad("stage", e.type === "stage_changed" ? "required for stage_changed" : "only for stage_changed");
  }
  if (e.reason !== undefined && e.type !== "dismissed") bad("reason", "dismissed only");
  if (e.amount !== undefined && (e.type !== "won" || !(e.amount >= 0 && e.amount <= 1e9))) bad("amount", "won only, 0..1e9");
  if (!Number.isInteger(e.ts) || e.ts! < 0) bad("ts", "ms since the epoch");
}

export class FeedbackOutbox {
  private readonly client: PlaybookClient;
  private readonly store: OutboxStore;
  private readonly batchSize: number;
  private readonly flushDelayMs: number;
  private readonly retryInitialMs: number;
  private readonly retryMaxMs: number;
  private readonly callTimeoutMs: number;
  private readonly newId: () => string;
  private readonly onRejected: OutboxOptions["onRejected"];
  private readonly onError: OutboxOptions["onError"];
  private readonly onSent: OutboxOptions["onSent"];

  /** Stored and not yet acknowledged, oldest first (insertion order of the Map). */
  private readonly queued = new Map<string, FeedbackEvent>();
  private loaded: Promise<void> | undefined;
  private sending = false;
  private closed = false;
  private attempt = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private offOpen: (() => void) | undefined;
  private waiters: (() => void)[] = [];
  private appendChain: Promise<void> = Promise.resolve();

  constructor(client: PlaybookClient, store: OutboxStore = new MemoryOutboxStore(), options: OutboxOptions = {}) {
    this.client = client;
    this.store = store;
    this.batchSize = Math.min(10000, Math.max(1, options.batchSize ?? 500));
    this.flushDelayMs = options.flushDelayMs ?? 20;
    this.retryInitialMs = options.retryInitialMs ?? 250;
    this.retryMaxMs = options.retryMaxMs ?? 30000;
    this.callTimeoutMs = options.callTimeoutMs ?? 15000;
    this.newId = options.newId ?? randomEventId;
    this.onRejected = options.onRejected;
    this.onError = options.onError;
    this.onSent = options.onSent;
  }

  /** Loads what an earlier run left in the store and starts sending it. record() calls it too. */
  open(): Promise<void> {
    if (!this.loaded) {
      this.loaded = this.store.load().then((events) => {
        for (const e of events) if (!this.queued.has(e.event_id)) this.queued.set(e.event_id, e);
        this.offOpen = this.client.on("open", () => { this.attempt = 0; this.schedule(0); });
        this.schedule(0);
      });
    }
    return this.loaded;
  }

  /** Events stored and not yet acknowledged. */
  get pending(): number { return this.queued.size; }

  /**
   * Queues one event: gives it an `event_id` and `ts` (now) unless it has them, stores it durably, and
   * resolves with the stored event; sending happens in the background. Rejects (TypeError, nothing
   * stored) an event the daemon would refuse.
   */
  async record(event: NewEvent): Promise<FeedbackEvent> {
    if (this.closed) throw new Error("outbox closed");
    const e = { ...event, event_id: event.event_id ?? this.newId(), ts: event.ts ?? Date.now() } as FeedbackEvent;
    check(e);
    await this.open();
    // Appends are chained so the store sees them in record() order.
    const stored = this.appendChain.then(() => this.store.append([e]));
    this.appendChain = stored.catch(() => {});
    await stored;
    if (!this.queued.has(e.event_id)) this.queued.set(e.event_id, e);
    this.schedule(this.flushDelayMs);
    return e;
  }

  used(lead_id: string, asset_id: string, extra: Partial<NewEvent> = {}) { return this.record({ ...extra, type: "used", lead_id, asset_id }); }
  viewed(lead_id: string, asset_id: string, extra: Partial<NewEvent> = {}) { return this.record({ ...extra, type: "viewed", lead_id, asset_id }); }
  dismissed(lead_id: string, asset_id: string, reason?: string, extra: Partial<NewEvent> = {}) {
    return this.record({ ...extra, type: "dismissed", lead_id, asset_id, ...(reason !== undefined ? { reason } : {}) });
  }
  stageChanged(lead_id: string, stage: string, extra: Partial<NewEvent> = {}) { return this.record({ ...extra, type: "stage_changed", lead_id, stage }); }
  won(lead_id: string, amount?: number, extra: Partial<NewEvent> = {}) {
    return this.record({ ...extra, type: "won", lead_id, ...(amount !== undefined ? { amount } : {}) });
  }
  lost(lead_id: string, extra: Partial<NewEvent> = {}) { return this.record({ ...extra, type: "lost", lead_id }); }

  /** Resolves when every event stored so far is acknowledged; rejects after `timeoutMs` if given. */
  drain(timeoutMs?: number): Promise<void> {
    if (this.queued.size === 0) return Promise.resolve();
    this.schedule(0);
    return new Promise((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const done = () => { clearTimeout(timer); resolve(); };
      this.waiters.push(done);
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          this.waiters = this.waiters.filter((w) => w !== done);
          reject(new Error(`outbox: ${this.queued.size} events still unacknowledged after ${timeoutMs} ms`));
        }, timeoutMs);
      }
    });
  }

  /** Stops sending (what is stored stays stored for the next run) and closes the store. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    this.offOpen?.();
    await this.appendChain;
    await this.store.close?.();
  }

  private schedule(delayMs: number): void {
    if (this.closed || this.sending || this.queued.size === 0) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => { void this.sendBatch(); }, delayMs);
  }

  private async sendBatch(): Promise<void> {
    if (this.closed || this.sending || this.queued.size === 0) return;
    if (this.client.state !== "open") return;  // the client's "open" event schedules the next try
    this.sending = true;
    const batch = [...this.queued.values()].slice(0, this.batchSize);
    let retryIn: number | undefined = 0;
    try {
      const result = await this.client.feedback.record({ events: batch }, { timeoutMs: this.callTimeoutMs });
      await this.forget(batch.map((e) => e.event_id));
      this.onSent?.(batch, result);
      this.attempt = 0;
    } catch (err) {
      this.onError?.(err);
      const bad = err instanceof PlaybookError && err.code === ErrorCode.InvalidParams
        ? /^events\[(\d+)\]/.exec(err.data?.field ?? "") : null;
      const rejected = bad ? batch[Number(bad[1])] : undefined;
      if (rejected) {
        await this.forget([rejected.event_id]);
        this.onRejected?.(rejected, err as PlaybookError);
      } else {
        retryIn = backoffDelay(this.attempt++, this.retryInitialMs, this.retryMaxMs);
      }
    } finally {
      this.sending = false;
    }
    if (this.queued.size === 0) {
      const w = this.waiters;
      this.waiters = [];
      for (const f of w) f();
    } else {
      this.schedule(retryIn);
    }
  }

  private async forget(ids: string[]): Promise<void> {
    for (const id of ids) this.queued.delete(id);
    try {
      await this.store.remove(ids);
    } catch (e) {
      this.onError?.(e);  // the events are acknowledged: at worst they are resent and counted as duplicates
    }
  }
}
