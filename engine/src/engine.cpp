// Opening, loading and closing the engine; status.
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <system_error>
#include <thread>
#include <unordered_map>

#include "codec.h"
#include "engine_impl.h"

namespace playbook {
namespace {

// Bumped when the on-disk layout changes incompatibly; stored under kFormatKey.
constexpr const char* kFormatKey = "meta/format";
constexpr const char* kFormatVersion = "2";
constexpr const char* kDimensionKey = "meta/dimension";
constexpr const char* kSeqKey = "meta/catalog_seq";

// What an operator does about a database RocksDB cannot open.
std::string RestoreAdvice(const std::string& data_dir) {
  return ". Do not delete or edit files in '" + data_dir +
         "/db'. Restore the latest backup into a new data dir (playbook restore BACKUP_DIR "
         "--data-dir NEW_DIR), point [storage] data_dir at NEW_DIR and start again; keep the "
         "damaged dir for analysis. See docs/operations.md, Storage faults";
}

// A database dir that holds data but no CURRENT file: RocksDB would create a
// new, empty database over it (and later delete the old tables as obsolete).
// Empty when the dir is new, or was left by a first start that stopped
// before writing anything.
std::string MissingCurrent(const std::string& db_dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(db_dir, ec) || std::filesystem::exists(db_dir + "/CURRENT", ec)) return "";
  for (const auto& entry : std::filesystem::directory_iterator(db_dir, ec)) {
    const std::string name = entry.path().filename().string();
    const bool table = name.size() > 4 && name.compare(name.size() - 4, 4, ".sst") == 0;
    const bool wal = name.size() > 4 && name.compare(name.size() - 4, 4, ".log") == 0 &&
                     entry.is_regular_file(ec) && entry.file_size(ec) > 0;
    if (table || wal) return name;
  }
  return "";
}

bool ParseSeq(const std::string& text, uint64_t* out) {
  if (text.empty() || text.size() > 20) return false;
  uint64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9' || v > (UINT64_MAX - uint64_t(c - '0')) / 10) return false;
    v = v * 10 + uint64_t(c - '0');
  }
  *out = v;
  return true;
}

}  // namespace

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

EngineImpl::EngineImpl(EngineOptions options, std::shared_ptr<const models::Embedder> embedder)
    : options_(std::move(options)), embedder_(std::move(embedder)),
      index_(std::make_unique<AssetIndex>(options_.dimension, options_.stages, options_.index)) {}

EngineImpl::~EngineImpl() { (void)Close(); }

