// Handlers of recommend, feedback.record and leads.get.
#include "playbook/engine/engine.h"
#include "playbook/server/methods.h"
#include "playbook/server/requests.h"

namespace playbook::server {
namespace {

json EventJson(const Event& e) {
  json j{{"event_id", e.event_id}, {"type", EventTypeName(e.type)}, {"lead_id", e.lead_id}, {"ts", e.ts}};
  if (!e.asset_id.empty()) j["asset_id"] = e.asset_id;
  if (!e.stage.empty()) j["stage"] = e.stage;
  if (!e.rep_id.empty()) j["rep_id"] = e.rep_id;
  if (!e.recommendation_id.empty()) j["recommendation_id"] = e.recommendation_id;
  if (!e.reason.empty()) j["reason"] = e.reason;
  if (e.type == EventType::kWon) j["amount"] = e.amount;
  return j;
}

}  // namespace

void AddFeedbackMethods(Dispatcher& d, Engine& engine) {
  d.Add({"recommend", Role::kCrm, [&engine](const json& params, const CallContext&) -> Result<json> {
           auto req = ParseRecommend(params);
           if (!req.ok()) return req.status();
           auto rec = engine.Recommend(req.value());
           if (!rec.ok()) return rec.status();
           json items(json::value_t::array);
           auto& list = items.get_ref<json::array_t&>();
           list.reserve(rec.value().items.size());
           for (RecommendedItem& it : rec.value().items) {
             // Members emplaced, not an initializer list (a temporary array per member).
             auto& item = list.emplace_back(json::value_t::object).get_ref<json::object_t&>();
             item.emplace("asset_id", std::move(it.asset_id));
             item.emplace("title", std::move(it.title));
             item.emplace("type", std::move(it.type));
             item.emplace("url", std::move(it.url));
             item.emplace("score", it.score);
             item.emplace("reasons", std::move(it.reasons));
           }
           return json{{"recommendation_id", std::move(rec.value().id)}, {"items", std::move(items)}};
         }});

  d.Add({"feedback.record", Role::kCrm, [&engine](const json& params, const CallContext&) -> Result<json> {
           auto events = ParseFeedbackRecord(params);
           if (!events.ok()) return events.status();
           auto res = engine.RecordEvents(std::move(events).value());
           if (!res.ok()) return res.status();
           return json{{"accepted", res.value().accepted},
                       {"duplicates", res.value().duplicates},
                       {"unknown_leads", res.value().unknown_leads},
                       {"unknown_assets", res.value().unknown_assets}};
         }});

  d.Add({"leads.get", Role::kCrm, [&engine](const json& params, const CallContext&) -> Result<json> {
           auto id = ParseLeadsGet(params);
           if (!id.ok()) return id.status();
           auto lead = engine.GetLead(id.value());
           if (!lead.ok()) return lead.status();
           json history = json::array();
           for (const Event& e : lead.value().history) history.push_back(EventJson(e));
           return json{{"id", lead.value().id},
                       {"stage", lead.value().stage.empty() ? json() : json(lead.value().stage)},
                       {"history", std::move(history)}};
         }});
}

}  // namespace playbook::server
