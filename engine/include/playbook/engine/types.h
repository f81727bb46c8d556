// The engine's value types: assets, filters, search hits, index status.
// Plain data; no behaviour beyond what the comments state.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace playbook {

// A marketing asset: the thing Playbook recommends.
struct Asset {
  std::string id;        // 1..128 chars of [A-Za-z0-9._:-]
  std::string title;     // non-empty
  std::string body;      // optional text, embedded with the title
  std::string url;       // optional
  std::string language;  // optional: "zh", "en", ...
  std::string type;      // lower-case, free-form: case_study, roi_calculator, ...
  std::vector<std::string> stages;  // configured stage names, non-empty
  std::vector<std::string> tags;    // optional
  // On input: the client's vector (configured dimension) or empty, when the
  // embedder computes one. On output: filled only when asked for.
  std::vector<float> vector;
  bool active = true;  // inactive assets are never recommended

  // Set by the engine; ignored on input.
  bool vector_supplied = false;  // the client brought the vector: never re-embedded
  std::string embedder;          // name of the embedder that made the vector, "" when supplied
  int64_t created_ms = 0;
  int64_t updated_ms = 0;
  bool deleted = false;  // kept as a tombstone so reports can name it
};

struct UpsertResult {
  uint64_t upserted = 0;  // == created + updated
  uint64_t created = 0;   // new ids (or ids that had been deleted)
  uint64_t updated = 0;
};

// Hard constraints of a search: an asset outside them is never returned.
struct AssetFilter {
  std::string stage;                    // required: a configured stage
  std::vector<std::string> types;       // any of; empty = all
  std::string language;                 // exact; empty = all
  std::vector<std::string> tags_any;    // at least one of; empty = all
  std::vector<std::string> exclude_ids; // never these
};

struct SearchHit {
  std::string asset_id;
  float score = 0;  // inner product of unit vectors, -1..1
};

struct ListQuery {
  std::string stage;   // empty = all
  std::string type;    // empty = all
  std::string cursor;  // from a previous page's next_cursor; empty = from the start
  uint32_t limit = 100;
  bool with_vectors = false;
};

struct ListPage {
  std::vector<Asset> assets;
  std::optional<std::string> next_cursor;  // nullopt on the last page
};

struct IndexStatus {
  uint64_t assets = 0;  // live (undeleted) assets, active or not
  uint32_t dimension = 0;
  std::string embedder;  // the embedder's Name()
  std::string index;     // "exact" or "hnsw(M=16,efC=64)+exact" ...
  bool rebuilding = false;
  uint64_t ann_assets = 0;    // assets covered by the ANN structure
  uint64_t exact_assets = 0;  // assets searched exactly (added since the last build)
  uint64_t stale_vectors = 0; // embedder-made vectors from another embedder version
  uint64_t catalog_seq = 0;   // bumped by every catalog write
};

}  // namespace playbook