Status EngineImpl::Init() {
  std::error_code ec;
  std::filesystem::create_directories(options_.data_dir, ec);
  if (ec) return Status::IOError("cannot create data dir '" + options_.data_dir + "': " + ec.message());
  if (options_.stages.empty() || options_.stages.size() > 64) {
    return Status::InvalidArgument("funnel.stages", "1 to 64 stages");
  }
  if (embedder_ && embedder_->Dimension() != options_.dimension) {
    return Status::InvalidArgument("index.dimension", "the embedder makes vectors of dimension " +
                                                          std::to_string(embedder_->Dimension()));
  }

  rocksdb::DBOptions dbo;
  dbo.create_if_missing = true;
  dbo.create_missing_column_families = true;
  dbo.IncreaseParallelism(2);
  dbo.keep_log_file_num = 5;
  // Table files are synced as they are written, 1 MiB at a time, rather than
  // in one burst at the end, which a synced WAL write would queue behind.
  dbo.bytes_per_sync = 1 << 20;
  // A start replays the write-ahead log not yet flushed to table files: bound
  // it (RocksDB flushes the column families holding the oldest log past this),
  // so a restart after a burst of feedback does not replay hundreds of MB.
  dbo.max_total_wal_size = 64 << 20;
  rocksdb::ColumnFamilyOptions cfo;
  // Point lookups of keys that mostly do not exist (a new event id, a new
  // lead) should not read SST blocks: bloom filters answer them in memory.
  rocksdb::BlockBasedTableOptions table;
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  cfo.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  rocksdb::ColumnFamilyOptions stats_cfo = cfo;
  stats_cfo.merge_operator = NewCounterMergeOperator();
  // The feedback writer looks up every event id (almost all new) and lead of
  // a group: a bloom filter over the memtable's keys answers the absent ones
  // without a search of its skip list (about a quarter of the writer's time).
  rocksdb::ColumnFamilyOptions lookup_cfo = cfo;
  lookup_cfo.memtable_whole_key_filtering = true;
  lookup_cfo.memtable_prefix_bloom_size_ratio = 0.05;
  // Their keys arrive in random order, so each insert searches the memtable's
  // skip list from the top: a smaller memtable (8 MiB rather than 64) is a
  // shallower list that mostly stays in the CPU's caches.
  lookup_cfo.write_buffer_size = 8 << 20;
  rocksdb::ColumnFamilyOptions events_cfo = cfo, seqs_cfo = cfo;
  events_cfo.memtable_insert_with_hint_prefix_extractor = NewEventKeyLeadPrefix();
  seqs_cfo.memtable_insert_with_hint_prefix_extractor = NewSinglePrefix();
  // The families feedback writes: their flushes and first compactions are
  // most of the daemon's background CPU under ingest (snappy about 3% of its
  // samples), and the lead records are rewritten at every group, so most of
  // their bytes die in L0/L1. Those levels are not compressed; L2 and below
  // (the long-lived data) are, with snappy as before. Each block records its
  // own compression: stores written before open and read the same.
  for (rocksdb::ColumnFamilyOptions* o : {&events_cfo, &seqs_cfo, &lookup_cfo, &stats_cfo}) {
    o->compression_per_level = {rocksdb::kNoCompression, rocksdb::kNoCompression, rocksdb::kSnappyCompression};
  }
  std::vector<rocksdb::ColumnFamilyDescriptor> cfs = {
      {rocksdb::kDefaultColumnFamilyName, cfo}, {"assets", cfo}, {"vectors", cfo},
      {"events", events_cfo}, {"event_ids", lookup_cfo}, {"leads", lookup_cfo}, {"stats", stats_cfo},
      {"event_seqs", seqs_cfo}};
  if (options_.rocksdb_test_hook) {
    options_.rocksdb_test_hook(&dbo, &cfo);
    for (auto& cf : cfs) {  // every family from the (possibly changed) base options
      auto merge = cf.options.merge_operator;
      cf.options = cfo;
      cf.options.merge_operator = merge;
    }
  }
  const std::string db_dir = options_.data_dir + "/db";
  if (const std::string found = MissingCurrent(db_dir); !found.empty()) {
    return Status::Corruption("the database in '" + db_dir + "' has no CURRENT file but holds data (" + found +
                              "): it is damaged and playbookd will not create a new database over it" +
                              RestoreAdvice(options_.data_dir));
  }
  rocksdb::DB* raw = nullptr;
  const auto t_open = std::chrono::steady_clock::now();
  rocksdb::Status s = rocksdb::DB::Open(dbo, db_dir, cfs, &handles_, &raw);
  const auto t_db = std::chrono::steady_clock::now();
  if (!s.ok()) {
    if (s.IsIOError() && s.ToString().find("lock") != std::string::npos) {
      return Status::IOError("data dir '" + options_.data_dir + "' is in use by another process (" +
                             s.ToString() + ")");
    }
    if (s.IsCorruption()) {
      return Status::Corruption("the database in '" + db_dir + "' is damaged (" + s.ToString() + ")" +
                                RestoreAdvice(options_.data_dir));
    }
    return Status::IOError("opening the database in '" + db_dir + "': " + s.ToString() +
                           ". If the storage is healthy and this persists, the database may be damaged" +
                           RestoreAdvice(options_.data_dir));
  }
  db_.reset(raw);
  default_cf_ = handles_[0];
  assets_cf_ = handles_[1];
  vectors_cf_ = handles_[2];
  storage_ = std::make_unique<StorageState>(db_.get(), default_cf_);
  feedback_ = std::make_unique<FeedbackStore>(
      db_.get(), FeedbackColumns{default_cf_, handles_[3], handles_[4], handles_[5], handles_[6], handles_[7]}, options_,
      [this](const std::string& id) { return index_->IsLive(id); }, storage_.get());
  auto advise = [&](Status st) {  // damaged stored data found while loading: say what to do
    return st.code() == Status::Code::kCorruption ? Status::Corruption(st.message() + RestoreAdvice(options_.data_dir))
                                                  : st;
  };
  // The feedback store (its saved counters and lead records) opens beside
  // the catalog's checks and the index's load: they read different column
  // families, and neither needs the other until requests come (the store's
  // writer asks the index whether an asset is live only for events, and no
  // request is served before the open ends). Its error comes first, as when
  // they ran one after the other.
  Status feedback_open;
  std::chrono::steady_clock::time_point t_feedback;
  std::thread feedback_opener([&] {
    feedback_open = feedback_->Open();
    t_feedback = std::chrono::steady_clock::now();
  });
  struct Join {
    std::thread* t;
    ~Join() {
      if (t->joinable()) t->join();
    }
  } join{&feedback_opener};
  // The first error: the feedback store's if it has one, else `own`.
  auto first_error = [&](Status own) {
    feedback_opener.join();
    return feedback_open.ok() ? own : advise(feedback_open);
  };

  // Format and dimension: recorded on first open, checked after.
  const std::string dim = std::to_string(options_.dimension);
  std::string format;
  s = db_->Get(rocksdb::ReadOptions(), default_cf_, kFormatKey, &format);
  if (s.IsNotFound()) {
    rocksdb::WriteBatch batch;
    batch.Put(default_cf_, kFormatKey, kFormatVersion);
    batch.Put(default_cf_, kDimensionKey, dim);
    rocksdb::WriteOptions wo;
    wo.sync = true;
    s = db_->Write(wo, &batch);
    if (!s.ok()) return first_error(Status::IOError("writing data dir metadata: " + s.ToString()));
  } else if (!s.ok()) {
    return first_error(FromRocks(s, "reading data dir metadata"));
  } else {
    if (format != kFormatVersion) {
      return first_error(Status::Corruption("data dir format '" + format + "' is not the supported format '" +
                                            kFormatVersion + "'"));
    }
    std::string stored_dim;
    s = db_->Get(rocksdb::ReadOptions(), default_cf_, kDimensionKey, &stored_dim);
    if (!s.ok() && !s.IsNotFound()) return first_error(FromRocks(s, "reading the stored dimension"));
    if (!s.ok()) return first_error(Status::Corruption("data dir has no stored dimension: " + s.ToString()));
    if (stored_dim != dim) {
      return first_error(Status::InvalidArgument(
          "index.dimension", "the data dir holds vectors of dimension " + stored_dim + " but the config says " + dim +
                                 "; use the stored dimension or a new data dir"));
    }
  }
  std::string seq;
  s = db_->Get(rocksdb::ReadOptions(), default_cf_, kSeqKey, &seq);
  catalog_seq_ = 0;
  if (!s.ok() && !s.IsNotFound()) return first_error(FromRocks(s, "reading the catalog sequence"));
  if (s.ok() && !ParseSeq(seq, &catalog_seq_)) {
    return first_error(Status::Corruption("stored catalog sequence '" + seq + "' is not a number"));
  }
  catalog_seq_view_ = catalog_seq_;
  const auto t_index = std::chrono::steady_clock::now();
  if (Status l = LoadIndex(); !l.ok()) return first_error(advise(l));
  const auto t_loaded = std::chrono::steady_clock::now();
  feedback_opener.join();
  if (!feedback_open.ok()) return advise(feedback_open);
  // Where an open's time goes (the daemon logs the note).
  auto ms = [](std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
    return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(b - a).count());
  };
  open_note_ += "; opened in " + ms(t_open, std::chrono::steady_clock::now()) + " ms (RocksDB " +
                ms(t_open, t_db) + " ms, then side by side: feedback " + ms(t_db, t_feedback) + " ms, index " +
                ms(t_index, t_loaded) + " ms)";
  bool warning = false;
  open_note_ += "; " + feedback_->OpenNote(&warning);
  open_warning_ = open_warning_ || warning;
  return Status::Ok();
}

