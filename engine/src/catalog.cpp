// The catalog: validating, storing, reading and deleting assets.
#include <rocksdb/iterator.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string_view>
#include <thread>
#include <unordered_map>

#include "codec.h"
#include "engine_impl.h"
#include "variants.h"

namespace playbook {
namespace {

constexpr size_t kMaxAssetsPerCall = 10000;
constexpr size_t kMaxTags = 64;

bool IdChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == ':' || c == '-';
}

std::string JoinStages(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

}  // namespace

std::string AssetText(const Asset& a) { return models::ComposeAssetText(a.title, a.body, a.tags); }

SlotFields EngineImpl::SlotFieldsOf(const Asset& a, std::vector<std::string>* concepts,
                                    std::vector<std::shared_ptr<const AssetDisplay>>* later) const {
  auto display = std::make_shared<AssetDisplay>();
  display->id = a.id;
  display->title = a.title;
  display->type = a.type;
  display->url = a.url;
  display->created_ms = a.created_ms;
  display->variant_of = a.variant_of;
  if (concepts != nullptr) {
    display->SetConcepts(std::move(*concepts));
  } else if (!embedder_) {
    display->SetConcepts({});
  } else if (later != nullptr) {
    later->push_back(display);
  } else {
    display->SetConcepts(embedder_->Concepts(AssetText(a)));
  }
  return SlotFields{a.id, a.stages, a.type, a.language, a.tags, a.active, std::move(display)};
}

void EngineImpl::ComputeConcepts(std::vector<std::shared_ptr<const AssetDisplay>> later, bool count_stale) {
  if (!embedder_) {  // no lexicon: no concepts
    for (const auto& d : later) d->SetConcepts({});
    later.clear();
  }
  concepts_pending_ = later.size();
  if (later.empty() && !count_stale) return;
  // Reads the catalog again (off the answer path) rather than keep every
  // asset's text since the open; an asset upserted meanwhile has a new display
  // with its concepts, and its old one gets the new text's (as harmless).
  stale_counting_ = count_stale;
  concepts_thread_ = std::thread([this, count_stale, later = std::move(later)] {
    std::unordered_map<std::string_view, const AssetDisplay*> by_id;  // here: 100,000 entries take a while
    by_id.reserve(later.size());
    for (const auto& d : later) by_id.emplace(d->id, d.get());
    const std::string current = embedder_ ? embedder_->Name() : "";
    uint64_t stale = 0;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), assets_cf_));
    for (it->SeekToFirst(); it->Valid() && !cancel_concepts_.load(std::memory_order_relaxed); it->Next()) {
      const auto found = by_id.find(std::string_view(it->key().data(), it->key().size()));
      if (found == by_id.end() && !count_stale) continue;
      Asset a;
      if (!DecodeAsset(std::string_view(it->value().data(), it->value().size()), &a).ok()) continue;
      if (!a.deleted && !a.vector_supplied && a.embedder != current) ++stale;
      if (found != by_id.end()) found->second->SetConcepts(embedder_->Concepts(AssetText(a)));
    }
    if (count_stale && it->Valid() == false && it->status().ok()) {  // read through: the count is the catalog's
      stale_vectors_ = stale;
      stale_known_ = true;
    }
    stale_counting_ = false;
    // What the catalog no longer holds, or could not be read, shows no concept.
    for (const auto& d : later) d->SetConcepts({});
    concepts_pending_ = 0;
  });
}

