// Handlers of recommend, feedback.record and leads.get.
#include "playbook/engine/engine.h"
#include "playbook/server/methods.h"
#include "playbook/server/params.h"

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
           ParamReader r(params);
           RecommendRequest req;
           const json* lead = r.Raw("lead");
           if (lead == nullptr || lead->is_null()) {
             r.Fail("lead", "required: {\"id\", \"stage\", \"context\"?}");
           } else {
             ParamReader lr(*lead, "lead");
             req.lead_id = lr.String("id", 256);
             req.stage = lr.String("stage", 64);
             req.context = lr.OptString("context", 1 << 16).value_or("");
             req.vector = lr.Floats("vector", 4096);  // the engine checks the dimension
             if (const json* attrs = lr.Raw("attributes"); attrs != nullptr && !attrs->is_null()) {
               if (!attrs->is_object()) {
                 lr.Fail("attributes", "expected an object of strings");
               } else {
                 for (auto it = attrs->begin(); it != attrs->end(); ++it) {
                   if (!it->is_string()) lr.Fail("attributes." + it.key(), "expected a string");
                 }
               }
             }
             if (Status s = lr.Finish(); !s.ok()) return s;
           }
           req.k = size_t(r.Int("k", 5, 1, 100));
           if (const json* filter = r.Raw("filter"); filter != nullptr && !filter->is_null()) {
             ParamReader fr(*filter, "filter");
             req.filter.types = fr.Strings("types", false, 64);
             req.filter.language = fr.OptString("language", 35).value_or("");
             req.filter.tags_any = fr.Strings("tags_any", false, 64);
             if (Status s = fr.Finish(); !s.ok()) return s;
           }
           req.exclude_seen = r.Bool("exclude_seen", true);
           req.filter.exclude_ids = r.Strings("exclude_ids", false, 1000);
           req.rep_id = r.OptString("rep_id", 256).value_or("");
           if (Status s = r.Finish(); !s.ok()) return s;
           auto rec = engine.Recommend(req);
           if (!rec.ok()) return rec.status();
           json items = json::array();
           for (const RecommendedItem& it : rec.value().items) {
             items.push_back({{"asset_id", it.asset_id}, {"title", it.title}, {"type", it.type},
                              {"url", it.url}, {"score", it.score}, {"reasons", it.reasons}});
           }
           return json{{"recommendation_id", rec.value().id}, {"items", std::move(items)}};
         }});

  d.Add({"feedback.record", Role::kCrm, [&engine](const json& params, const CallContext&) -> Result<json> {
           ParamReader r(params);
           const json* list = r.Raw("events");
           if (Status s = r.Finish(); !s.ok()) return s;
           if (list == nullptr || !list->is_array()) return Status::InvalidArgument("events", "required: an array of events");
           std::vector<Event> events;
           events.reserve(list->size());
           for (size_t i = 0; i < list->size(); ++i) {
             ParamReader er((*list)[i], "events[" + std::to_string(i) + "]");
             Event e;
             e.event_id = er.String("event_id", 256);
             const std::string type = er.String("type", 32);
             if (er.ok() && (!ParseEventType(type, &e.type) || e.type == EventType::kShown)) {
               er.Fail("type", "unknown type '" + type + "'; one of used, viewed, dismissed, stage_changed, won, lost");
             }
             e.lead_id = er.String("lead_id", 256);
             e.asset_id = er.OptString("asset_id", 128).value_or("");
             e.stage = er.OptString("stage", 64).value_or("");
             e.rep_id = er.OptString("rep_id", 256).value_or("");
             e.recommendation_id = er.OptString("recommendation_id", 256).value_or("");
             e.reason = er.OptString("reason", 1000).value_or("");
             e.amount = er.OptNumber("amount").value_or(0);
             e.ts = er.Int("ts", 0, 0, INT64_MAX / 2);
             if (Status s = er.Finish(); !s.ok()) return s;
             events.push_back(std::move(e));
           }
           auto res = engine.RecordEvents(std::move(events));
           if (!res.ok()) return res.status();
           return json{{"accepted", res.value().accepted},
                       {"duplicates", res.value().duplicates},
                       {"unknown_leads", res.value().unknown_leads},
                       {"unknown_assets", res.value().unknown_assets}};
         }});

  d.Add({"leads.get", Role::kCrm, [&engine](const json& params, const CallContext&) -> Result<json> {
           ParamReader r(params);
           const std::string id = r.String("id", 256);
           if (Status s = r.Finish(); !s.ok()) return s;
           auto lead = engine.GetLead(id);
           if (!lead.ok()) return lead.status();
           json history = json::array();
           for (const Event& e : lead.value().history) history.push_back(EventJson(e));
           return json{{"id", lead.value().id},
                       {"stage", lead.value().stage.empty() ? json() : json(lead.value().stage)},
                       {"history", std::move(history)}};
         }});
}

}  // namespace playbook::server