// Loads the saved index when it reflects the catalog; otherwise rebuilds the
// exact part from the stored vectors (never re-embedding) and leaves the
// graph to a background rebuild.
Status EngineImpl::LoadIndex() {
  const auto start = std::chrono::steady_clock::now();
  std::string why;
  // A save interrupted by a crash leaves its temporary file; the saved index
  // itself is replaced only by a complete, synced file (index_file.cpp).
  std::string leftover;
  if (std::error_code ec; std::filesystem::exists(IndexPath() + ".tmp", ec)) {
    std::filesystem::remove(IndexPath() + ".tmp", ec);
    leftover = "; removed " + IndexPath() + ".tmp left by an interrupted save";
  }
  // The file reflects the catalog when it carries its sequence (bumped in the
  // batch of every catalog write): then its slots, fields included, are the
  // catalog's live assets, and the catalog itself is not read before serving.
  auto info = AssetIndex::PeekFile(IndexPath());
  if (!info.ok()) {
    why = info.status().code() == Status::Code::kNotFound ? "" : info.status().ToString();
  } else if (info.value().catalog_seq != catalog_seq_) {
    why = "it reflects catalog sequence " + std::to_string(info.value().catalog_seq) +
          ", the catalog is at " + std::to_string(catalog_seq_);
  } else if (Status l = index_->Load(IndexPath()); !l.ok()) {
    why = l.ToString();
  } else {
    open_note_ = "index loaded from " + IndexPath() + " (" + std::to_string(index_->live()) + " assets) in " +
                 std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                    std::chrono::steady_clock::now() - start)
                                    .count()) +
                 " ms";
    if (index_->graph_pending()) {
      // Searches are exact (and correct) until the graph is in; the rebuild
      // thread reads it and swaps it in (index.status graph "loading").
      if (StartBuild(nullptr, BuildMode::kLoad).ok()) open_note_ += "; exact until the saved graph is in, loading it in the background";
    }
    open_note_ += leftover;
    open_warning_ = !leftover.empty();
    // The concepts, and the count of stale vectors, from the catalog after the open.
    ComputeConcepts(index_->LiveDisplays(), /*count_stale=*/true);
    return Status::Ok();
  }

  std::unordered_map<std::string, SlotFields> live;
  std::vector<std::shared_ptr<const AssetDisplay>> later;  // their concepts: ComputeConcepts
  uint64_t stale = 0;
  const std::string current = embedder_ ? embedder_->Name() : "";
  {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), assets_cf_));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      Asset a;
      if (Status d = DecodeAsset(std::string_view(it->value().data(), it->value().size()), &a); !d.ok()) {
        return Status::Corruption("asset '" + it->key().ToString() + "': " + d.message());
      }
      if (a.deleted) continue;
      if (!a.vector_supplied && a.embedder != current) ++stale;
      live.emplace(a.id, SlotFieldsOf(a, nullptr, &later));
    }
    if (!it->status().ok()) return FromRocks(it->status(), "reading the catalog");
  }
  stale_vectors_ = stale;
  stale_known_ = true;
  open_warning_ = !why.empty() || !leftover.empty();
  open_note_ = why.empty() ? "no saved index; built from the catalog"
                           : "saved index not used (" + why + "); rebuilt from the catalog";
  index_ = std::make_unique<AssetIndex>(options_.dimension, options_.stages, options_.index);

  // Exact part from the stored vectors, in chunks.
  std::vector<SlotFields> fields;
  std::vector<float> vectors;
  auto flush = [&] {
    index_->Upsert(fields, vectors.data());
    fields.clear();
    vectors.clear();
  };
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), vectors_cf_));
  std::vector<float> v;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    auto f = live.find(it->key().ToString());
    if (f == live.end()) continue;
    if (!DecodeVector(std::string_view(it->value().data(), it->value().size()), options_.dimension, &v).ok()) {
      return Status::Corruption("vector of asset '" + f->first + "' has the wrong size");
    }
    fields.push_back(f->second);
    vectors.insert(vectors.end(), v.begin(), v.end());
    if (fields.size() == 4096) flush();
  }
  if (!it->status().ok()) return FromRocks(it->status(), "reading vectors");
  flush();
  if (index_->live() != live.size()) {
    return Status::Corruption("the catalog holds " + std::to_string(live.size()) +
                              " assets but only " + std::to_string(index_->live()) + " vectors");
  }
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - start).count();
  open_note_ += " (" + std::to_string(index_->live()) + " assets, exact) in " + std::to_string(ms) + " ms" + leftover;
  if (WantsAnn(index_->live())) {
    auto job = StartRebuild(nullptr);
    if (job.ok()) open_note_ += "; building the graph in the background";
  }
  ComputeConcepts(std::move(later), /*count_stale=*/false);
  return Status::Ok();
}

