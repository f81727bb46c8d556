// Rebuilding the index in the background while searches go on.
#include <rocksdb/write_batch.h>

#include <chrono>
#include <thread>

#include "codec.h"
#include "engine_impl.h"

namespace playbook {

namespace {
// The graph follows an import: while at least this many slots are past it
// the rebuild thread extends it again; fewer stay on the exact path (cheap)
// until rebuild_after_adds more arrive.
constexpr uint64_t kMinExtension = 256;
}  // namespace

Result<std::string> EngineImpl::StartRebuild(Progress progress) {
  return StartBuild(std::move(progress), BuildMode::kFull);
}

Result<std::string> EngineImpl::StartBuild(Progress progress, BuildMode mode) {
  std::lock_guard<std::mutex> lock(rebuild_mu_);
  if (rebuilding_.exchange(true)) {
    return Status::Overloaded(graph_loading_ ? "the saved graph is loading; try again in a few seconds"
                                             : "a rebuild is already running");
  }
  if (rebuild_thread_.joinable()) rebuild_thread_.join();  // the previous one, finished
  cancel_rebuild_ = false;
  graph_loading_ = mode == BuildMode::kLoad;
  const std::string job = "rebuild-" + std::to_string(++rebuild_jobs_) + "-" + std::to_string(NowMs());
  rebuild_thread_ = std::thread([this, job, mode, progress = std::move(progress)] {
    RunRebuild(
        [&](uint64_t done, uint64_t total) {
          if (progress) progress(job, done, total);
        },
        mode);
  });
  return job;
}

bool EngineImpl::LoadSavedGraph() {
  if (options_.graph_load_test_hook) options_.graph_load_test_hook(cancel_rebuild_);
  // A graph that does not check out is dropped (the caller builds one); a
  // cancelled load leaves it pending, and a save at the stop keeps its bytes.
  (void)index_->LoadGraph(cancel_rebuild_);
  graph_loading_ = false;
  return index_->ann_size() > 0;
}

void EngineImpl::MaybeAutoRebuild() {
  if (rebuilding_.load() || !WantsAnn(index_->live())) return;
  const bool no_graph_yet = index_->ann_size() == 0;
  if (no_graph_yet || index_->adds_since_build() >= options_.index.rebuild_after_adds) {
    (void)StartBuild(nullptr, BuildMode::kExtend);
  }
}

void EngineImpl::RunRebuild(const std::function<void(uint64_t, uint64_t)>& progress, BuildMode mode) {
  const std::string current = embedder_ ? embedder_->Name() : "";
  bool full = mode == BuildMode::kFull;
  if (mode == BuildMode::kLoad) {
    // The graph in, and few assets arrived meanwhile (or a stop): done, and
    // nothing to save (the file holds it).
    if (((LoadSavedGraph() && index_->exact_size() < options_.index.rebuild_after_adds) || cancel_rebuild_) &&
        !BuildAgain()) {
      return;
    }
  }
  uint64_t done = 0;
  // 1. Re-embed what another embedder version made, in batches, each written
  // only if the asset did not change meanwhile.
  // After an open from the saved index the stale vectors are counted by the
  // background catalog pass: a rebuild asked for meanwhile waits for it.
  while (full && stale_counting_ && !cancel_rebuild_) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (full) {
    std::lock_guard<std::mutex> error_lock(reembed_mu_);
    reembed_error_.clear();
  }
  if (embedder_ && stale_vectors_.load() > 0) {
    std::vector<Asset> stale;
    {
      std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), assets_cf_));
      for (it->SeekToFirst(); it->Valid(); it->Next()) {
        Asset a;
        if (!DecodeAsset(std::string_view(it->value().data(), it->value().size()), &a).ok()) continue;
        if (!a.deleted && !a.vector_supplied && a.embedder != current) stale.push_back(std::move(a));
      }
      if (!it->status().ok()) stale.clear();  // unreadable: nothing is re-embedded this time
    }
    const uint64_t total = stale.size() + index_->live();
    const uint32_t d = options_.dimension;
    for (size_t from = 0; from < stale.size() && !cancel_rebuild_; from += 1024) {
      const size_t to = std::min(stale.size(), from + 1024);
      std::vector<float> vectors((to - from) * d);
      std::vector<std::string> texts;
      for (size_t i = from; i < to; ++i) texts.push_back(AssetText(stale[i]));
      if (Status s = embedder_->EmbedBatch(texts, vectors.data()); !s.ok()) {
        // The model is down or wrong: the rest stay stale (counted, kept as
        // they are, re-embedded by the next rebuild); the index is still built.
        std::lock_guard<std::mutex> error_lock(reembed_mu_);
        reembed_error_ = s.message();
        break;
      }
      std::lock_guard<std::mutex> lock(write_mu_);
      rocksdb::WriteBatch batch;
      std::vector<SlotFields> fields;
      std::vector<float> kept;
      for (size_t i = from; i < to; ++i) {
        std::string value;
        Asset now;
        // A failed read skips the asset like a change would: nothing is written for it.
        if (!db_->Get(rocksdb::ReadOptions(), assets_cf_, stale[i].id, &value).ok() ||
            !DecodeAsset(value, &now).ok() || now.deleted || now.updated_ms != stale[i].updated_ms ||
            now.embedder == current) {
          continue;  // changed since: the newer write wins
        }
        now.embedder = current;
        batch.Put(assets_cf_, now.id, EncodeAsset(now));
        batch.Put(vectors_cf_, now.id, EncodeVector(vectors.data() + (i - from) * d, d));
        fields.push_back(SlotFieldsOf(now));
        kept.insert(kept.end(), vectors.begin() + (i - from) * d, vectors.begin() + (i - from + 1) * d);
      }
      if (fields.empty()) continue;
      batch.Put(default_cf_, "meta/catalog_seq", std::to_string(catalog_seq_ + 1));
      rocksdb::WriteOptions wo;
      wo.sync = true;
      if (!storage_->AfterWrite(db_->Write(wo, &batch), "writing re-embedded vectors").ok()) break;
      ++catalog_seq_;
      catalog_seq_view_ = catalog_seq_;
      index_->Upsert(fields, kept.data());
      stale_vectors_ -= std::min<uint64_t>(stale_vectors_.load(), fields.size());
      done += to - from;
      if (progress) progress(done, total);
    }
  }

  // 2. Build the new structure from a snapshot; writes meanwhile go to the old
  // one and are replayed at the swap. Then, while assets keep arriving (a
  // bulk import), extend the graph with them so they do not stay on the
  // exact path: the graph trails the import by one round.
  const uint64_t base = done;
  uint64_t total = base;
  bool report = true;  // the job's progress: its first pass (a pass after it is the thread's own)
  for (;;) {
    bool changed = false;
    for (int round = 0; round < 1000 && !cancel_rebuild_; ++round) {
      AssetIndex::Extension ext;
      if (!full && index_->TakeExtension(&ext)) {
        if (ext.count == 0) break;
        auto ann = ext.base->Extend(ext.vectors.data(), ext.count, [&](size_t) { return !cancel_rebuild_.load(); });
        if (ann == nullptr) break;  // cancelled: the graph stays as it was
        index_->InstallExtension(ext, std::move(ann));
      } else {
        AssetIndex::Snapshot snap = index_->TakeSnapshot();
        total = base + snap.fields.size();
        std::unique_ptr<AnnIndex> ann;
        if (WantsAnn(snap.fields.size())) {
          ann = AnnIndex::Build(snap.vectors.data(), snap.fields.size(), options_.dimension, options_.index,
                                [&](size_t n) {
                                  if (progress && report) progress(base + n, total + 1);  // the end: once, below
                                  return !cancel_rebuild_.load();
                                });
          if (ann == nullptr) {  // cancelled (a stop): the index stays as it was, its graph included
            index_->AbandonSnapshot();
            break;
          }
        }
        index_->Install(std::move(snap), std::move(ann));
        full = false;  // what arrived meanwhile extends this graph
      }
      changed = true;
      if (index_->exact_size() < kMinExtension || !WantsAnn(index_->live())) break;
    }
    // Saved once, when the graph is caught up: a save writes the whole file.
    if (changed) {
      std::lock_guard<std::mutex> lock(write_mu_);
      if (Usable().ok()) (void)index_->Save(IndexPath(), catalog_seq_, current);
    }
    if (options_.build_end_test_hook) options_.build_end_test_hook();
    const bool again = BuildAgain();
    if (progress && report) progress(total, total);
    if (!again) break;
    report = false;
    full = false;
  }
}

bool EngineImpl::BuildAgain() {
  rebuilding_ = false;
  // An upsert whose MaybeAutoRebuild saw this build still running after its
  // last round had looked started none: the thread looks again for it, or
  // those assets would stay on the exact path until the next import.
  if (cancel_rebuild_ || !WantsAnn(index_->live()) || index_->adds_since_build() < options_.index.rebuild_after_adds) {
    return false;
  }
  return !rebuilding_.exchange(true);
}

}  // namespace playbook
