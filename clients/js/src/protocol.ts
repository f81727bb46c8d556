// The Playbook protocol's methods, params and results as TypeScript types (docs/protocol.md is the
// contract; test/protocol_doc.test.ts checks every method, param and result field named here against
// it, and the compiler checks METHODS against the interfaces, so the three cannot drift apart).

/** A configured funnel stage, e.g. "evaluation" (the daemon's `[funnel] stages`). */
export type Stage = string;
/** Milliseconds since the Unix epoch (0..253402300799999). */
export type TimestampMs = number;
/** A vector: numbers, or the base64 of the little-endian float32 values (docs/protocol.md, Frames). */
export type Vector = number[] | string;
/** Who may call a method (docs/protocol.md, Authentication). */
export type Role = "crm" | "marketing" | "admin";

export interface AssetFilter {
  types?: string[];
  language?: string;
  tags_any?: string[];
}

// ---- recommend, feedback.record, leads.get (crm)

export interface Lead {
  /** 1..256 bytes. */
  id: string;
  stage: Stage;
  /** Free text: notes, the last objection ("太贵了"). */
  context?: string;
  vector?: Vector;
  /** The rep's language tag ("zh", "en-GB"); null = absent. */
  language?: string | null;
  /** Accepted and reserved. */
  attributes?: Record<string, string>;
}

export interface RecommendParams {
  lead: Lead;
  /** 1..100, default 5. */
  k?: number;
  filter?: AssetFilter;
  /** Default true: skip assets already used with, viewed by or dismissed for this lead, and their variants (variant_of). */
  exclude_seen?: boolean;
  exclude_ids?: string[];
  rep_id?: string;
}

export interface RecommendedItem {
  asset_id: string;
  title: string;
  type: string;
  url: string;
  score: number;
  reasons: string[];
}

export interface RecommendResult {
  recommendation_id: string;
  items: RecommendedItem[];
}

export type EventType = "used" | "viewed" | "dismissed" | "stage_changed" | "won" | "lost";

/** A feedback event as feedback.record takes it. */
export interface FeedbackEvent {
  /** The idempotency key, 1..256 bytes: a repeated id is counted once. */
  event_id: string;
  type: EventType;
  lead_id: string;
  /** Required for used, viewed, dismissed. */
  asset_id?: string;
  /** Required for stage_changed (the new stage); not allowed on other types. */
  stage?: Stage;
  rep_id?: string;
  recommendation_id?: string;
  /** dismissed only: why the rep dismissed it. */
  reason?: string;
  /** won only: the deal's value, 0..1e9. */
  amount?: number;
  /** Default: the daemon's now; not more than a day in the future. */
  ts?: TimestampMs;
}

export interface FeedbackRecordParams {
  /** 1..10,000 events. */
  events: FeedbackEvent[];
}

export interface FeedbackRecordResult {
  accepted: number;
  duplicates: number;
  unknown_leads: number;
  unknown_assets: number;
}

/** An event of leads.get's history (`shown` events included), with the fields it has. */
export interface HistoryEvent extends Omit<FeedbackEvent, "type" | "ts"> {
  type: EventType | "shown";
  ts: TimestampMs;
}

export interface LeadsGetParams {
  id: string;
}

export interface LeadsGetResult {
  id: string;
  stage: Stage | null;
  history: HistoryEvent[];
}

// ---- assets.* (marketing; assets.get crm)

export interface Asset {
  /** 1..128 characters of [A-Za-z0-9._:-]. */
  id: string;
  title: string;
  body?: string;
  url?: string;
  language?: string;
  type: string;
  stages: Stage[];
  tags?: string[];
  vector?: Vector;
  /** Default true. */
  active?: boolean;
  /**
   * The id of the asset this one is a variant (a translation) of; null or absent: none. Assets linked
   * through variant_of form one content item: recommend returns one of them, reports can sum them.
   */
  variant_of?: string | null;
}

/** An asset as assets.get and assets.list answer it. */
export interface StoredAsset extends Omit<Asset, "vector"> {
  vector?: number[];
  vector_source: "client" | "embedder";
  created_ms: TimestampMs;
  updated_ms: TimestampMs;
  /** Always there: the id given at upsert, or null. */
  variant_of: string | null;
}

export interface AssetsUpsertParams {
  /** 1..10,000 assets. */
  assets: Asset[];
}

export interface AssetsUpsertResult {
  upserted: number;
  created: number;
  updated: number;
}