Status EngineImpl::ValidateAsset(const Asset& a, size_t i) const {
  const std::string at = "assets[" + std::to_string(i) + "].";
  if (a.id.empty() || a.id.size() > 128) return Status::InvalidArgument(at + "id", "must be 1..128 characters");
  if (!std::all_of(a.id.begin(), a.id.end(), IdChar)) {
    return Status::InvalidArgument(at + "id", "may hold only A-Z a-z 0-9 . _ : -");
  }
  if (a.title.empty()) return Status::InvalidArgument(at + "title", "must not be empty");
  if (a.title.size() > 4096) return Status::InvalidArgument(at + "title", "longer than 4096 bytes");
  if (a.body.size() > 1 << 20) return Status::InvalidArgument(at + "body", "longer than 1 MiB");
  if (a.url.size() > 4096) return Status::InvalidArgument(at + "url", "longer than 4096 bytes");
  if (a.language.size() > 35) return Status::InvalidArgument(at + "language", "longer than 35 bytes");
  if (a.type.empty() || a.type.size() > 64) return Status::InvalidArgument(at + "type", "must be 1..64 characters");
  for (char c : a.type) {
    if (c >= 'A' && c <= 'Z') return Status::InvalidArgument(at + "type", "must be lower-case, e.g. case_study");
    if (c == ' ' || c < 0x20) return Status::InvalidArgument(at + "type", "must not contain spaces; use _ e.g. case_study");
  }
  if (a.stages.empty()) {
    return Status::InvalidArgument(at + "stages", "at least one stage of: " + JoinStages(options_.stages));
  }
  for (size_t s = 0; s < a.stages.size(); ++s) {
    if (std::find(options_.stages.begin(), options_.stages.end(), a.stages[s]) == options_.stages.end()) {
      return Status::InvalidArgument(at + "stages[" + std::to_string(s) + "]",
                                     "unknown stage '" + a.stages[s] + "'; valid stages: " +
                                         JoinStages(options_.stages));
    }
  }
  if (!a.variant_of.empty()) {
    if (a.variant_of.size() > 128 || !std::all_of(a.variant_of.begin(), a.variant_of.end(), IdChar)) {
      return Status::InvalidArgument(at + "variant_of", "must be an asset id: 1..128 characters of A-Z a-z 0-9 . _ : -");
    }
    if (a.variant_of == a.id) return Status::InvalidArgument(at + "variant_of", "an asset cannot be a variant of itself");
  }
  if (a.tags.size() > kMaxTags) return Status::InvalidArgument(at + "tags", "more than 64 tags");
  for (size_t t = 0; t < a.tags.size(); ++t) {
    if (a.tags[t].empty() || a.tags[t].size() > 128) {
      return Status::InvalidArgument(at + "tags[" + std::to_string(t) + "]", "must be 1..128 bytes");
    }
  }
  if (!a.vector.empty()) {
    if (a.vector.size() != options_.dimension) {
      return Status::InvalidArgument(at + "vector", "expected " + std::to_string(options_.dimension) +
                                                        " numbers, got " + std::to_string(a.vector.size()));
    }
    double norm = 0;
    for (float x : a.vector) {
      if (!std::isfinite(x)) return Status::InvalidArgument(at + "vector", "numbers must be finite");
      norm += double(x) * x;
    }
    if (norm == 0) return Status::InvalidArgument(at + "vector", "must not be all zeros");
  }
  return Status::Ok();
}

Status EngineImpl::CheckVariantCycles(const std::vector<Asset>& assets,
                                      const std::unordered_map<std::string, size_t>& index_of) const {
  // An asset's links as they will be: the call's version, else the live one.
  auto next = [&](const std::string& id) {
    auto it = index_of.find(id);
    return it != index_of.end() ? assets[it->second].variant_of : index_->VariantOf(id);
  };
  for (size_t i = 0; i < assets.size(); ++i) {
    if (assets[i].variant_of.empty()) continue;
    std::string chain = assets[i].id;
    std::string at = assets[i].variant_of;
    for (size_t hop = 0; !at.empty() && hop < kMaxVariantHops; ++hop) {
      chain.append(" -> ").append(at);
      if (at == assets[i].id) {
        return Status::InvalidArgument("assets[" + std::to_string(i) + "].variant_of", "would make a cycle: " + chain);
      }
      at = next(at);
    }
  }
  return Status::Ok();
}

