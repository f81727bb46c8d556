// <playbook-recommendations lead-id stage context language>: the recommendation panel a CRM embeds on
// its lead screen, built on the client. It shows the lead's stage and the recommended items with their
// reasons; "use" records a `used` event, "not useful" a `dismissed` one with the reason picked (what
// reports.dismissals counts), both through the durable outbox (IndexedDB), so a click survives a
// reload or a daemon restart. The daemon serves this file at /panel/ (docs/clients.md, "The panel").
//
// Importing the module defines the element. configurePanel() sets the daemon's URL and the token
// (default: the daemon that served this script, no token) before or after elements exist.
import { PlaybookClient, PlaybookError } from "./client.js";
import { IndexedDbOutboxStore } from "./indexeddb.js";
import { FeedbackOutbox, type OutboxStore } from "./outbox.js";
import type { FeedbackEvent, RecommendResult, RecommendedItem } from "./protocol.js";

export interface PanelConfig {
  /** The daemon's WebSocket endpoint; default: /v1 of the origin this script came from. */
  url?: string;
  /** A crm token (sent as the bearer subprotocol). */
  token?: string;
  /** Recorded with every event and recommendation. */
  repId?: string;
  /** Items shown, 1..100. Default 5. */
  k?: number;
  /** Where unsent feedback waits; default IndexedDB database "playbook-panel-outbox". */
  store?: OutboxStore;
}

interface Shared {
  config: PanelConfig;
  client: PlaybookClient;
  outbox: FeedbackOutbox;
}

let shared: Shared | undefined;
const panels = new Set<PlaybookRecommendations>();

function defaultUrl(): string {
  const u = new URL("/v1", import.meta.url);
  u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
  return u.href;
}

/** (Re)connects every panel of the page to a daemon. Feedback already queued stays queued. */
export function configurePanel(config: PanelConfig = {}): void {
  const old = shared;
  const client = new PlaybookClient({ url: config.url ?? defaultUrl(), ...(config.token ? { token: config.token } : {}) });
  const outbox = new FeedbackOutbox(client, config.store ?? new IndexedDbOutboxStore("playbook-panel-outbox"), {
    onSent: (events) => { for (const p of panels) p.acknowledged(events); },
  });
  shared = { config, client, outbox };
  void outbox.open();
  if (old) {
    void old.outbox.close();
    old.client.close();
  }
  for (const p of panels) p.reload();
}

function ensureShared(): Shared {
  if (!shared) configurePanel();
  return shared!;
}

const LABELS = {
  en: {
    stage: "Stage", use: "Use", notUseful: "Not useful", why: "Why is it not useful?", send: "Send", cancel: "Cancel",
    used: "Used", dismissed: "Dismissed", saved: "saved", loading: "Loading suggestions…", empty: "No suggestions for this stage.",
    error: "Suggestions unavailable", reasons: ["Not relevant", "Outdated", "Customer has seen it", "Wrong language", "Other"],
  },
  zh: {
    stage: "阶段", use: "使用", notUseful: "没用", why: "为什么没用？", send: "提交", cancel: "取消",
    used: "已使用", dismissed: "已忽略", saved: "已保存", loading: "正在加载推荐…", empty: "这个阶段没有推荐内容。",
    error: "推荐暂不可用", reasons: ["不相关", "内容过时", "客户已看过", "语言不对", "其他"],
  },
};
type Labels = typeof LABELS.en;

const CSS = `
:host { display: block; font: 14px/1.4 system-ui, sans-serif; color: #1f2937; }
header { display: flex; justify-content: space-between; align-items: baseline; margin-bottom: 8px; }
.stage { font-size: 12px; padding: 2px 8px; border-radius: 10px; background: #e0e7ff; color: #3730a3; }
ol { list-style: none; margin: 0; padding: 0; }
ol > li { border: 1px solid #e5e7eb; border-radius: 6px; padding: 8px 10px; margin-bottom: 8px; background: #fff; }
ol > li[data-feedback] { opacity: 0.7; }
a.title { font-weight: 600; color: #1d4ed8; text-decoration: none; }
.type { font-size: 11px; color: #6b7280; margin-left: 6px; }
ul.reasons { margin: 4px 0; padding-left: 18px; color: #4b5563; font-size: 12px; }
.actions { display: flex; gap: 6px; align-items: center; flex-wrap: wrap; }
button { font: inherit; font-size: 12px; padding: 3px 10px; border-radius: 4px; border: 1px solid #9ca3af;
         background: #f9fafb; cursor: pointer; }
button.use { border-color: #16a34a; color: #166534; }
.status { font-size: 12px; color: #6b7280; }
.picker { display: flex; gap: 6px; align-items: center; flex-wrap: wrap; margin-top: 6px; }
.message { color: #6b7280; }
`;

let sheet: CSSStyleSheet | undefined;

/** The element. Attributes: lead-id, stage (required), context, language ("zh", "en": also the labels). */
export class PlaybookRecommendations extends HTMLElement {
  static get observedAttributes() { return ["lead-id", "stage", "context", "language"]; }

  private readonly root: ShadowRoot;
  private pendingLoad = false;
  private generation = 0;
  private result: RecommendResult | undefined;
  /** event_id -> the row it was recorded from, until acknowledged. */
  private readonly unsent = new Map<string, HTMLElement>();

  constructor() {
    super();
    this.root = this.attachShadow({ mode: "open" });
    // A constructed sheet: allowed under a CSP without 'unsafe-inline' (the daemon's own pages).
    if (!sheet) { sheet = new CSSStyleSheet(); sheet.replaceSync(CSS); }
    this.root.adoptedStyleSheets = [sheet];
  }

