#include "codec.h"

#include <algorithm>
#include <cstring>

namespace playbook {
namespace {

// 2 added variant_of (after updated_ms); a record of format 1 still decodes
// (no variant_of) and is written back in format 2.

void PutVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(char(v | 0x80));
    v >>= 7;
  }
  out->push_back(char(v));
}

void PutString(std::string* out, std::string_view s) {
  PutVarint(out, s.size());
  out->append(s);
}

void PutI64(std::string* out, int64_t v) {
  char b[8];
  std::memcpy(b, &v, 8);
  out->append(b, 8);
}

struct Input {
  std::string_view in;
  bool ok = true;
  uint64_t Varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64 && ok; shift += 7) {
      if (in.empty()) break;
      const uint8_t b = uint8_t(in.front());
      in.remove_prefix(1);
      v |= uint64_t(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
    ok = false;
    return 0;
  }
  std::string String() {
    const uint64_t n = Varint();
    if (!ok || n > in.size()) {
      ok = false;
      return {};
    }
    std::string s(in.substr(0, n));
    in.remove_prefix(n);
    return s;
  }
  int64_t I64() {
    if (in.size() < 8) {
      ok = false;
      return 0;
    }
    int64_t v;
    std::memcpy(&v, in.data(), 8);
    in.remove_prefix(8);
    return v;
  }
  std::vector<std::string> Strings() {
    const uint64_t n = Varint();
    std::vector<std::string> v;
    for (uint64_t i = 0; i < n && ok; ++i) v.push_back(String());
    return v;
  }
};

}  // namespace

std::string EncodeAsset(const Asset& a) {
  std::string out;
  out.push_back(char(kAssetFormat));
  PutString(&out, a.id);
  PutString(&out, a.title);
  PutString(&out, a.body);
  PutString(&out, a.url);
  PutString(&out, a.language);
  PutString(&out, a.type);
  PutVarint(&out, a.stages.size());
  for (const auto& s : a.stages) PutString(&out, s);
  PutVarint(&out, a.tags.size());
  for (const auto& t : a.tags) PutString(&out, t);
  out.push_back(char((a.active ? 1 : 0) | (a.vector_supplied ? 2 : 0) | (a.deleted ? 4 : 0)));
  PutString(&out, a.embedder);
  PutI64(&out, a.created_ms);
  PutI64(&out, a.updated_ms);
  PutString(&out, a.variant_of);
  return out;
}

Status DecodeAsset(std::string_view bytes, Asset* a) {
  if (bytes.empty() || uint8_t(bytes[0]) < 1 || uint8_t(bytes[0]) > kAssetFormat) {
    return Status::Corruption("asset record of unknown format");
  }
  const uint8_t format = uint8_t(bytes[0]);
  Input in{bytes.substr(1)};
  a->id = in.String();
  a->title = in.String();
  a->body = in.String();
  a->url = in.String();
  a->language = in.String();
  a->type = in.String();
  a->stages = in.Strings();
  a->tags = in.Strings();
  if (in.in.empty()) return Status::Corruption("truncated asset record");
  const uint8_t flags = uint8_t(in.in.front());
  in.in.remove_prefix(1);
  a->active = flags & 1;
  a->vector_supplied = flags & 2;
  a->deleted = flags & 4;
  a->embedder = in.String();
  a->created_ms = in.I64();
  a->updated_ms = in.I64();
  a->variant_of.clear();
  if (format >= 2) a->variant_of = in.String();
  if (!in.ok) return Status::Corruption("truncated asset record");
  // The current format is exact (a format-1 record was read leniently, as it was).
  if (format >= 2 && !in.in.empty()) return Status::Corruption("bytes after the asset record");
  return Status::Ok();
}

std::string EncodeVector(const float* v, uint32_t dim) {
  return std::string(reinterpret_cast<const char*>(v), sizeof(float) * dim);
}

Status DecodeVector(std::string_view bytes, uint32_t dim, std::vector<float>* out) {
  if (bytes.size() != sizeof(float) * dim) return Status::Corruption("vector of the wrong size");
  out->resize(dim);
  if (dim > 0) std::memcpy(out->data(), bytes.data(), bytes.size());  // data() may be null at 0
  return Status::Ok();
}