bool EngineImpl::WantsAnn(uint64_t assets) const {
  const std::string& kind = options_.index.kind;
  return kind == "hnsw" ? assets > 0 : kind == "auto" && assets >= options_.index.hnsw_min_assets;
}

Status EngineImpl::Usable() const {
  std::lock_guard<std::mutex> lock(close_mu_);
  if (closed_ || !db_) return Status::IOError("engine is closed");
  return Status::Ok();
}

Status EngineImpl::Health() const {
  std::lock_guard<std::mutex> lock(close_mu_);
  if (closed_ || !db_) return Status::IOError("engine is closed");
  return storage_->Check();  // an IOError while the storage refuses writes
}

Status EngineImpl::Close() {
  cancel_concepts_ = true;
  if (concepts_thread_.joinable()) concepts_thread_.join();
  {
    std::lock_guard<std::mutex> lock(rebuild_mu_);
    cancel_rebuild_ = true;
    if (rebuild_thread_.joinable()) rebuild_thread_.join();
  }
  std::lock_guard<std::mutex> lock(close_mu_);
  if (closed_ || !db_) return Status::Ok();
  closed_ = true;
  if (feedback_) feedback_->Close();  // writes what is queued, then stops
  Status saved;
  {
    // Written only when it changed since it was last saved or loaded: a
    // stop then takes no time for a 300 MB graph nobody touched.
    std::lock_guard<std::mutex> w(write_mu_);
    const std::string embedder = embedder_ ? embedder_->Name() : "";
    std::error_code ec;
    if (!index_->SavedAs(IndexPath(), catalog_seq_, embedder) || !std::filesystem::exists(IndexPath(), ec)) {
      saved = index_->Save(IndexPath(), catalog_seq_, embedder);
    }
  }
  // Every acknowledged write was already synced; FlushWAL(sync) covers
  // anything written without sync, and Close releases the LOCK file.
  // (Not while the storage refuses writes: RocksDB's log writer must not be
  // used again after a failed write until DB::Resume has replaced it.)
  rocksdb::Status s = storage_->failing() ? rocksdb::Status::OK() : db_->FlushWAL(/*sync=*/true);
  // The memtables go to table files too, so that the next start does not
  // replay the log of a feedback burst (up to max_total_wal_size: 0.7 s of the
  // open after 5 s of ingest at 100,000 assets) while nobody is served. A
  // failed flush loses nothing (the log stays and is replayed at start).
  if (s.ok() && !storage_->failing()) {
    rocksdb::FlushOptions fo;
    fo.allow_write_stall = true;
    (void)db_->Flush(fo, handles_);
  }
  for (auto* h : handles_) (void)db_->DestroyColumnFamilyHandle(h);
  handles_.clear();
  rocksdb::Status c = db_->Close();
  db_.reset();
  if (!s.ok()) return Status::IOError("flush on close: " + s.ToString());
  if (!c.ok()) return Status::IOError("close: " + c.ToString());
  if (!saved.ok()) return Status::IOError("saving the index (it will be rebuilt at start): " + saved.message());
  return Status::Ok();
}