export interface AssetsGetParams {
  /** 1..1000 ids. */
  ids: string[];
  with_vectors?: boolean;
}

export interface AssetsGetResult {
  assets: StoredAsset[];
  missing: string[];
}

export interface AssetsDeleteParams {
  ids: string[];
}

export interface AssetsDeleteResult {
  deleted: number;
}

export interface AssetsListParams {
  stage?: Stage;
  type?: string;
  cursor?: string;
  /** 1..1000, default 100. */
  limit?: number;
  with_vectors?: boolean;
}

export interface AssetsListResult {
  assets: StoredAsset[];
  next_cursor: string | null;
}

export interface AssetsSearchParams {
  stage: Stage;
  /** One of query or vector is required. */
  query?: string;
  vector?: Vector;
  /** 1..100, default 10. */
  k?: number;
  filter?: AssetFilter;
  exclude_ids?: string[];
}

export interface SearchItem {
  asset_id: string;
  title: string;
  type: string;
  url: string;
  score: number;
  /** The asset's variant_of (a translation of that asset), or null. */
  variant_of: string | null;
}

export interface AssetsSearchResult {
  items: SearchItem[];
}

// ---- reports.* (marketing)

/** Whole UTC days: the day of `from` through the day of `to`. */
export interface ReportWindow {
  from?: TimestampMs;
  to?: TimestampMs;
}

export type SortColumn =
  | "shown" | "used" | "usage_rate" | "viewed" | "dismissed" | "won" | "lost" | "win_rate" | "lift"
  | "influenced_revenue" | "last_used";

export interface ReportsAssetsParams extends ReportWindow {
  stage?: Stage;
  rep_id?: string;
  type?: string;
  /** Default "used", descending. */
  sort?: SortColumn;
  /** 1..100000, default 100. */
  limit?: number;
  /** "asset" (default): a row per asset; "content": a row per content item, its variants summed. */
  by?: "asset" | "content";
}

/** The counts of a report row and of the totals. */
export interface AssetCounts {
  shown: number;
  used: number;
  /** used / shown; 0 when shown is 0. */
  usage_rate: number;
  viewed: number;
  dismissed: number;
  won: number;
  lost: number;
  /** won / (won + lost); null when both are 0. */
  win_rate: number | null;
  influenced_revenue: number;
}

export interface AssetRow extends AssetCounts {
  asset_id: string;
  title: string;
  type: string;
  /** Deleted assets keep their history. */
  deleted: boolean;
  lift: number | null;
  last_used: TimestampMs | null;
  /** By content only: the item's variants with activity in the window, in id order. */
  variants?: { asset_id: string; language: string }[];
}

export interface AssetTotals extends AssetCounts {
  /** Matching assets, not only the rows returned. */
  assets: number;
  /** By content only: the content items those assets form. */
  content_items?: number;
  leads_won: number;
  leads_lost: number;
  leads_win_rate: number | null;
}

export interface ReportsAssetsResult {
  rows: AssetRow[];
  totals: AssetTotals;
}

export interface ReportsUnusedParams extends ReportWindow {
  stage?: Stage;
  type?: string;
  /** Default 10. */
  min_shown?: number;
  /** 0..1, default 0.05. */
  max_usage_rate?: number;
}

export interface ReportsUnusedResult {
  never_used: AssetRow[];
  rarely_used: AssetRow[];
}

export interface ReportsTrendParams {
  /** Required: whole UTC days from the day of `from` through the day of `to`. */
  from: TimestampMs;
  to: TimestampMs;
  /** 1..366, default 7; at most 366 buckets. */
  bucket_days?: number;
  stage?: Stage;
  rep_id?: string;
  type?: string;
}

/** One bucket: reports.assets' totals over its days. */
export interface TrendBucket extends AssetCounts {
  /** 00:00 UTC of the first day. */
  from: TimestampMs;
  /** The last millisecond of the last day. */
  to: TimestampMs;
  /** Assets with activity in the bucket. */
  assets: number;
}

export interface ReportsTrendResult {
  bucket_days: number;
  buckets: TrendBucket[];
}

export type ReportsRepsParams = ReportWindow;

export interface RepRow {
  rep_id: string;
  shown: number;
  used: number;
  usage_rate: number;
  dismissed: number;
  leads_won: number;
  leads_lost: number;
  win_rate: number | null;
}

export interface ReportsRepsResult {
  rows: RepRow[];
}

export type ReportsFunnelParams = ReportWindow;

