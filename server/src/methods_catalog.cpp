// Handlers of assets.* and index.*: JSON to typed requests, the engine call,
// typed results to JSON.
#include <memory>

#include "playbook/engine/engine.h"
#include "playbook/server/methods.h"
#include "playbook/server/requests.h"

namespace playbook::server {
namespace {

json AssetJson(const Asset& a) {
  json j{{"id", a.id},           {"title", a.title},   {"body", a.body},
         {"url", a.url},         {"language", a.language}, {"type", a.type},
         {"stages", a.stages},   {"tags", a.tags},     {"active", a.active},
         {"vector_source", a.vector_supplied ? "client" : "embedder"},
         {"created_ms", a.created_ms}, {"updated_ms", a.updated_ms}};
  j["variant_of"] = a.variant_of.empty() ? json() : json(a.variant_of);
  if (!a.vector.empty()) j["vector"] = a.vector;
  return j;
}

}  // namespace

void AddCatalogMethods(Dispatcher& d, Engine& engine) {
  const uint32_t dim = engine.options().dimension;

  d.Add({"assets.upsert", Role::kMarketing, [&engine](const json& params, const CallContext&) -> Result<json> {
           auto assets = ParseAssetsUpsert(params);
           if (!assets.ok()) return assets.status();
           auto res = engine.UpsertAssets(std::move(assets).value());
           if (!res.ok()) return res.status();
           return json{{"upserted", res.value().upserted},
                       {"created", res.value().created},
                       {"updated", res.value().updated}};
         }});

  d.Add({"assets.get", Role::kCrm, [&engine](const json& params, const CallContext&) -> Result<json> {
           auto req = ParseAssetsGet(params);
           if (!req.ok()) return req.status();
           std::vector<std::string> missing;
           auto got = engine.GetAssets(req.value().ids, req.value().with_vectors, &missing);
           if (!got.ok()) return got.status();
           json assets = json::array();
           for (const Asset& a : got.value()) assets.push_back(AssetJson(a));
           return json{{"assets", std::move(assets)}, {"missing", missing}};
         }});

  d.Add({"assets.delete", Role::kMarketing, [&engine](const json& params, const CallContext&) -> Result<json> {
           auto ids = ParseAssetsDelete(params);
           if (!ids.ok()) return ids.status();
           auto n = engine.DeleteAssets(ids.value());
           if (!n.ok()) return n.status();
           return json{{"deleted", n.value()}};
         }});

  d.Add({"assets.list", Role::kMarketing, [&engine](const json& params, const CallContext&) -> Result<json> {
           auto q = ParseAssetsList(params);
           if (!q.ok()) return q.status();
           auto page = engine.ListAssets(q.value());
           if (!page.ok()) return page.status();
           json assets = json::array();
           for (const Asset& a : page.value().assets) assets.push_back(AssetJson(a));
           return json{{"assets", std::move(assets)},
                       {"next_cursor", page.value().next_cursor ? json(*page.value().next_cursor) : json()}};
         }});

  // An extension for marketing: what would a search at this stage return?
  d.Add({"assets.search", Role::kMarketing, [&engine, dim](const json& params, const CallContext&) -> Result<json> {
           auto req = ParseAssetsSearch(params);
           if (!req.ok()) return req.status();
           std::vector<float>& q = req.value().vector;
           if (!q.empty() && q.size() != dim) {
             return Status::InvalidArgument("vector", "expected " + std::to_string(dim) + " numbers, got " +
                                                          std::to_string(q.size()));
           }
           if (q.empty()) {
             q.resize(dim);
             if (Status s = engine.Embed(*req.value().query, q.data()); !s.ok()) return s;
           }
           // The display fields come from the index's memory, read with the
           // hits: no storage read on the answer path.
           auto hits = engine.SearchItems(q.data(), req.value().filter, req.value().k);
           if (!hits.ok()) return hits.status();
           json items(json::value_t::array);
           auto& list = items.get_ref<json::array_t&>();
           list.reserve(hits.value().size());
           for (SearchItem& h : hits.value()) {
             // Members emplaced, not an initializer list (a temporary array per member).
             auto& item = list.emplace_back(json::value_t::object).get_ref<json::object_t&>();
             item.emplace("asset_id", std::move(h.asset_id));
             item.emplace("score", h.score);
             item.emplace("title", std::move(h.title));
             item.emplace("type", std::move(h.type));
             item.emplace("url", std::move(h.url));
             item.emplace("variant_of", h.variant_of.empty() ? json() : json(std::move(h.variant_of)));
           }
           return json{{"items", std::move(items)}};
         }});

  d.Add({"index.status", Role::kAdmin, [&engine](const json& params, const CallContext&) -> Result<json> {
           if (Status s = ParseNoParams(params); !s.ok()) return s;
           IndexStatus st = engine.GetIndexStatus();
           return json{{"assets", st.assets},         {"dimension", st.dimension},
                       {"embedder", st.embedder},     {"index", st.index},
                       {"rebuilding", st.rebuilding}, {"graph", st.graph},
                       {"ann_assets", st.ann_assets},
                       {"exact_assets", st.exact_assets}, {"stale_vectors", st.stale_vectors},
                       {"catalog_seq", st.catalog_seq}, {"concepts_pending", st.concepts_pending},
                       {"reembed_error", st.reembed_error.empty() ? json() : json(st.reembed_error)}};
         }});

  d.Add({"index.rebuild", Role::kAdmin, [&engine](const json& params, const CallContext& ctx) -> Result<json> {
           if (Status s = ParseNoParams(params); !s.ok()) return s;
           auto notify = ctx.notify;
           auto job = engine.StartRebuild([notify](const std::string& job_id, uint64_t done, uint64_t total) {
             if (notify) {
               notify(MakeNotification("index.progress",
                                       {{"job_id", job_id}, {"done", done}, {"total", total}}));
             }
           });
           if (!job.ok()) return job.status();
           return json{{"job_id", job.value()}};
         }});
}

}  // namespace playbook::server