IndexStatus EngineImpl::GetIndexStatus() const {
  IndexStatus st;
  st.assets = index_->live();
  st.dimension = options_.dimension;
  st.embedder = embedder_ ? embedder_->Name() : "none";
  st.index = index_->Describe();
  const bool loading = graph_loading_.load();
  st.rebuilding = rebuilding_.load() && !loading;
  st.graph = loading ? "loading" : index_->ann_size() > 0 ? "ready" : "none";
  st.ann_assets = index_->ann_size();
  st.exact_assets = index_->exact_size();
  st.stale_vectors = stale_vectors_.load();
  {
    std::lock_guard<std::mutex> lock(reembed_mu_);
    st.reembed_error = reembed_error_;
  }
  st.concepts_pending = concepts_pending_.load();
  st.catalog_seq = catalog_seq_view_.load();
  return st;
}

Status EngineImpl::Embed(const std::string& text, float* out) const {
  if (!embedder_) return Status::InvalidArgument("query", "no embedder is configured");
  return embedder_->EmbedBatch({text}, out);
}

Result<std::vector<SearchHit>> EngineImpl::Search(const float* query, const AssetFilter& filter,
                                                  size_t k) const {
  return index_->Search(query, filter, k);
}

Result<std::vector<SearchItem>> EngineImpl::SearchItems(const float* query, const AssetFilter& filter,
                                                        size_t k) const {
  RankingHits found;
  if (Status s = index_->SearchForRanking(query, filter, k, &found); !s.ok()) return s;
  std::vector<SearchItem> items;
  items.reserve(found.hits.size());
  for (const RankingHit& h : found.hits) {
    const AssetDisplay& d = *h.asset;
    items.push_back({d.id, h.score, d.title, d.type, d.url, d.variant_of});
  }
  return items;
}

Result<std::unique_ptr<Engine>> Engine::Open(const EngineOptions& options,
                                             std::shared_ptr<const models::Embedder> embedder) {
  std::unique_ptr<Engine> engine = Create(options, std::move(embedder));
  if (Status s = engine->Init(); !s.ok()) return s;
  return engine;
}

std::unique_ptr<Engine> Engine::Create(const EngineOptions& options,
                                       std::shared_ptr<const models::Embedder> embedder) {
  return std::make_unique<EngineImpl>(options, std::move(embedder));
}

}  // namespace playbook
