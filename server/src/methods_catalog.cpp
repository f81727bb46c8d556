// Handlers of assets.* and index.*: JSON to typed requests, the engine call,
// typed results to JSON.
#include <memory>

#include "playbook/engine/engine.h"
#include "playbook/server/methods.h"
#include "playbook/server/params.h"

namespace playbook::server {
namespace {

constexpr size_t kMaxIds = 1000;

// One asset of assets.upsert; `path` is "assets[3]".
Asset ReadAsset(const json& v, const std::string& path, Status* error) {
  Asset a;
  ParamReader r(v, path);
  a.id = r.String("id", 128);
  a.title = r.String("title", 4096);
  a.body = r.OptString("body").value_or("");
  a.url = r.OptString("url", 4096).value_or("");
  a.language = r.OptString("language", 35).value_or("");
  a.type = r.String("type", 64);
  a.stages = r.Strings("stages", /*required=*/true, 64);
  if (r.ok() && a.stages.empty()) r.Fail("stages", "at least one stage");
  a.tags = r.Strings("tags", /*required=*/false, 64);
  a.vector = r.Floats("vector", 4096);  // the engine checks the dimension
  a.active = r.Bool("active", true);
  *error = r.Finish();
  return a;
}

json AssetJson(const Asset& a) {
  json j{{"id", a.id},           {"title", a.title},   {"body", a.body},
         {"url", a.url},         {"language", a.language}, {"type", a.type},
         {"stages", a.stages},   {"tags", a.tags},     {"active", a.active},
         {"vector_source", a.vector_supplied ? "client" : "embedder"},
         {"created_ms", a.created_ms}, {"updated_ms", a.updated_ms}};
  if (!a.vector.empty()) j["vector"] = a.vector;
  return j;
}

std::vector<std::string> ReadIds(ParamReader& r) {
  std::vector<std::string> ids = r.Strings("ids", /*required=*/true, kMaxIds);
  return ids;
}

}  // namespace

void AddCatalogMethods(Dispatcher& d, Engine& engine) {
  const uint32_t dim = engine.options().dimension;

  d.Add({"assets.upsert", Role::kMarketing, [&engine](const json& params, const CallContext&) -> Result<json> {
           ParamReader r(params);
           const json* list = r.Raw("assets");
           if (Status s = r.Finish(); !s.ok()) return s;
           if (list == nullptr || !list->is_array()) {
             return Status::InvalidArgument("assets", "required: an array of assets");
           }
           if (list->empty()) return Status::InvalidArgument("assets", "at least one asset");
           std::vector<Asset> assets;
           assets.reserve(list->size());
           for (size_t i = 0; i < list->size(); ++i) {
             Status s;
             assets.push_back(ReadAsset((*list)[i], "assets[" + std::to_string(i) + "]", &s));
             if (!s.ok()) return s;
           }
           auto res = engine.UpsertAssets(std::move(assets));
           if (!res.ok()) return res.status();
           return json{{"upserted", res.value().upserted},
                       {"created", res.value().created},
                       {"updated", res.value().updated}};
         }});

  d.Add({"assets.get", Role::kCrm, [&engine](const json& params, const CallContext&) -> Result<json> {
           ParamReader r(params);
           std::vector<std::string> ids = ReadIds(r);
           const bool with_vectors = r.Bool("with_vectors", false);
           if (Status s = r.Finish(); !s.ok()) return s;
           std::vector<std::string> missing;
           auto got = engine.GetAssets(ids, with_vectors, &missing);
           if (!got.ok()) return got.status();
           json assets = json::array();
           for (const Asset& a : got.value()) assets.push_back(AssetJson(a));
           return json{{"assets", std::move(assets)}, {"missing", missing}};
         }});

  d.Add({"assets.delete", Role::kMarketing, [&engine](const json& params, const CallContext&) -> Result<json> {
           ParamReader r(params);
           std::vector<std::string> ids = ReadIds(r);
           if (Status s = r.Finish(); !s.ok()) return s;
           auto n = engine.DeleteAssets(ids);
           if (!n.ok()) return n.status();
           return json{{"deleted", n.value()}};
         }});

  d.Add({"assets.list", Role::kMarketing, [&engine](const json& params, const CallContext&) -> Result<json> {
           ParamReader r(params);
           ListQuery q;
           q.stage = r.OptString("stage", 64).value_or("");
           q.type = r.OptString("type", 64).value_or("");
           q.cursor = r.OptString("cursor", 256).value_or("");
           q.limit = uint32_t(r.Int("limit", 100, 1, 1000));
           q.with_vectors = r.Bool("with_vectors", false);
           if (Status s = r.Finish(); !s.ok()) return s;
           auto page = engine.ListAssets(q);
           if (!page.ok()) return page.status();
           json assets = json::array();
           for (const Asset& a : page.value().assets) assets.push_back(AssetJson(a));
           return json{{"assets", std::move(assets)},
                       {"next_cursor", page.value().next_cursor ? json(*page.value().next_cursor) : json()}};
         }});

  // An extension for marketing: what would a search at this stage return?
  d.Add({"assets.search", Role::kMarketing, [&engine, dim](const json& params, const CallContext&) -> Result<json> {
           ParamReader r(params);
           AssetFilter f;
           f.stage = r.String("stage", 64);
           const std::optional<std::string> query = r.OptString("query", 1 << 16);
           std::vector<float> q = r.Floats("vector", 4096);
           const size_t k = size_t(r.Int("k", 10, 1, 100));
           f.exclude_ids = r.Strings("exclude_ids", false, kMaxIds);
           if (const json* filter = r.Raw("filter"); filter != nullptr && !filter->is_null()) {
             ParamReader fr(*filter, "filter");
             f.types = fr.Strings("types", false, 64);
             f.language = fr.OptString("language", 35).value_or("");
             f.tags_any = fr.Strings("tags_any", false, 64);
             if (Status s = fr.Finish(); !s.ok()) return s;
           }
           if (Status s = r.Finish(); !s.ok()) return s;
           if (!q.empty() && q.size() != dim) {
             return Status::InvalidArgument("vector", "expected " + std::to_string(dim) + " numbers, got " +
                                                          std::to_string(q.size()));
           }
           if (q.empty()) {
             if (!query) return Status::InvalidArgument("query", "required: a query text or a vector");
             q.resize(dim);
             engine.Embed(*query, q.data());
           }
           auto hits = engine.Search(q.data(), f, k);
           if (!hits.ok()) return hits.status();
           std::vector<std::string> ids;
           for (const auto& h : hits.value()) ids.push_back(h.asset_id);
           auto assets = engine.GetAssets(ids, false, nullptr);
           if (!assets.ok()) return assets.status();
           json items = json::array();
           for (size_t i = 0; i < hits.value().size(); ++i) {
             const auto& h = hits.value()[i];
             json item{{"asset_id", h.asset_id}, {"score", h.score}};
             for (const Asset& a : assets.value()) {
               if (a.id == h.asset_id) {
                 item["title"] = a.title;
                 item["type"] = a.type;
                 item["url"] = a.url;
               }
             }
             items.push_back(std::move(item));
           }
           return json{{"items", std::move(items)}};
         }});

  d.Add({"index.status", Role::kAdmin, [&engine](const json& params, const CallContext&) -> Result<json> {
           ParamReader r(params);
           if (Status s = r.Finish(); !s.ok()) return s;
           IndexStatus st = engine.GetIndexStatus();
           return json{{"assets", st.assets},         {"dimension", st.dimension},
                       {"embedder", st.embedder},     {"index", st.index},
                       {"rebuilding", st.rebuilding}, {"ann_assets", st.ann_assets},
                       {"exact_assets", st.exact_assets}, {"stale_vectors", st.stale_vectors},
                       {"catalog_seq", st.catalog_seq}};
         }});

  d.Add({"index.rebuild", Role::kAdmin, [&engine](const json& params, const CallContext& ctx) -> Result<json> {
           ParamReader r(params);
           if (Status s = r.Finish(); !s.ok()) return s;
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