  connectedCallback(): void { panels.add(this); this.reload(); }
  disconnectedCallback(): void { panels.delete(this); }
  attributeChangedCallback(): void { if (this.isConnected) this.reload(); }

  private get labels(): Labels {
    return (this.getAttribute("language") ?? "").toLowerCase().startsWith("zh") ? LABELS.zh : LABELS.en;
  }

  /** Loads the recommendations again (attributes changed, or a new configuration). */
  reload(): void {
    if (this.pendingLoad) return;
    this.pendingLoad = true;
    queueMicrotask(() => { this.pendingLoad = false; void this.load(); });  // one load per burst of changes
  }

  /** Marks the rows whose events the daemon has acknowledged. */
  acknowledged(events: FeedbackEvent[]): void {
    for (const e of events) {
      const row = this.unsent.get(e.event_id);
      if (!row) continue;
      this.unsent.delete(e.event_id);
      row.dataset.sent = "true";
      const status = row.querySelector(".status");
      if (status) status.textContent += ` · ${this.labels.saved}`;
    }
  }

  private async load(): Promise<void> {
    const leadId = this.getAttribute("lead-id");
    const stage = this.getAttribute("stage");
    const L = this.labels;
    const gen = ++this.generation;
    if (!leadId || !stage) { this.show("empty", L.empty); return; }
    this.show("loading", L.loading);
    const { client, config } = ensureShared();
    const context = this.getAttribute("context");
    const language = this.getAttribute("language");
    try {
      const result = await client.recommend({
        lead: { id: leadId, stage, ...(context ? { context } : {}), ...(language ? { language } : {}) },
        k: config.k ?? 5,
        ...(config.repId ? { rep_id: config.repId } : {}),
      }, { timeoutMs: 10000 });  // a rep waits no longer than this for "unavailable"
      if (gen !== this.generation) return;  // attributes changed meanwhile
      this.result = result;
      this.render(leadId, stage, result);
    } catch (e) {
      if (gen !== this.generation) return;
      const why = e instanceof PlaybookError ? (e.data?.reason ?? e.message) : String(e);
      this.show("error", `${L.error}: ${why}`);
    }
  }

  private show(state: string, message: string): void {
    this.dataset.state = state;
    const p = document.createElement("p");
    p.className = "message";
    p.textContent = message;
    this.root.replaceChildren(p);
  }

  private render(leadId: string, stage: string, result: RecommendResult): void {
    const L = this.labels;
    const header = document.createElement("header");
    const badge = el("span", "stage", `${L.stage}: ${stage}`);
    header.append(el("strong", "", leadId), badge);
    const list = document.createElement("ol");
    for (const item of result.items) list.append(this.row(leadId, item));
    this.root.replaceChildren(header, result.items.length ? list : el("p", "message", L.empty));
    this.dataset.state = "ready";
    this.dataset.count = String(result.items.length);
  }

  private row(leadId: string, item: RecommendedItem): HTMLElement {
    const L = this.labels;
    const li = document.createElement("li");
    li.dataset.assetId = item.asset_id;
    const title = el("a", "title", item.title);
    if (/^https?:/i.test(item.url)) { title.href = item.url; title.target = "_blank"; title.rel = "noopener noreferrer"; }
    const reasons = document.createElement("ul");
    reasons.className = "reasons";
    for (const r of item.reasons) reasons.append(el("li", "", r));
    const use = el("button", "use", L.use);
    const no = el("button", "dismiss", L.notUseful);
    const status = el("span", "status", "");
    const actions = el("div", "actions", "");
    actions.append(use, no, status);
    li.append(title, el("span", "type", item.type), reasons, actions);

    const rec = this.result?.recommendation_id;
    const tag = { ...(rec ? { recommendation_id: rec } : {}), ...repOf() };
    const done = async (kind: "used" | "dismissed", record: () => Promise<FeedbackEvent>) => {
      use.disabled = no.disabled = true;
      li.querySelector(".picker")?.remove();
      try {
        const e = await record();
        li.dataset.feedback = kind;
        status.textContent = kind === "used" ? L.used : L.dismissed;
        this.unsent.set(e.event_id, li);
        this.dispatchEvent(new CustomEvent("playbook-feedback", { detail: e, bubbles: true, composed: true }));
      } catch (err) {
        use.disabled = no.disabled = false;
        status.textContent = String(err);
      }
    };
    use.onclick = () => done("used", () => ensureShared().outbox.used(leadId, item.asset_id, tag));
    no.onclick = () => {
      if (li.querySelector(".picker")) return;
      const picker = el("div", "picker", "");
      const select = document.createElement("select");
      select.setAttribute("aria-label", L.why);
      for (const r of L.reasons) select.append(new Option(r, r));
      const other = document.createElement("input");
      other.placeholder = L.why;
      other.hidden = true;
      select.onchange = () => { other.hidden = select.selectedIndex !== L.reasons.length - 1; };
      const send = el("button", "send", L.send);
      const cancel = el("button", "cancel", L.cancel);
      cancel.onclick = () => picker.remove();
      send.onclick = () => {
        const reason = !other.hidden && other.value.trim() ? other.value.trim() : select.value;
        void done("dismissed", () => ensureShared().outbox.dismissed(leadId, item.asset_id, reason, tag));
      };
      picker.append(select, other, send, cancel);
      li.append(picker);
    };
    return li;
  }
}

function repOf(): { rep_id?: string } {
  const rep = shared?.config.repId;
  return rep ? { rep_id: rep } : {};
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, className: string, text: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text) e.textContent = text;
  return e;
}

if (typeof customElements !== "undefined" && !customElements.get("playbook-recommendations")) {
  customElements.define("playbook-recommendations", PlaybookRecommendations);
}
