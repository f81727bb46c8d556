// The WebSocket JSON-RPC client: one connection, reconnected with jittered exponential backoff; calls
// queued while it is down (until their own deadline), at most `maxInFlight` sent at once (the rest wait
// in a queue of at most `maxQueued`: back-pressure instead of unbounded buffering), matched to their
// responses by id. No runtime dependencies: browsers use their WebSocket, Node passes one made with
// `ws` (see node.ts).
import { ErrorCode, METHODS, type Method, type ParamsOf, type ResultOf } from "./protocol.js";

/** The part of the WebSocket interface the client uses (the browser's and `ws`'s both have it). */
export interface WebSocketLike {
  readonly readyState: number;
  readonly protocol?: string;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: any) => void) | null;
  onclose: ((ev: any) => void) | null;
  onerror: ((ev: any) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
}

/**
 * Opens a WebSocket. `protocols` is what to offer ("playbook.v1", and "bearer.TOKEN" when the token is
 * sent that way); `token` is set only when it must go in an `Authorization` header instead (a token that
 * is not made of token characters, which only a non-browser socket can send).
 */
export type WebSocketFactory = (url: string, protocols: string[], token?: string) => WebSocketLike;

export interface ClientOptions {
  /** The daemon's endpoint, e.g. "ws://127.0.0.1:7700/v1" or "wss://playbook.example.com/v1". */
  url: string;
  /** A token of `[[auth.tokens]]`; sent as the `bearer.TOKEN` subprotocol (docs/protocol.md). */
  token?: string;
  /** How to open a socket; default: the global WebSocket (browsers, Node 22+). Node 18/20: node.ts. */
  webSocket?: WebSocketFactory;
  /** Default per-call timeout in ms, counted from the call (queueing and reconnects included). 30000. */
  timeoutMs?: number;
  /** Requests sent and not yet answered, at most (the daemon's default per connection is 64). 32. */
  maxInFlight?: number;
  /** Calls waiting to be sent, at most; beyond it a call fails at once with "queue_full". 1000. */
  maxQueued?: number;
  /** First reconnect delay in ms (doubled per failed attempt, with full jitter). 250. */
  reconnectInitialMs?: number;
  /** Largest reconnect delay in ms. 10000. */
  reconnectMaxMs?: number;
  /** A connection not open after this many ms is abandoned and retried. 10000. */
  connectTimeoutMs?: number;
}

export interface CallOptions {
  /** This call's timeout in ms (default: the client's). */
  timeoutMs?: number;
  /**
   * Retry `-32003` answers (overloaded, starting, shutting down: the daemon did nothing) with backoff
   * until the timeout. Default true.
   */
  retryOverloaded?: boolean;
}

/** Errors made by the client itself, besides the daemon's numeric JSON-RPC codes. */
export type ClientErrorCode = "timeout" | "disconnected" | "queue_full" | "closed";

export class PlaybookError extends Error {
  /** A JSON-RPC code of docs/protocol.md (-32602...) or one of the client's own. */
  readonly code: number | ClientErrorCode;
  /** `error.data` of the response: `field` and `reason`. */
  readonly data: { field?: string; reason?: string; [k: string]: unknown } | undefined;
  readonly method: string;
  constructor(method: string, code: number | ClientErrorCode, message: string, data?: PlaybookError["data"]) {
    super(message);
    this.name = "PlaybookError";
    this.method = method;
    this.code = code;
    this.data = data;
  }
  /**
   * True when the call may be sent again: the daemon did nothing (-32003), or the answer was lost (a
   * timeout or a dropped connection; safe to resend for idempotent calls such as feedback.record).
   */
  get retryable(): boolean {
    return this.code === ErrorCode.Overloaded || this.code === "timeout" || this.code === "disconnected";
  }
}

export type ConnectionState = "connecting" | "open" | "waiting" | "closed";

export interface Notification {
  method: string;
  params: unknown;
}

interface Events {
  open: () => void;
  close: (info: { code: number; reason: string }) => void;
  state: (state: ConnectionState) => void;
  notification: (n: Notification) => void;
}

interface Pending {
  id: number;
  method: string;
  params: unknown;
  deadline: number;
  retryOverloaded: boolean;
  attempts: number;
  timer: ReturnType<typeof setTimeout> | undefined;
  resolve: (v: any) => void;
  reject: (e: PlaybookError) => void;
}

const TOKEN_CHARS = /^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$/;
const OPEN = 1;

/** Full jitter: a random delay in [0, min(max, initial * 2^attempt)). */
export function backoffDelay(attempt: number, initialMs: number, maxMs: number): number {
  const ceiling = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
  return Math.floor(Math.random() * ceiling);
}