// ---------------------------------------------------------------------------
// Events and lead states: strings as a 4-byte length and the bytes, numbers as
// 8 little-endian bytes.

namespace {

// 5 added the same-terms bit (the terms count's top bit), 4 the terms, 3 the
// arm, 2 the topic; 1 to 4 are still read.
constexpr uint32_t kSameTermsBit = 0x80000000u;

void PutStr(std::string* out, const std::string& s) {
  const uint32_t n = uint32_t(s.size());
  out->append(reinterpret_cast<const char*>(&n), 4);
  out->append(s);
}

void PutCount(std::string* out, size_t n) {
  const uint32_t v = uint32_t(n);
  out->append(reinterpret_cast<const char*>(&v), 4);
}

// The hot records (events, lead states) are encoded in two passes over their
// fields: one sizes the record, one writes it into the string resized once,
// rather than appended to field by field (a capacity check and a memmove call
// per field, a lead's uses four strings each). Same bytes as PutStr & co.
struct SizeSink {
  size_t n = 0;
  void Byte(char) { ++n; }
  void Raw(const void*, size_t len) { n += len; }
  void Str(const std::string& s) { n += 4 + s.size(); }
  void I64(int64_t) { n += 8; }
  void Count(size_t) { n += 4; }
};
struct WriteSink {
  char* p;
  void Byte(char c) { *p++ = c; }
  void Raw(const void* d, size_t len) {
    std::memcpy(p, d, len);
    p += len;
  }
  void Str(const std::string& s) {
    Count(s.size());
    Raw(s.data(), s.size());
  }
  void I64(int64_t v) { Raw(&v, 8); }
  void Count(size_t n) {
    const uint32_t v = uint32_t(n);
    Raw(&v, 4);
  }
};
template <class Fields>
void EncodeTwoPass(std::string* out, const Fields& fields) {
  SizeSink size;
  fields(size);
  out->resize(size.n);
  WriteSink w{out->data()};
  fields(w);
}

bool GetStr(std::string_view* in, std::string* s) {
  uint32_t n;
  if (in->size() < 4) return false;
  std::memcpy(&n, in->data(), 4);
  in->remove_prefix(4);
  if (in->size() < n) return false;
  s->assign(in->data(), n);
  in->remove_prefix(n);
  return true;
}

}  // namespace

std::string EncodeEvent(const Event& e) {
  std::string out;
  EncodeEventTo(e, &out);
  return out;
}

void EncodeEventTo(const Event& e, std::string* to) {
  EncodeTwoPass(to, [&e](auto& out) {
    out.Byte(char(kEventFormat));
    out.Byte(char(e.type));
    for (const std::string* s : {&e.event_id, &e.lead_id, &e.asset_id, &e.stage, &e.rep_id, &e.recommendation_id,
                                 &e.reason, &e.topic}) {
      out.Str(*s);
    }
    out.Byte(char(e.arm));
    out.Raw(&e.amount, 8);
    out.I64(e.ts);
    out.Count(uint32_t(e.terms.size()) | (e.same_terms ? kSameTermsBit : 0));
    for (const std::string& t : e.terms) out.Str(t);
  });
}

bool DecodeEvent(std::string_view in, Event* e) {
  if (in.size() < 2 || uint8_t(in[0]) < 1 || uint8_t(in[0]) > kEventFormat) return false;
  const uint8_t in_format = uint8_t(in[0]);
  const bool has_topic = uint8_t(in[0]) >= 2, has_arm = uint8_t(in[0]) >= 3, has_terms = uint8_t(in[0]) >= 4;
  e->type = EventType(uint8_t(in[1]));
  in.remove_prefix(2);
  if (!GetStr(&in, &e->event_id) || !GetStr(&in, &e->lead_id) || !GetStr(&in, &e->asset_id) ||
      !GetStr(&in, &e->stage) || !GetStr(&in, &e->rep_id) || !GetStr(&in, &e->recommendation_id) ||
      !GetStr(&in, &e->reason) || (has_topic && !GetStr(&in, &e->topic)) ||
      (has_terms ? in.size() < 21u : in.size() != (has_arm ? 17u : 16u))) {
    return false;
  }
  e->arm = Arm::kNone;
  if (has_arm) {
    if (uint8_t(in[0]) > uint8_t(Arm::kHoldout)) return false;
    e->arm = Arm(uint8_t(in[0]));
    in.remove_prefix(1);
  }
  std::memcpy(&e->amount, in.data(), 8);
  std::memcpy(&e->ts, in.data() + 8, 8);
  in.remove_prefix(16);
  e->terms.clear();
  e->same_terms = false;
  if (!has_terms) return true;
  uint32_t n = 0;
  std::memcpy(&n, in.data(), 4);
  in.remove_prefix(4);
  if (in_format >= 5 && (n & kSameTermsBit) != 0) {
    e->same_terms = true;
    n &= ~kSameTermsBit;
  }
  for (uint32_t i = 0; i < n; ++i) {  // never reserves by the stored count
    if (!GetStr(&in, &e->terms.emplace_back())) return false;
  }
  return in.empty();
}