export interface ContentSplit {
  with_content: number;
  without_content: number;
}

export interface FunnelStage {
  stage: Stage;
  entered: number;
  advanced: ContentSplit;
  won: ContentSplit;
  lost: ContentSplit;
}

export interface ReportsFunnelResult {
  stages: FunnelStage[];
}

export interface ReportsExperimentParams extends ReportWindow {
  by?: "stage" | "rep";
}

export interface ExperimentArm {
  leads: number;
  closed: number;
  won: number;
  lost: number;
  win_rate: number | null;
  win_rate_ci: [number, number] | null;
  revenue_per_closed_lead: number | null;
  revenue_per_closed_lead_ci: [number, number] | null;
  mean_days_to_close: number | null;
  mean_days_to_close_ci: [number, number] | null;
}

export interface ExperimentComparison {
  arms: { treatment: ExperimentArm; holdout: ExperimentArm };
  difference: {
    win_rate: number | null;
    ci: [number, number] | null;
    p_value: number | null;
    revenue_per_closed_lead: number | null;
    revenue_per_closed_lead_ci: [number, number] | null;
  };
  conclusive: boolean;
  closed_leads_needed: number | null;
  note: string;
}

export interface ReportsExperimentResult extends ExperimentComparison {
  from: number;
  to: number;
  holdout_fraction: number;
  method: { win_rate_ci: string; difference_ci: string; p_value: string; mean_ci: string; confidence: number };
  by?: "stage" | "rep";
  groups?: (ExperimentComparison & { stage?: string; rep?: string })[];
}

export interface ReportsDismissalsParams extends ReportWindow {
  stage?: Stage;
}

export interface ReportsDismissalsResult {
  reasons: { reason: string; count: number }[];
  by_asset: { asset_id: string; title: string; reason: string; count: number }[];
}

export interface ReportsPhrasesParams {
  /** Only this asset; absent: every asset with phrases. */
  asset_id?: string;
  /** Phrases per asset, 1..1000 (default 20), most supported first. */
  limit?: number;
}

export interface ReportsPhrasesResult {
  min_support: number;
  half_life_days: number;
  assets: {
    asset_id: string;
    title: string;
    uses: number;
    phrases: { term: string; uses: number; support: number; learned: boolean }[];
  }[];
}

// ---- admin: server.*, index.*, aggregates.*, debug.*

export type ServerStatsParams = Record<string, never>;

export interface ServerStatsResult {
  version: string;
  uptime_ms: number;
  connections: { open: number; websockets: number; total: number };
  requests: Record<string, number>;
  outcomes: Record<string, Record<string, number>>;
  workers: { threads: number; queued: number; max_queued: number };
}

export interface ServerBackupParams {
  /** An absolute path on the daemon's machine: absent or an empty directory, outside the data dir. */
  dir: string;
}

export interface ServerBackupResult {
  dir: string;
  ms: number;
  bytes: number;
  files: number;
  created_ms: TimestampMs;
  catalog_seq: number;
  events: number;
  index: boolean;
  paused_ms: number;
}

export type IndexStatusParams = Record<string, never>;

export interface IndexStatusResult {
  assets: number;
  dimension: number;
  embedder: string;
  index: string;
  rebuilding: boolean;
  graph: "loading" | "ready" | "none";
  ann_assets: number;
  exact_assets: number;
  stale_vectors: number;
  catalog_seq: number;
  concepts_pending: number;
  reembed_error: string | null;
}

export type IndexRebuildParams = Record<string, never>;

export interface IndexRebuildResult {
  job_id: string;
}

export interface AggregatesRebuildParams {
  /** Default false: compare only, write nothing. */
  check?: boolean;
}

export interface AggregatesRebuildResult {
  events: number;
  leads: number;
  keys: number;
  differing: number;
  written: boolean;
  ms: number;
  paused_ms: number;
}

export interface DebugSleepParams {
  /** 0..60000, default 0. */
  ms?: number;
  /** 0..100, default 0. */
  notify?: number;
}

export interface DebugSleepResult {
  slept_ms: number;
}

export interface DebugFailParams {
  code: "invalid_argument" | "not_found" | "overloaded" | "unauthorized" | "internal" | "throw";
  field?: string;
}