Result<UpsertResult> EngineImpl::UpsertAssets(std::vector<Asset> assets) {
  if (assets.size() > kMaxAssetsPerCall) {
    return Status::InvalidArgument("assets", "more than " + std::to_string(kMaxAssetsPerCall) + " assets in one call");
  }
  std::unordered_map<std::string, size_t> first;
  for (size_t i = 0; i < assets.size(); ++i) {
    if (Status s = ValidateAsset(assets[i], i); !s.ok()) return s;
    auto [it, inserted] = first.emplace(assets[i].id, i);
    if (!inserted) {
      return Status::InvalidArgument("assets[" + std::to_string(i) + "].id",
                                     "duplicate of assets[" + std::to_string(it->second) + "].id '" +
                                         assets[i].id + "'");
    }
  }
  // Embedding is the expensive part: outside every lock.
  const uint32_t d = options_.dimension;
  std::vector<float> vectors(assets.size() * d);
  std::vector<std::vector<std::string>> concepts(assets.size());  // for the index's display fields
  const std::string embedder = embedder_ ? embedder_->Name() : "";
  std::vector<std::string> texts;  // of the assets without a vector, in order
  std::vector<size_t> embedded;    // ... and their indexes
  for (size_t i = 0; i < assets.size(); ++i) {
    Asset& a = assets[i];
    // Funnel order, duplicates collapsed.
    std::vector<std::string> ordered;
    for (const auto& s : options_.stages) {
      if (std::find(a.stages.begin(), a.stages.end(), s) != a.stages.end()) ordered.push_back(s);
    }
    a.stages = std::move(ordered);
    if (!a.vector.empty()) {
      std::copy(a.vector.begin(), a.vector.end(), vectors.begin() + i * d);
      a.vector_supplied = true;
      a.embedder.clear();
    } else {
      if (!embedder_) return Status::InvalidArgument("assets[" + std::to_string(i) + "].vector", "required: no embedder is configured");
      texts.push_back(AssetText(a));
      embedded.push_back(i);
      a.vector_supplied = false;
      a.embedder = embedder;
    }
    if (embedder_) concepts[i] = embedder_->Concepts(AssetText(a));
    a.deleted = false;
  }
  if (!texts.empty()) {
    // One call: a remote embedder batches the requests itself. A failure
    // (the model down, a bad answer) fails the call before anything is written.
    std::vector<float> made(texts.size() * d);
    if (Status s = embedder_->EmbedBatch(texts, made.data()); !s.ok()) return s;
    for (size_t j = 0; j < embedded.size(); ++j) {
      std::copy(made.begin() + j * d, made.begin() + (j + 1) * d, vectors.begin() + embedded[j] * d);
    }
  }

  std::lock_guard<std::mutex> lock(write_mu_);
  if (Status h = Health(); !h.ok()) return h;
  if (Status s = CheckVariantCycles(assets, first); !s.ok()) return s;
  std::vector<rocksdb::Slice> keys;
  for (const auto& a : assets) keys.emplace_back(a.id);
  std::vector<std::string> old(assets.size());
  std::vector<rocksdb::Status> got =
      db_->MultiGet(rocksdb::ReadOptions(), std::vector<rocksdb::ColumnFamilyHandle*>(keys.size(), assets_cf_), keys, &old);
  UpsertResult result;
  rocksdb::WriteBatch batch;
  const int64_t now = NowMs();
  std::vector<SlotFields> fields;
  for (size_t i = 0; i < assets.size(); ++i) {
    Asset& a = assets[i];
    Asset prev;
    const bool exists = got[i].ok() && DecodeAsset(old[i], &prev).ok() && !prev.deleted;
    if (!got[i].ok() && !got[i].IsNotFound()) return FromRocks(got[i], "reading asset '" + a.id + "'");
    a.created_ms = exists ? prev.created_ms : now;
    a.updated_ms = now;
    exists ? ++result.updated : ++result.created;
    batch.Put(assets_cf_, a.id, EncodeAsset(a));
    batch.Put(vectors_cf_, a.id, EncodeVector(vectors.data() + i * d, d));
    fields.push_back(SlotFieldsOf(a, &concepts[i]));
  }
  result.upserted = assets.size();
  batch.Put(default_cf_, "meta/catalog_seq", std::to_string(catalog_seq_ + 1));
  rocksdb::WriteOptions wo;
  wo.sync = true;  // acknowledged means durable
  if (Status s = storage_->AfterWrite(db_->Write(wo, &batch), "writing assets"); !s.ok()) return s;
  ++catalog_seq_;
  catalog_seq_view_ = catalog_seq_;
  index_->Upsert(fields, vectors.data());
  MaybeAutoRebuild();
  return result;
}

Result<std::vector<Asset>> EngineImpl::GetAssets(const std::vector<std::string>& ids, bool with_vectors,
                                                 std::vector<std::string>* missing) {
  if (Status h = Usable(); !h.ok()) return h;
  std::vector<rocksdb::Slice> keys(ids.begin(), ids.end());
  std::vector<std::string> values;
  auto got = db_->MultiGet(rocksdb::ReadOptions(),
                           std::vector<rocksdb::ColumnFamilyHandle*>(keys.size(), assets_cf_), keys, &values);
  std::vector<std::string> vec_values;
  std::vector<rocksdb::Status> vec_got;
  if (with_vectors) {
    vec_got = db_->MultiGet(rocksdb::ReadOptions(),
                            std::vector<rocksdb::ColumnFamilyHandle*>(keys.size(), vectors_cf_), keys, &vec_values);
  }
  std::vector<Asset> out;
  for (size_t i = 0; i < ids.size(); ++i) {
    // A read that failed is an error, never "missing".
    if (!got[i].ok() && !got[i].IsNotFound()) return FromRocks(got[i], "reading asset '" + ids[i] + "'");
    Asset a;
    if (got[i].ok()) {
      if (Status d = DecodeAsset(values[i], &a); !d.ok()) {
        return Status::Corruption("stored asset '" + ids[i] + "' is unreadable: " + d.message());
      }
    }
    if (!got[i].ok() || a.deleted) {
      if (missing) missing->push_back(ids[i]);
      continue;
    }
    if (with_vectors) {
      if (vec_got[i].IsNotFound()) return Status::Corruption("live asset '" + ids[i] + "' has no stored vector");
      if (!vec_got[i].ok()) return FromRocks(vec_got[i], "reading the vector of asset '" + ids[i] + "'");
      if (!DecodeVector(vec_values[i], options_.dimension, &a.vector).ok()) {
        return Status::Corruption("stored vector of asset '" + ids[i] + "' has the wrong size");
      }
    }
    out.push_back(std::move(a));
  }
  return out;
}