// Stops listening to a socket being dropped. Its error handler stays (a no-op): `ws` emits "error" when a
// socket is closed while connecting, and an error event nobody listens to would crash Node.
function detach(ws: WebSocketLike): void {
  ws.onopen = ws.onmessage = ws.onclose = null;
  ws.onerror = () => {};
}

function defaultWebSocket(token: string | undefined): WebSocketFactory {
  const WS = (globalThis as any).WebSocket;
  if (typeof WS !== "function") {
    throw new TypeError("no global WebSocket: in Node, use createNodeClient from '@playbook/client/node' " +
                        "or pass options.webSocket");
  }
  if (token !== undefined && !TOKEN_CHARS.test(token)) {
    throw new TypeError("a browser WebSocket can only send tokens made of token characters (letters, digits, " +
                        "!#$%&'*+-.^_`|~)");
  }
  return (url, protocols) => new WS(url, protocols);
}

type Fn<M extends Method> = (params: ParamsOf<M>, options?: CallOptions) => Promise<ResultOf<M>>;
type OptFn<M extends Method> = (params?: ParamsOf<M>, options?: CallOptions) => Promise<ResultOf<M>>;

export class PlaybookClient {
  readonly url: string;
  private readonly token: string | undefined;
  private readonly factory: WebSocketFactory;
  private readonly timeoutMs: number;
  private readonly maxInFlight: number;
  private readonly maxQueued: number;
  private readonly reconnectInitialMs: number;
  private readonly reconnectMaxMs: number;
  private readonly connectTimeoutMs: number;

  private ws: WebSocketLike | undefined;
  private stateValue: ConnectionState = "connecting";
  private attempt = 0;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private connectTimer: ReturnType<typeof setTimeout> | undefined;
  private nextId = 1;
  private readonly queue: Pending[] = [];
  private readonly inFlight = new Map<number, Pending>();
  private readonly listeners: { [K in keyof Events]: Set<Events[K]> } =
    { open: new Set(), close: new Set(), state: new Set(), notification: new Set() };

  constructor(options: ClientOptions) {
    this.url = options.url;
    this.token = options.token;
    this.factory = options.webSocket ?? defaultWebSocket(options.token);
    this.timeoutMs = options.timeoutMs ?? 30000;
    this.maxInFlight = Math.max(1, options.maxInFlight ?? 32);
    this.maxQueued = Math.max(0, options.maxQueued ?? 1000);
    this.reconnectInitialMs = options.reconnectInitialMs ?? 250;
    this.reconnectMaxMs = options.reconnectMaxMs ?? 10000;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 10000;
    this.open();
  }

  get state(): ConnectionState { return this.stateValue; }
  /** Calls sent and not yet answered. */
  get inFlightCount(): number { return this.inFlight.size; }
  /** Calls waiting to be sent. */
  get queuedCount(): number { return this.queue.length; }

  /** Subscribes to an event; returns the function that unsubscribes. */
  on<K extends keyof Events>(event: K, listener: Events[K]): () => void {
    this.listeners[event].add(listener);
    return () => { this.listeners[event].delete(listener); };
  }