/** Every method: its params and result types. */
export interface MethodTypes {
  "recommend": [RecommendParams, RecommendResult];
  "feedback.record": [FeedbackRecordParams, FeedbackRecordResult];
  "leads.get": [LeadsGetParams, LeadsGetResult];
  "assets.upsert": [AssetsUpsertParams, AssetsUpsertResult];
  "assets.get": [AssetsGetParams, AssetsGetResult];
  "assets.delete": [AssetsDeleteParams, AssetsDeleteResult];
  "assets.list": [AssetsListParams, AssetsListResult];
  "assets.search": [AssetsSearchParams, AssetsSearchResult];
  "reports.assets": [ReportsAssetsParams, ReportsAssetsResult];
  "reports.unused": [ReportsUnusedParams, ReportsUnusedResult];
  "reports.trend": [ReportsTrendParams, ReportsTrendResult];
  "reports.reps": [ReportsRepsParams, ReportsRepsResult];
  "reports.funnel": [ReportsFunnelParams, ReportsFunnelResult];
  "reports.experiment": [ReportsExperimentParams, ReportsExperimentResult];
  "reports.dismissals": [ReportsDismissalsParams, ReportsDismissalsResult];
  "reports.phrases": [ReportsPhrasesParams, ReportsPhrasesResult];
  "server.stats": [ServerStatsParams, ServerStatsResult];
  "server.backup": [ServerBackupParams, ServerBackupResult];
  "index.status": [IndexStatusParams, IndexStatusResult];
  "index.rebuild": [IndexRebuildParams, IndexRebuildResult];
  "aggregates.rebuild": [AggregatesRebuildParams, AggregatesRebuildResult];
  "debug.sleep": [DebugSleepParams, DebugSleepResult];
  "debug.fail": [DebugFailParams, Record<string, never>];
}

export type Method = keyof MethodTypes;
export type ParamsOf<M extends Method> = MethodTypes[M][0];
export type ResultOf<M extends Method> = MethodTypes[M][1];

/** What the method table says of one method: who may call it and the top-level field names. */
export interface MethodSpec<M extends Method> {
  role: Role;
  params: readonly (keyof ParamsOf<M>)[];
  result: readonly (keyof ResultOf<M>)[];
}

// Exactly the keys of T, each once in any order: a missing key is a compile error naming it.
type AllKeys<T, K extends readonly (keyof T)[]> =
  [Exclude<keyof T, K[number]>] extends [never] ? K : { missing: Exclude<keyof T, K[number]> };
function keys<T>() {
  return <const K extends readonly (keyof T)[]>(...k: K & AllKeys<T, K>): K => k;
}
function spec<M extends Method>(role: Role, params: readonly (keyof ParamsOf<M>)[],
                                result: readonly (keyof ResultOf<M>)[]): MethodSpec<M> {
  return { role, params, result };
}