namespace {

// A run's per-event flags: the event marks its terms the same as the first's;
// it carries the run's terms; its id is "<recommendation id>:<asset>" (not stored).
constexpr uint8_t kRunSameTerms = 1, kRunTerms = 2, kRunDerivedId = 4;

bool RunDerivedId(const Event& e) {
  const std::string& id = e.event_id;
  const size_t r = e.recommendation_id.size();
  return id.size() == r + 1 + e.asset_id.size() && id.compare(0, r, e.recommendation_id) == 0 && id[r] == ':' &&
         id.compare(r + 1, std::string::npos, e.asset_id) == 0;
}

}  // namespace

bool ShownRunFits(const Event* const* events, size_t n) {
  if (n < 2 || n > 0xffffffffu) return false;
  const Event& first = *events[0];
  for (size_t i = 0; i < n; ++i) {
    const Event& e = *events[i];
    if (e.type != EventType::kShown || e.lead_id != first.lead_id || e.recommendation_id != first.recommendation_id ||
        e.stage != first.stage || e.rep_id != first.rep_id || e.topic != first.topic || e.arm != first.arm ||
        e.ts != first.ts || e.amount != 0 || !e.reason.empty() || (!e.terms.empty() && e.terms != first.terms)) {
      return false;
    }
  }
  return true;
}

void EncodeShownRunTo(const Event* const* events, size_t n, std::string* to) {
  std::string& out = *to;
  const Event& first = *events[0];
  out.clear();
  out.push_back(char(kShownRunFormat));
  PutStr(&out, first.lead_id);
  PutStr(&out, first.recommendation_id);
  PutStr(&out, first.stage);
  PutStr(&out, first.rep_id);
  PutStr(&out, first.topic);
  out.push_back(char(first.arm));
  PutI64(&out, first.ts);
  PutCount(&out, first.terms.size());
  for (const std::string& t : first.terms) PutStr(&out, t);
  PutCount(&out, n);
  for (size_t i = 0; i < n; ++i) {
    const Event& e = *events[i];
    const bool derived_id = RunDerivedId(e);
    out.push_back(char((e.same_terms ? kRunSameTerms : 0) | (e.terms.empty() ? 0 : kRunTerms) |
                       (derived_id ? kRunDerivedId : 0)));
    PutStr(&out, e.asset_id);
    if (!derived_id) PutStr(&out, e.event_id);
  }
}