Result<uint64_t> EngineImpl::DeleteAssets(const std::vector<std::string>& ids) {
  std::lock_guard<std::mutex> lock(write_mu_);
  if (Status h = Health(); !h.ok()) return h;
  rocksdb::WriteBatch batch;
  std::vector<std::string> deleted;
  const int64_t now = NowMs();
  for (const auto& id : ids) {
    if (std::find(deleted.begin(), deleted.end(), id) != deleted.end()) continue;
    std::string value;
    Asset a;
    rocksdb::Status got = db_->Get(rocksdb::ReadOptions(), assets_cf_, id, &value);
    if (got.IsNotFound()) continue;
    if (!got.ok()) return FromRocks(got, "reading asset '" + id + "'");
    if (Status d = DecodeAsset(value, &a); !d.ok()) {
      return Status::Corruption("stored asset '" + id + "' is unreadable: " + d.message());
    }
    if (a.deleted) continue;
    // A tombstone keeps title and type for reports; the vector goes.
    a.deleted = true;
    a.updated_ms = now;
    batch.Put(assets_cf_, id, EncodeAsset(a));
    batch.Delete(vectors_cf_, id);
    deleted.push_back(id);
  }
  if (deleted.empty()) return uint64_t(0);
  batch.Put(default_cf_, "meta/catalog_seq", std::to_string(catalog_seq_ + 1));
  rocksdb::WriteOptions wo;
  wo.sync = true;
  if (Status s = storage_->AfterWrite(db_->Write(wo, &batch), "deleting assets"); !s.ok()) return s;
  ++catalog_seq_;
  catalog_seq_view_ = catalog_seq_;
  index_->Remove(deleted);
  return uint64_t(deleted.size());
}

Result<ListPage> EngineImpl::ListAssets(const ListQuery& q) {
  if (!q.stage.empty() &&
      std::find(options_.stages.begin(), options_.stages.end(), q.stage) == options_.stages.end()) {
    return Status::InvalidArgument("stage", "unknown stage '" + q.stage + "'; valid stages: " + JoinStages(options_.stages));
  }
  if (Status h = Usable(); !h.ok()) return h;
  ListPage page;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), assets_cf_));
  if (q.cursor.empty()) {
    it->SeekToFirst();
  } else {
    it->Seek(q.cursor);
    if (it->Valid() && it->key() == rocksdb::Slice(q.cursor)) it->Next();  // the cursor is the last id returned
  }
  for (; it->Valid(); it->Next()) {
    Asset a;
    if (Status d = DecodeAsset(std::string_view(it->value().data(), it->value().size()), &a); !d.ok()) {
      return Status::Corruption("stored asset '" + it->key().ToString() + "' is unreadable: " + d.message());
    }
    if (a.deleted) continue;
    if (!q.type.empty() && a.type != q.type) continue;
    if (!q.stage.empty() && std::find(a.stages.begin(), a.stages.end(), q.stage) == a.stages.end()) continue;
    if (page.assets.size() == q.limit) {  // one more exists: there is a next page
      page.next_cursor = page.assets.back().id;
      break;
    }
    if (q.with_vectors) {
      std::string v;
      rocksdb::Status got = db_->Get(rocksdb::ReadOptions(), vectors_cf_, a.id, &v);
      if (got.IsNotFound()) return Status::Corruption("live asset '" + a.id + "' has no stored vector");
      if (!got.ok()) return FromRocks(got, "reading the vector of asset '" + a.id + "'");
      if (!DecodeVector(v, options_.dimension, &a.vector).ok()) {
        return Status::Corruption("stored vector of asset '" + a.id + "' has the wrong size");
      }
    }
    page.assets.push_back(std::move(a));
  }
  if (!it->status().ok()) return FromRocks(it->status(), "listing assets");
  return page;
}

}  // namespace playbook