/** The whole API on one screen: every method of docs/protocol.md, its role and its fields. */
export const METHODS: { readonly [M in Method]: MethodSpec<M> } = {
  "recommend": spec<"recommend">("crm",
    keys<RecommendParams>()("lead", "k", "filter", "exclude_seen", "exclude_ids", "rep_id"),
    keys<RecommendResult>()("recommendation_id", "items")),
  "feedback.record": spec<"feedback.record">("crm", keys<FeedbackRecordParams>()("events"),
    keys<FeedbackRecordResult>()("accepted", "duplicates", "unknown_leads", "unknown_assets")),
  "leads.get": spec<"leads.get">("crm", keys<LeadsGetParams>()("id"),
    keys<LeadsGetResult>()("id", "stage", "history")),
  "assets.upsert": spec<"assets.upsert">("marketing", keys<AssetsUpsertParams>()("assets"),
    keys<AssetsUpsertResult>()("upserted", "created", "updated")),
  "assets.get": spec<"assets.get">("crm", keys<AssetsGetParams>()("ids", "with_vectors"),
    keys<AssetsGetResult>()("assets", "missing")),
  "assets.delete": spec<"assets.delete">("marketing", keys<AssetsDeleteParams>()("ids"),
    keys<AssetsDeleteResult>()("deleted")),
  "assets.list": spec<"assets.list">("marketing",
    keys<AssetsListParams>()("stage", "type", "cursor", "limit", "with_vectors"),
    keys<AssetsListResult>()("assets", "next_cursor")),
  "assets.search": spec<"assets.search">("marketing",
    keys<AssetsSearchParams>()("stage", "query", "vector", "k", "filter", "exclude_ids"),
    keys<AssetsSearchResult>()("items")),
  "reports.assets": spec<"reports.assets">("marketing",
    keys<ReportsAssetsParams>()("from", "to", "stage", "rep_id", "type", "sort", "limit", "by"),
    keys<ReportsAssetsResult>()("rows", "totals")),
  "reports.unused": spec<"reports.unused">("marketing",
    keys<ReportsUnusedParams>()("from", "to", "stage", "type", "min_shown", "max_usage_rate"),
    keys<ReportsUnusedResult>()("never_used", "rarely_used")),
  "reports.trend": spec<"reports.trend">("marketing",
    keys<ReportsTrendParams>()("from", "to", "bucket_days", "stage", "rep_id", "type"),
    keys<ReportsTrendResult>()("bucket_days", "buckets")),
  "reports.reps": spec<"reports.reps">("marketing", keys<ReportsRepsParams>()("from", "to"),
    keys<ReportsRepsResult>()("rows")),
  "reports.funnel": spec<"reports.funnel">("marketing", keys<ReportsFunnelParams>()("from", "to"),
    keys<ReportsFunnelResult>()("stages")),
  "reports.experiment": spec<"reports.experiment">("marketing", keys<ReportsExperimentParams>()("from", "to", "by"),
    keys<ReportsExperimentResult>()("from", "to", "holdout_fraction", "arms", "difference", "conclusive",
      "closed_leads_needed", "note", "method", "by", "groups")),
  "reports.dismissals": spec<"reports.dismissals">("marketing",
    keys<ReportsDismissalsParams>()("from", "to", "stage"),
    keys<ReportsDismissalsResult>()("reasons", "by_asset")),
  "reports.phrases": spec<"reports.phrases">("marketing", keys<ReportsPhrasesParams>()("asset_id", "limit"),
    keys<ReportsPhrasesResult>()("min_support", "half_life_days", "assets")),
  "server.stats": spec<"server.stats">("admin", [],
    keys<ServerStatsResult>()("version", "uptime_ms", "connections", "requests", "outcomes", "workers")),
  "server.backup": spec<"server.backup">("admin", keys<ServerBackupParams>()("dir"),
    keys<ServerBackupResult>()("dir", "ms", "bytes", "files", "created_ms", "catalog_seq", "events", "index",
                               "paused_ms")),
  "index.status": spec<"index.status">("admin", [],
    keys<IndexStatusResult>()("assets", "dimension", "embedder", "index", "rebuilding", "graph", "ann_assets",
                              "exact_assets", "stale_vectors", "catalog_seq", "concepts_pending", "reembed_error")),
  "index.rebuild": spec<"index.rebuild">("admin", [], keys<IndexRebuildResult>()("job_id")),
  "aggregates.rebuild": spec<"aggregates.rebuild">("admin", keys<AggregatesRebuildParams>()("check"),
    keys<AggregatesRebuildResult>()("events", "leads", "keys", "differing", "written", "ms", "paused_ms")),
  "debug.sleep": spec<"debug.sleep">("admin", keys<DebugSleepParams>()("ms", "notify"),
    keys<DebugSleepResult>()("slept_ms")),
  "debug.fail": spec<"debug.fail">("admin", keys<DebugFailParams>()("code", "field"), []),
};

/** Nested field lists the doc spells out (an event, an asset, a lead, a filter, a report row). */
export const RECORDS = {
  "lead": keys<Lead>()("id", "stage", "context", "vector", "language", "attributes"),
  "filter": keys<AssetFilter>()("types", "language", "tags_any"),
  "event": keys<FeedbackEvent>()("event_id", "type", "lead_id", "asset_id", "stage", "rep_id",
                                 "recommendation_id", "reason", "amount", "ts"),
  "asset": keys<Asset>()("id", "title", "body", "url", "language", "type", "stages", "tags", "vector", "active",
                         "variant_of"),
  "asset_row": keys<AssetRow>()("asset_id", "title", "type", "deleted", "shown", "used", "usage_rate", "viewed",
                                "dismissed", "won", "lost", "win_rate", "lift", "influenced_revenue", "last_used",
                                "variants"),
  "recommended_item": keys<RecommendedItem>()("asset_id", "title", "type", "url", "score", "reasons"),
} as const;

/** JSON-RPC error codes (docs/protocol.md, Errors). */
export const ErrorCode = {
  ParseError: -32700,
  InvalidRequest: -32600,
  MethodNotFound: -32601,
  InvalidParams: -32602,
  Internal: -32603,
  Unauthorized: -32001,
  NotFound: -32002,
  Overloaded: -32003,
} as const;