namespace {

Status DecodeShownRun(std::string_view in, std::vector<Event>* out) {
  auto bad = [](const char* what) { return Status::Corruption(std::string("shown run record: ") + what); };
  in.remove_prefix(1);
  Event head;
  head.type = EventType::kShown;
  if (!GetStr(&in, &head.lead_id) || !GetStr(&in, &head.recommendation_id) || !GetStr(&in, &head.stage) ||
      !GetStr(&in, &head.rep_id) || !GetStr(&in, &head.topic)) {
    return bad("truncated in its shared fields");
  }
  if (in.size() < 13) return bad("truncated before its ts");
  if (uint8_t(in[0]) > uint8_t(Arm::kHoldout)) return bad("unknown arm");
  head.arm = Arm(uint8_t(in[0]));
  std::memcpy(&head.ts, in.data() + 1, 8);
  uint32_t terms = 0;
  std::memcpy(&terms, in.data() + 9, 4);
  in.remove_prefix(13);
  std::vector<std::string> run_terms;
  for (uint32_t i = 0; i < terms; ++i) {  // never reserves by the stored count
    if (!GetStr(&in, &run_terms.emplace_back())) return bad("truncated in its terms");
  }
  if (in.size() < 4) return bad("truncated before its event count");
  uint32_t n = 0;
  std::memcpy(&n, in.data(), 4);
  in.remove_prefix(4);
  if (n < 2) return bad("fewer than two events");
  const size_t before = out->size();
  for (uint32_t i = 0; i < n; ++i) {  // each event needs bytes that are there
    if (in.size() < 5) {
      out->resize(before);
      return bad("truncated in its events");
    }
    const uint8_t flags = uint8_t(in[0]);
    in.remove_prefix(1);
    // The run's terms are its first event's (as EncodeShownRunTo writes them).
    if (flags > (kRunSameTerms | kRunTerms | kRunDerivedId) || ((flags & kRunTerms) && run_terms.empty()) ||
        (i == 0 && !run_terms.empty() && !(flags & kRunTerms))) {
      out->resize(before);
      return bad("unknown event flags");
    }
    Event& e = out->emplace_back(head);
    if (!GetStr(&in, &e.asset_id) || (!(flags & kRunDerivedId) && !GetStr(&in, &e.event_id))) {
      out->resize(before);
      return bad("truncated in its events");
    }
    if (flags & kRunDerivedId) e.event_id.assign(e.recommendation_id).append(":").append(e.asset_id);
    e.same_terms = flags & kRunSameTerms;
    if (flags & kRunTerms) e.terms = run_terms;
  }
  if (!in.empty()) {
    out->resize(before);
    return bad("bytes after its last event");
  }
  return Status::Ok();
}

}  // namespace

Status DecodeEventRecord(std::string_view in, std::vector<Event>* out) {
  if (!in.empty() && uint8_t(in[0]) == kShownRunFormat) return DecodeShownRun(in, out);
  Event e;
  if (!DecodeEvent(in, &e)) return Status::Corruption("event record of unknown format or damaged");
  out->push_back(std::move(e));
  return Status::Ok();
}

namespace {

// A lead record of the current format starts with a length no record of the
// first format can have (its stage's length: 4 GiB), then the version.
constexpr char kLeadMagic[] = "\xff\xff\xff\xff";
// 4 added the terms of the last recommend's context and the assets they were
// credited to; 3 added the experiment (arm, assignment, outcome) and is still
// read as complete (no event before format 4 carried terms); a record of
// format 2 is rebuilt from the lead's log like one of the first format.

bool GetI64(std::string_view* in, int64_t* v) {
  if (in->size() < 8) return false;
  std::memcpy(v, in->data(), 8);
  in->remove_prefix(8);
  return true;
}

bool GetCount(std::string_view* in, uint32_t* n) {
  if (in->size() < 4) return false;
  std::memcpy(n, in->data(), 4);
  in->remove_prefix(4);
  return true;
}

// Never reserves by the stored count: each element needs bytes that are there.
bool GetUses(std::string_view* in, std::vector<UseRef>* uses) {
  uint32_t n;
  if (!GetCount(in, &n)) return false;
  for (uint32_t i = 0; i < n; ++i) {
    UseRef u;
    if (!GetStr(in, &u.asset) || !GetStr(in, &u.stage) || !GetStr(in, &u.rep) || !GetStr(in, &u.topic) ||
        !GetI64(in, &u.ts)) {
      return false;
    }
    uses->push_back(std::move(u));
  }
  return true;
}

}  // namespace

std::string EncodeLeadState(const LeadState& st) {
  std::string v;
  EncodeLeadStateTo(st, &v);
  return v;
}