  /** Resolves when the connection is open (at once if it is), rejects after `timeoutMs` or on close(). */
  waitOpen(timeoutMs = this.timeoutMs): Promise<void> {
    if (this.stateValue === "open") return Promise.resolve();
    if (this.stateValue === "closed") return Promise.reject(new PlaybookError("", "closed", "client closed"));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { offOpen(); offState(); reject(new PlaybookError("", "timeout", "not connected")); },
                               timeoutMs);
      const offOpen = this.on("open", () => { clearTimeout(timer); offOpen(); offState(); resolve(); });
      const offState = this.on("state", (s) => {
        if (s === "closed") { clearTimeout(timer); offOpen(); offState(); reject(new PlaybookError("", "closed", "client closed")); }
      });
    });
  }

  /** Any method by name; the typed methods below are this. */
  call<M extends Method>(method: M, params?: ParamsOf<M>, options?: CallOptions): Promise<ResultOf<M>>;
  call(method: string, params?: object, options?: CallOptions): Promise<unknown>;
  call(method: string, params: object = {}, options: CallOptions = {}): Promise<unknown> {
    if (this.stateValue === "closed") return Promise.reject(new PlaybookError(method, "closed", "client closed"));
    if (this.queue.length >= this.maxQueued) {
      return Promise.reject(new PlaybookError(method, "queue_full",
        `${method}: ${this.queue.length} calls already queued (maxQueued); slow down`));
    }
    return new Promise((resolve, reject) => {
      const timeoutMs = options.timeoutMs ?? this.timeoutMs;
      const p: Pending = {
        id: this.nextId++, method, params, deadline: Date.now() + timeoutMs,
        retryOverloaded: options.retryOverloaded ?? true, attempts: 0, timer: undefined, resolve, reject,
      };
      p.timer = setTimeout(() => this.expire(p), timeoutMs);
      this.queue.push(p);
      this.pump();
    });
  }

  // ---- the protocol, typed (docs/protocol.md, "Methods")
  readonly recommend: Fn<"recommend"> = (p, o) => this.call("recommend", p, o);
  readonly feedback = { record: ((p, o) => this.call("feedback.record", p, o)) as Fn<"feedback.record"> };
  readonly leads = { get: ((p, o) => this.call("leads.get", p, o)) as Fn<"leads.get"> };
  readonly assets = {
    upsert: ((p, o) => this.call("assets.upsert", p, o)) as Fn<"assets.upsert">,
    get: ((p, o) => this.call("assets.get", p, o)) as Fn<"assets.get">,
    delete: ((p, o) => this.call("assets.delete", p, o)) as Fn<"assets.delete">,
    list: ((p, o) => this.call("assets.list", p ?? {}, o)) as OptFn<"assets.list">,
    search: ((p, o) => this.call("assets.search", p, o)) as Fn<"assets.search">,
  };
  readonly reports = {
    assets: ((p, o) => this.call("reports.assets", p ?? {}, o)) as OptFn<"reports.assets">,
    unused: ((p, o) => this.call("reports.unused", p ?? {}, o)) as OptFn<"reports.unused">,
    trend: ((p, o) => this.call("reports.trend", p, o)) as Fn<"reports.trend">,
    reps: ((p, o) => this.call("reports.reps", p ?? {}, o)) as OptFn<"reports.reps">,
    funnel: ((p, o) => this.call("reports.funnel", p ?? {}, o)) as OptFn<"reports.funnel">,
    experiment: ((p, o) => this.call("reports.experiment", p ?? {}, o)) as OptFn<"reports.experiment">,
    dismissals: ((p, o) => this.call("reports.dismissals", p ?? {}, o)) as OptFn<"reports.dismissals">,
    phrases: ((p, o) => this.call("reports.phrases", p ?? {}, o)) as OptFn<"reports.phrases">,
  };
  readonly server = {
    stats: ((p, o) => this.call("server.stats", p ?? {}, o)) as OptFn<"server.stats">,
    backup: ((p, o) => this.call("server.backup", p, o)) as Fn<"server.backup">,
  };
  readonly index = {
    status: ((p, o) => this.call("index.status", p ?? {}, o)) as OptFn<"index.status">,
    rebuild: ((p, o) => this.call("index.rebuild", p ?? {}, o)) as OptFn<"index.rebuild">,
  };
  readonly aggregates = {
    rebuild: ((p, o) => this.call("aggregates.rebuild", p ?? {}, o)) as OptFn<"aggregates.rebuild">,
  };
  readonly debug = {
    sleep: ((p, o) => this.call("debug.sleep", p ?? {}, o)) as OptFn<"debug.sleep">,
    fail: ((p, o) => this.call("debug.fail", p, o)) as Fn<"debug.fail">,
  };

  /** Closes the connection for good: pending calls fail with "closed"; no reconnect. */
  close(): void {
    if (this.stateValue === "closed") return;
    this.setState("closed");
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.connectTimer);
    const err = (p: Pending) => new PlaybookError(p.method, "closed", `${p.method}: client closed`);
    for (const p of [...this.queue, ...this.inFlight.values()]) this.settle(p, err(p));
    this.queue.length = 0;
    this.inFlight.clear();
    const ws = this.ws;
    this.ws = undefined;
    if (ws) {
      detach(ws);
      try { ws.close(1000, "client closed"); } catch { /* already closing */ }
    }
  }

  /**
   * Drops the current connection as if the network had failed (calls in flight fail with
   * "disconnected"), then reconnects. For tests and for callers that know the network changed.
   */
  reconnectNow(): void {
    if (this.stateValue === "closed") return;
    if (this.ws) this.onSocketClosed(this.ws, 4000, "reconnect requested");
    clearTimeout(this.reconnectTimer);
    this.attempt = 0;
    this.open();
  }

  // ---- connection

  private setState(s: ConnectionState): void {
    if (this.stateValue === s) return;
    this.stateValue = s;
    for (const l of this.listeners.state) l(s);
  }

  private open(): void {
    if (this.stateValue === "closed") return;
    this.setState("connecting");
    const protocols = ["playbook.v1"];
    let headerToken: string | undefined;
    if (this.token !== undefined) {
      if (TOKEN_CHARS.test(this.token)) protocols.push("bearer." + this.token);
      else headerToken = this.token;
    }
    let ws: WebSocketLike;
    try {
      ws = this.factory(this.url, protocols, headerToken);
    } catch (e) {  // a bad URL, a refused token: reported as a close, retried like one
      for (const l of this.listeners.close) l({ code: 1006, reason: String(e) });
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    this.connectTimer = setTimeout(() => this.onSocketClosed(ws, 4001, "connect timeout"), this.connectTimeoutMs);
    ws.onopen = () => {
      if (this.ws !== ws) return;
      clearTimeout(this.connectTimer);
      this.attempt = 0;
      this.setState("open");
      for (const l of this.listeners.open) l();
      this.pump();
    };
    ws.onmessage = (ev) => { if (this.ws === ws) this.onMessage(ev.data); };
    ws.onerror = () => { /* onclose follows */ };
    ws.onclose = (ev: any) => this.onSocketClosed(ws, ev?.code ?? 1006, ev?.reason ?? "");
  }

  private onSocketClosed(ws: WebSocketLike, code: number, reason: string): void {
    if (this.ws !== ws) return;
    this.ws = undefined;
    clearTimeout(this.connectTimer);
    detach(ws);
    try { ws.close(); } catch { /* already closed */ }
    // Answers to what was in flight are lost: the caller decides whether to resend.
    for (const p of this.inFlight.values()) {
      this.settle(p, new PlaybookError(p.method, "disconnected",
        `${p.method}: connection lost before the answer (close ${code}${reason ? ": " + reason : ""})`));
    }
    this.inFlight.clear();
    for (const l of this.listeners.close) l({ code, reason });
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.stateValue === "closed") return;
    this.setState("waiting");
    const delay = backoffDelay(this.attempt++, this.reconnectInitialMs, this.reconnectMaxMs);
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => this.open(), delay);
  }

  // ---- calls

  private pump(): void {
    const ws = this.ws;
    if (!ws || this.stateValue !== "open" || ws.readyState !== OPEN) return;
    while (this.queue.length > 0 && this.inFlight.size < this.maxInFlight) {
      const p = this.queue.shift()!;
      this.inFlight.set(p.id, p);
      ws.send(JSON.stringify({ jsonrpc: "2.0", id: p.id, method: p.method, params: p.params }));
    }
  }

  private onMessage(data: unknown): void {
    let msg: any;
    try {
      msg = JSON.parse(typeof data === "string" ? data : String(data));
    } catch {
      return;  // not JSON: the daemon never sends that
    }
    for (const m of Array.isArray(msg) ? msg : [msg]) {
      if (m === null || typeof m !== "object") continue;
      if (m.id === undefined && typeof m.method === "string") {
        for (const l of this.listeners.notification) l({ method: m.method, params: m.params });
        continue;
      }
      const p = typeof m.id === "number" ? this.inFlight.get(m.id) : undefined;
      if (!p) continue;  // timed out meanwhile, or an id-null error (the client sends no bad frames)
      this.inFlight.delete(p.id);
      if (m.error) {
        const e = m.error;
        if (e.code === ErrorCode.Overloaded && p.retryOverloaded) this.retryLater(p);
        else this.settle(p, new PlaybookError(p.method, e.code, String(e.message ?? "error"), e.data));
      } else {
        this.settle(p, undefined, m.result);
      }
    }
    this.pump();
  }

  // -32003: nothing was done; try again after a jittered delay if the deadline allows.
  private retryLater(p: Pending): void {
    const delay = 50 + backoffDelay(p.attempts++, 100, 2000);
    if (Date.now() + delay >= p.deadline) {
      this.settle(p, new PlaybookError(p.method, "timeout", `${p.method}: daemon overloaded or starting until the timeout`));
      return;
    }
    setTimeout(() => {
      if (this.stateValue === "closed" || p.timer === undefined) return;  // closed or timed out meanwhile
      this.queue.unshift(p);
      this.pump();
    }, delay);
  }

  private expire(p: Pending): void {
    const i = this.queue.indexOf(p);
    if (i >= 0) this.queue.splice(i, 1);
    this.inFlight.delete(p.id);
    this.settle(p, new PlaybookError(p.method, "timeout", `${p.method}: no answer within the timeout`));
    this.pump();
  }

  private settle(p: Pending, error: PlaybookError | undefined, result?: unknown): void {
    clearTimeout(p.timer);
    p.timer = undefined;
    const { resolve, reject } = p;
    p.resolve = p.reject = () => {};  // once
    if (error) reject(error);
    else resolve(result);
  }
}

/** The methods a client object exposes, by their protocol names ("reports.assets" -> client.reports.assets). */
export function methodOf(client: PlaybookClient, method: Method): unknown {
  let o: any = client;
  for (const part of method.split(".")) o = o?.[part];
  return o;
}

export { METHODS };