void EncodeLeadStateTo(const LeadState& st, std::string* to) {
  EncodeTwoPass(to, [&st](auto& v) {
    auto uses = [&v](const std::vector<UseRef>& list) {
      v.Count(list.size());
      for (const UseRef& u : list) {
        v.Str(u.asset);
        v.Str(u.stage);
        v.Str(u.rep);
        v.Str(u.topic);
        v.I64(u.ts);
      }
    };
    v.Raw(kLeadMagic, 4);
    v.Byte(char(kLeadFormat));
    v.Str(st.stage);
    v.I64(st.stage_since);
    v.Str(st.topic);
    v.I64(st.latest_ts);
    v.I64(st.window_ms);
    uses(st.since_change);
    uses(st.window);
    v.Count(st.seen.size());
    for (const std::string& a : st.seen) v.Str(a);
    v.Byte(char(st.recommended ? 1 : 0));
    v.Byte(char(st.arm));
    v.I64(st.assigned_ts);
    v.Str(st.entry_stage);
    v.Str(st.entry_rep);
    v.Byte(char(st.outcome));
    v.I64(st.outcome_ts);
    v.I64(st.outcome_cents);
    for (const auto* list : {&st.terms, &st.terms_credited}) {
      v.Count(list->size());
      for (const std::string& t : *list) v.Str(t);
    }
  });
}

bool DecodeLeadState(std::string_view in, LeadState* st) {
  st->known = true;
  st->complete = false;
  if (in.size() >= 5 && in.substr(0, 4) == std::string_view(kLeadMagic, 4)) {
    const uint8_t format = uint8_t(in[4]);
    if (format != kLeadFormat && format != 3) return false;
    in.remove_prefix(5);
    uint32_t seen = 0;
    bool ok = GetStr(&in, &st->stage) && GetI64(&in, &st->stage_since) && GetStr(&in, &st->topic) &&
              GetI64(&in, &st->latest_ts) && GetI64(&in, &st->window_ms) && GetUses(&in, &st->since_change) &&
              GetUses(&in, &st->window) && GetCount(&in, &seen);
    for (uint32_t i = 0; ok && i < seen; ++i) ok = GetStr(&in, &st->seen.emplace_back());
    ok = ok && in.size() >= 2 && uint8_t(in[0]) <= 1 && uint8_t(in[1]) <= uint8_t(Arm::kHoldout);
    if (ok) {
      st->recommended = in[0] != 0;
      st->arm = Arm(uint8_t(in[1]));
      in.remove_prefix(2);
      ok = GetI64(&in, &st->assigned_ts) && GetStr(&in, &st->entry_stage) && GetStr(&in, &st->entry_rep) &&
           in.size() >= 1 && uint8_t(in[0]) <= 2;
    }
    if (ok) {
      st->outcome = uint8_t(in[0]);
      in.remove_prefix(1);
      ok = GetI64(&in, &st->outcome_ts) && GetI64(&in, &st->outcome_cents);
    }
    for (auto* list : {&st->terms, &st->terms_credited}) {
      uint32_t n = 0;
      if (format < 4 || !ok || !(ok = GetCount(&in, &n))) break;
      for (uint32_t i = 0; ok && i < n; ++i) ok = GetStr(&in, &list->emplace_back());
    }
    st->complete = ok && in.empty();
    return st->complete;
  }
  // The first format (stage, since, topic), lenient as it was: a short record
  // keeps what could be read.
  int64_t since = 0;
  const bool stage_ok = GetStr(&in, &st->stage);
  if (stage_ok && in.size() >= 8) std::memcpy(&since, in.data(), 8);
  in.remove_prefix(std::min<size_t>(8, in.size()));
  const bool topic_ok = in.empty() || GetStr(&in, &st->topic);
  st->stage_since = since;
  return stage_ok && topic_ok && in.empty();
}

const char* EventTypeName(EventType t) {
  switch (t) {
    case EventType::kShown: return "shown";
    case EventType::kUsed: return "used";
    case EventType::kViewed: return "viewed";
    case EventType::kDismissed: return "dismissed";
    case EventType::kStageChanged: return "stage_changed";
    case EventType::kWon: return "won";
    case EventType::kLost: return "lost";
  }
  return "unknown";
}

const char* ArmName(Arm arm) {
  switch (arm) {
    case Arm::kTreatment: return "treatment";
    case Arm::kHoldout: return "holdout";
    case Arm::kNone: break;
  }
  return "";
}

bool ParseEventType(const std::string& name, EventType* t) {
  for (EventType e : {EventType::kShown, EventType::kUsed, EventType::kViewed, EventType::kDismissed,
                      EventType::kStageChanged, EventType::kWon, EventType::kLost}) {
    if (name == EventTypeName(e)) {
      *t = e;
      return true;
    }
  }
  return false;
}

}  // namespace playbook
