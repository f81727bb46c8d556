// recommend: retrieve eligible candidates by meaning (or all eligible ones
// without context), rank them by similarity and learned effectiveness,
// diversify, explain, and record what was shown.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <functional>
#include <limits>
#include <random>
#include <unordered_map>
#include <unordered_set>

#include "beta_draw.h"
#include "engine_impl.h"
#include "experiment.h"
#include "feedback.h"
#include "simd.h"

namespace playbook {
namespace {

constexpr size_t kMaxCandidatesWithoutQuery = 2000;

// A Beta(a, b) posterior: its mean, or a Thompson sample from it.
double Beta(double a, double b, BetaDraw* draw) { return draw == nullptr ? a / (a + b) : draw->Beta(a, b); }

// The stage's average rate with add-one smoothing: the prior mean. Hits
// beyond the trials (uses recorded without a showing) count as trials' worth:
// a rate stays within 0..1.
double PriorMean(uint64_t hits, uint64_t trials) {
  return (double(std::min(hits, trials)) + 1.0) / (double(trials) + 2.0);
}

// Posterior of hits/trials toward `prior` with `strength` pseudo-observations
// (hits capped at the trials, as above).
double Posterior(uint64_t hits, uint64_t trials, double prior, double strength, BetaDraw* draw) {
  hits = std::min(hits, trials);
  return Beta(prior * strength + double(hits), (1 - prior) * strength + double(trials - hits), draw);
}

// A candidate's last level (at the stage, or at the stage and topic): its
// counters and the estimates they are smoothed toward; its mean effectiveness.
struct Explore {
  const AssetStageStats* t = nullptr;
  double use = 0, win = 0, advance = 0, dismiss = 0, mean = 0;
};

// The weighted effectiveness of the last level: its mean, or a draw.
double Effectiveness(const RankingOptions& ro, const Explore& x, BetaDraw* draw) {
  const AssetStageStats& t = *x.t;
  const double n0 = ro.prior_strength;
  return ro.use_weight * Posterior(t.used, t.shown, x.use, n0, draw) +
         ro.win_weight * Posterior(t.won, t.won + t.lost, x.win, n0, draw) +
         ro.advance_weight * Posterior(t.advanced, t.used, x.advance, n0, draw) -
         ro.dismiss_weight * Posterior(t.dismissed, t.shown, x.dismiss, n0, draw);
}

std::string Percent(double x) { return std::to_string(int(std::lround(100 * x))) + "%"; }

std::string Readable(std::string concept_id) {
  std::replace(concept_id.begin(), concept_id.end(), '_', ' ');
  return concept_id;
}

// "zh" when `text` has a Han character (CJK ideographs, extensions A-B and
// compatibility), else "en": the language of a context without lead.language,
// and of an asset by its title (the index keeps no language per row).
std::string ScriptLanguage(std::string_view text) {
  for (size_t i = 0; i < text.size();) {
    const auto b = static_cast<unsigned char>(text[i]);
    const size_t len = b < 0x80 ? 1 : b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : 2;
    if (i + len > text.size()) break;
    uint32_t cp = len == 1 ? b : len == 2 ? b & 0x1F : len == 3 ? b & 0x0F : b & 0x07;
    for (size_t j = 1; j < len; ++j) cp = (cp << 6) | (static_cast<unsigned char>(text[i + j]) & 0x3F);
    if ((cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0xF900 && cp <= 0xFAFF) ||
        (cp >= 0x20000 && cp <= 0x2FFFF)) {
      return "zh";
    }
    i += len;
  }
  return "en";
}

// The primary subtag of a language tag, lower-case: "zh-CN" -> "zh".
std::string PrimaryLanguage(std::string_view tag) {
  std::string out(tag.substr(0, tag.find_first_of("-_")));
  for (char& ch : out) ch = char(std::tolower(static_cast<unsigned char>(ch)));
  return out;
}

// This worker's generator, seeded once from the OS: exploration without a
// configured seed, and recommendation ids.
Xoshiro256pp& WorkerRng() {
  thread_local Xoshiro256pp rng([] {
    std::random_device dev;
    return (uint64_t(dev()) << 32) ^ uint64_t(dev());
  }());
  return rng;
}

struct Candidate {
  std::string_view id;  // the AssetDisplay's, kept alive like `asset`
  float similarity = 0;
  double effectiveness = 0;
  double relevance = 0;    // similarity_weight * similarity + the language bonus
  double evidence = 0;     // what was learnt, bounded by the evidence band
  double exploration = 0;  // the draw's part, bounded by explore_band
  double phrases = 0;      // the org's own words: bounded by phrase_max
  const std::string* phrase_term = nullptr;  // the context's term that gave the most of it
  bool in_language = false;
  double score = 0;
  AssetStageStats stats;
  const AssetDisplay* asset = nullptr;  // kept alive by the request's RankingHits
  const float* vector = nullptr;        // the index's row, likewise
};

// A worker's buffers, reused from request to request (capacity kept); Release
// drops the request's references to the index (displays, vector rows) so a
// rebuild's old rows are freed at once.
struct Scratch {
  RankingHits found;
  std::vector<float> query;
  std::vector<std::string_view> names;
  std::vector<Derived::OrdinalCache*> ordinals;  // the candidates' AssetDisplay::counters_ordinal
  std::vector<AssetStageStats> at_stage, at_topic;
  std::vector<Candidate> cands;
  std::vector<Explore> explore;
  std::vector<double> scores;
  std::vector<double> max_sim;
  std::vector<uint8_t> taken;
  std::vector<Candidate*> chosen;
  std::vector<uint32_t> place;  // by candidate: its place among the chosen, UINT32_MAX if not chosen
  std::vector<Derived::PhraseWeight> phrase_weights;
  std::unordered_map<std::string_view, const Derived::PhraseWeight*> weight_of;
  std::unordered_set<std::string_view> retrieved;
  void Release() {
    found.hits.clear();
    found.store.reset();
    cands.clear();
    chosen.clear();
    retrieved.clear();
  }
};

// Whether KeepOneVariant can change `cands`: some candidate is linked to
// another asset, or is the content id of something the lead has seen (an
// unlinked candidate is its own content id).
bool MayRegroup(const std::vector<Candidate>& cands, const std::unordered_set<std::string_view>& seen_roots) {
  return std::any_of(cands.begin(), cands.end(), [&](const Candidate& c) {
    return !c.asset->variant_of.empty() || (!seen_roots.empty() && seen_roots.count(c.id) > 0);
  });
}

// One asset per content item (assets linked by variant_of), in rank order:
// the first one in the rep's language takes the place of the item's first
// (best) variant when that one is not in it; the others go. So do the
// variants of an item the lead has seen (`seen_roots`: the content ids of
// its seen assets, with exclude_seen): a translation of a script the lead
// was given is the same content.
void KeepOneVariant(const AssetIndex& index, const std::unordered_set<std::string_view>& seen_roots,
                    std::vector<Candidate>* cands) {
  if (!MayRegroup(*cands, seen_roots)) return;  // nothing to group (the usual case, no lookup)
  std::vector<std::string_view> ids;
  ids.reserve(cands->size());
  for (const Candidate& c : *cands) ids.push_back(c.id);
  const std::vector<std::string> roots = index.ContentRoots(ids);
  std::unordered_map<std::string_view, size_t> kept;  // content id -> its place in `out`
  std::vector<Candidate> out;
  out.reserve(cands->size());
  for (size_t i = 0; i < cands->size(); ++i) {
    Candidate& c = (*cands)[i];
    if (seen_roots.count(std::string_view(roots[i])) > 0) continue;  // a variant of content the lead has seen
    auto [it, first] = kept.emplace(roots[i], out.size());
    if (first) {
      out.push_back(c);
    } else if (c.in_language && !out[it->second].in_language) {
      c.score = out[it->second].score;  // the item's place
      out[it->second] = c;
    }
  }
  cands->swap(out);
}

}  // namespace

Result<Recommendation> EngineImpl::Recommend(const RecommendRequest& req) {
  const RankingOptions& ro = options_.ranking;
  if (std::find(options_.stages.begin(), options_.stages.end(), req.stage) == options_.stages.end()) {
    std::string valid;
    for (const auto& s : options_.stages) valid += (valid.empty() ? "" : ", ") + s;
    return Status::InvalidArgument("lead.stage", "unknown stage '" + req.stage + "'; valid stages: " + valid);
  }
  if (!req.vector.empty() && req.vector.size() != options_.dimension) {
    return Status::InvalidArgument("lead.vector", "expected " + std::to_string(options_.dimension) + " numbers, got " +
                                                      std::to_string(req.vector.size()));
  }
  // The experiment's arm (docs/experiment.md): as the lead's first recommend
  // recorded it (memory, no storage read), else assigned now from its id.
  // The holdout arm gets the baseline: relevance, then recency; nothing learnt.
  const std::optional<Arm> recorded = feedback_->RecordedArm(req.lead_id);
  const Arm arm = recorded ? *recorded : AssignArm(req.lead_id, options_.experiment);
  const bool holdout = arm == Arm::kHoldout;
  AssetFilter filter = req.filter;
  filter.stage = req.stage;
  std::vector<std::string> seen_root_ids;          // the content ids of the lead's seen assets
  std::unordered_set<std::string_view> seen_roots;  // views of seen_root_ids
  if (req.exclude_seen) {  // from memory (the writer keeps each lead's seen assets): no storage read
    const std::vector<std::string> seen = feedback_->SeenAssets(req.lead_id);
    filter.exclude_ids.insert(filter.exclude_ids.end(), seen.begin(), seen.end());
    // Their translations go too (KeepOneVariant drops the candidates of
    // these content ids).
    if (!seen.empty()) {
      std::vector<std::string_view> seen_ids(seen.begin(), seen.end());
      seen_root_ids = index_->ContentRoots(seen_ids);
      seen_roots.insert(seen_root_ids.begin(), seen_root_ids.end());
    }
  }

  thread_local Scratch scratch;
  struct ReleaseAtExit {
    Scratch* s;
    ~ReleaseAtExit() { s->Release(); }
  } release_at_exit{&scratch};

  // 1. Candidates: by meaning when there is context, else every eligible asset.
  const float* query = nullptr;
  if (!req.vector.empty()) {
    query = req.vector.data();
  } else if (!req.context.empty() && embedder_) {
    scratch.query.resize(options_.dimension);
    // A remote embedder that is down fails the call (nothing recorded): a
    // ranking that silently ignored the context would look like an answer.
    if (Status s = embedder_->EmbedBatch({req.context}, scratch.query.data()); !s.ok()) return s;
    query = scratch.query.data();
  }
  const size_t want = query == nullptr ? kMaxCandidatesWithoutQuery
                                       : std::max<size_t>(req.k * ro.candidates_per_item, 50);
  RankingHits& found = scratch.found;  // display fields and vectors from memory: no storage read below
  if (Status s = index_->SearchForRanking(query, filter, want, &found); !s.ok()) return s;

  // 2. Effectiveness at the stage, smoothed toward the stage's averages.
  // With a configured seed, each request's draws are fixed by (seed, lead,
  // the process's count of requests), as they always were; without one, the
  // worker's generator goes on.
  Xoshiro256pp* rng = nullptr;
  if (holdout) {
    // no exploration
  } else if (ro.explore && ro.seed != 0) {
    static std::atomic<uint64_t> calls{0};
    thread_local Xoshiro256pp seeded;
    seeded.seed(ro.seed ^ (std::hash<std::string>{}(req.lead_id) * 0x9E3779B97F4A7C15ull) ^ calls++);
    rng = &seeded;
  } else if (ro.explore) {
    rng = &WorkerRng();
  }
  // The context's topic (its first lexicon concept): effectiveness is also
  // learnt per topic, since what helps against "too expensive" need not help
  // against "not now".
  std::vector<std::string> context_concepts;
  if (!req.context.empty() && embedder_) context_concepts = embedder_->Concepts(req.context);
  const std::string topic = context_concepts.empty() ? "" : context_concepts.front();
  // The org's own words: the context's terms (recorded with the shown events,
  // so a later use teaches them) and what the team's uses after such terms
  // taught (memory: one hash lookup per term). The baseline learns nothing.
  std::vector<std::string> terms;
  if (!req.context.empty() && embedder_) terms = embedder_->Terms(req.context);
  std::vector<Derived::PhraseWeight>& phrase_weights = scratch.phrase_weights;
  phrase_weights.clear();
  if (!holdout && !terms.empty() && ro.phrase_max > 0) feedback_->PhraseWeights(terms, NowMs(), &phrase_weights);
  // Each weight by its asset: one lookup per candidate, not a scan of the weights.
  std::unordered_map<std::string_view, const Derived::PhraseWeight*>& weight_of = scratch.weight_of;
  weight_of.clear();
  for (const Derived::PhraseWeight& w : phrase_weights) weight_of.emplace(w.asset, &w);
  // An asset they point at that retrieval did not find (a catalog larger than
  // the candidates) is scored too, if the request's filters admit it: the
  // same filters, restricted to those ids.
  if (!phrase_weights.empty() && query != nullptr) {
    AssetFilter more = filter;
    std::unordered_set<std::string_view>& retrieved = scratch.retrieved;
    retrieved.clear();
    for (const RankingHit& h : found.hits) retrieved.insert(h.asset->id);
    for (const Derived::PhraseWeight& w : phrase_weights) {
      if (!retrieved.count(w.asset)) more.only_ids.push_back(w.asset);
    }
    if (!more.only_ids.empty()) {
      thread_local RankingHits extra;
      if (Status s = index_->SearchForRanking(query, more, more.only_ids.size(), &extra); !s.ok()) return s;
      if (extra.store == found.store) found.hits.insert(found.hits.end(), extra.hits.begin(), extra.hits.end());
      extra.hits.clear();
      extra.store.reset();
    }
  }
  // The rep's language: lead.language, else the context's script.
  const std::string rep_language = !req.language.empty() ? PrimaryLanguage(req.language)
                                   : !req.context.empty() ? ScriptLanguage(req.context)
                                                          : std::string();
  // The counters of every candidate, by ordinals, under one lock.
  const size_t n = found.hits.size();
  std::vector<std::string_view>& names = scratch.names;
  std::vector<Derived::OrdinalCache*>& ordinals = scratch.ordinals;
  names.resize(n);
  ordinals.resize(n);
  for (size_t i = 0; i < n; ++i) {
    names[i] = found.hits[i].asset->id;
    ordinals[i] = &found.hits[i].asset->counters_ordinal;
  }
  std::vector<AssetStageStats>& at_stage = scratch.at_stage;
  std::vector<AssetStageStats>& at_topic = scratch.at_topic;
  at_stage.resize(n);
  at_topic.resize(topic.empty() ? 0 : n);
  AssetStageStats totals;  // the baseline knows nothing learnt: every asset counts as new
  if (holdout) {
    std::fill(at_stage.begin(), at_stage.end(), AssetStageStats{});
    std::fill(at_topic.begin(), at_topic.end(), AssetStageStats{});
  } else {
    totals = feedback_->RankingStats(req.stage, topic, names.data(), ordinals.data(), n, at_stage.data(),
                                     at_topic.data());
  }
  const double prior_use = PriorMean(totals.used, totals.shown);
  const double prior_win = PriorMean(totals.won, totals.won + totals.lost);
  const double prior_advance = PriorMean(totals.advanced, totals.used);
  const double prior_dismiss = PriorMean(totals.dismissed, totals.shown);
  // A new asset's effectiveness (every posterior at its prior): the baseline
  // that evidence lifts an asset above or sinks it below.
  const double baseline =
      ro.use_weight * prior_use + ro.win_weight * prior_win + ro.advance_weight * prior_advance -
      ro.dismiss_weight * prior_dismiss;
  std::vector<Candidate>& cands = scratch.cands;
  cands.reserve(n);
  // What a candidate's draw needs: the last level's counters and the priors
  // it is smoothed toward (step 2b).
  std::vector<Explore>& explore = scratch.explore;
  explore.resize(n);
  const int64_t now_ms = NowMs();
  for (size_t i = 0; i < n; ++i) {
    const RankingHit& h = found.hits[i];
    Candidate c;
    c.id = h.asset->id;
    c.asset = h.asset.get();
    c.vector = h.vector;
    c.similarity = h.score;
    c.stats = at_stage[i];
    const AssetStageStats& s = c.stats;
    const double n0 = ro.prior_strength;
    // Two levels: the asset at the stage is smoothed toward the stage's
    // average; with a topic, the asset at the stage for that topic is smoothed
    // toward the asset's own stage estimate. Only the last level is sampled.
    Explore& x = explore[i];
    x.use = Posterior(s.used, s.shown, prior_use, n0, nullptr);
    x.win = Posterior(s.won, s.won + s.lost, prior_win, n0, nullptr);
    x.advance = Posterior(s.advanced, s.used, prior_advance, n0, nullptr);
    x.dismiss = Posterior(s.dismissed, s.shown, prior_dismiss, n0, nullptr);
    x.t = topic.empty() ? &at_stage[i] : &at_topic[i];
    if (topic.empty()) {
      x.use = prior_use, x.win = prior_win, x.advance = prior_advance, x.dismiss = prior_dismiss;
    }
    const double mean = Effectiveness(ro, x, nullptr);
    c.effectiveness = mean;
    x.mean = mean;
    // Evidence buys similarity within a band that grows with the asset's
    // decisive observations at the stage (uses and dismissals); exploration
    // moves it within explore_band (2b). A new asset: pure relevance, give or
    // take the exploration band.
    const double decisive = double(s.used + s.dismissed);
    const double cap = ro.evidence_max * decisive / (decisive + std::max(ro.evidence_half, 1e-9));
    // Soft bound: about the weighted lift while it is small against the cap,
    // never beyond it, and in the lift's order (a hard clamp would tie two
    // assets that both pass it).
    c.evidence = cap > 0 ? cap * std::tanh(ro.effectiveness_weight * (mean - baseline) / cap) : 0.0;
    c.in_language = !rep_language.empty() && ScriptLanguage(h.asset->title) == rep_language;
    c.relevance = ro.similarity_weight * c.similarity + (c.in_language ? ro.language_bonus : 0.0);
    // The org's own words: bounded like evidence, and only among the
    // candidates the filters admitted.
    if (auto w = weight_of.find(c.id); w != weight_of.end()) {
      c.phrases = ro.phrase_max * w->second->weight / (w->second->weight + std::max(ro.phrase_half, 1e-9));
      c.phrase_term = &terms[w->second->term];
    }
    if (holdout) c.evidence = 0;
    c.score = c.relevance + c.evidence + c.phrases;
    if (ro.recency_weight > 0) {  // newer assets get a decaying bonus
      const double age_days = double(std::max<int64_t>(0, now_ms - c.asset->created_ms)) / 86400000.0;
      c.score += ro.recency_weight * std::pow(0.5, age_days / ro.recency_half_life_days);
    }
    cands.push_back(c);
  }
  // 2b. Exploration: a Thompson draw of the last level moves each score by
  // less than explore_band either way. A candidate whose score without it is
  // more than twice the band below the pool's last (the MMR pool of step 3)
  // stays out of the pool whatever the draws: it needs none. Variants are
  // grouped after the sort (KeepOneVariant, which also drops the variants of
  // seen content): that can pull a lower candidate into the pool, so then
  // every candidate draws.
  if (rng != nullptr) {
    const size_t pool = std::max<size_t>(req.k * 4, 20);
    double floor = -std::numeric_limits<double>::infinity();
    if (n > pool && !MayRegroup(cands, seen_roots)) {
      std::vector<double>& scores = scratch.scores;
      scores.clear();
      for (const Candidate& c : cands) scores.push_back(c.score);
      std::nth_element(scores.begin(), scores.begin() + (pool - 1), scores.end(), std::greater<double>());
      floor = scores[pool - 1] - 2 * ro.explore_band;
    }
    BetaDraw draw(rng);
    for (size_t i = 0; i < n; ++i) {
      Candidate& c = cands[i];
      if (c.score < floor) continue;  // exploration 0: out of the pool either way
      const Explore& x = explore[i];
      c.effectiveness = Effectiveness(ro, x, &draw);
      c.exploration = ro.explore_band * std::tanh(ro.effectiveness_weight * (c.effectiveness - x.mean));
      c.score += c.exploration;
    }
  }
  if (holdout) {  // similarity, then recency
    std::sort(cands.begin(), cands.end(), [](const Candidate& a, const Candidate& b) {
      if (a.score != b.score) return a.score > b.score;
      if (a.asset->created_ms != b.asset->created_ms) return a.asset->created_ms > b.asset->created_ms;
      return a.id < b.id;
    });
  } else {
    std::sort(cands.begin(), cands.end(), [](const Candidate& a, const Candidate& b) {
      return a.score > b.score || (a.score == b.score && a.id < b.id);
    });
  }

  // One asset per content item (assets linked by variant_of): the most
  // relevant one in the rep's language, else the most relevant one, at the
  // place of the item's best variant. Only eligible candidates are here: a
  // variant outside the filters never replaces one inside them.
  KeepOneVariant(*index_, seen_roots, &cands);

  // 3. Diversify (MMR over the asset vectors), skipping near-duplicates.
  // Each pool candidate keeps its highest similarity to the items chosen so
  // far: one dot product per candidate per pick.
  std::vector<Candidate*>& chosen = scratch.chosen;
  chosen.reserve(std::min(req.k, cands.size()));  // k is the caller's: never reserve more than exists
  std::vector<uint8_t>& taken = scratch.taken;
  taken.assign(cands.size(), 0);
  const size_t pool = std::min(cands.size(), std::max<size_t>(req.k * 4, 20));
  std::vector<double>& max_sim = scratch.max_sim;
  max_sim.assign(pool, 0.0);
  while (chosen.size() < req.k) {
    double best = -1e9;
    size_t pick = cands.size();
    for (size_t i = 0; i < pool; ++i) {
      if (taken[i]) continue;
      const double mmr = ro.mmr_lambda * cands[i].score - (1 - ro.mmr_lambda) * max_sim[i];
      if (mmr > best) {
        best = mmr;
        pick = i;
      }
    }
    if (pick == cands.size()) {
      // The pool ran out (or was all near-duplicates): fill from the rest in score order.
      for (size_t i = pool; i < cands.size() && chosen.size() < req.k; ++i) {
        if (!taken[i]) {
          taken[i] = true;
          chosen.push_back(&cands[i]);
        }
      }
      for (size_t i = 0; i < pool && chosen.size() < req.k; ++i) {
        if (taken[i] && std::find(chosen.begin(), chosen.end(), &cands[i]) == chosen.end() &&
            cands[i].vector != nullptr) {
          chosen.push_back(&cands[i]);  // a near-duplicate beats returning fewer than k
        }
      }
      break;
    }
    // Near-duplicates across languages (translations, to the embedder): the
    // cut keeps the one in the rep's language.
    if (!cands[pick].in_language && !rep_language.empty() && cands[pick].vector != nullptr) {
      for (size_t i = 0; i < pool; ++i) {
        if (taken[i] || i == pick || !cands[i].in_language || cands[i].vector == nullptr) continue;
        if (simd::Dot(cands[i].vector, cands[pick].vector, options_.dimension) >= ro.duplicate_similarity) {
          pick = i;
          break;
        }
      }
    }
    taken[pick] = true;
    cands[pick].score = std::min(best, chosen.empty() ? best : chosen.back()->score);  // as ranked
    chosen.push_back(&cands[pick]);
    const float* picked = cands[pick].vector;
    if (chosen.size() == req.k || picked == nullptr) continue;
    for (size_t i = 0; i < pool; ++i) {
      if (taken[i] || cands[i].vector == nullptr) continue;
      const double sim = simd::Dot(cands[i].vector, picked, options_.dimension);
      max_sim[i] = std::max(max_sim[i], sim);
      if (sim >= ro.duplicate_similarity) taken[i] = true;  // a near-duplicate of a chosen item
    }
  }

  // 4. Explain and record.
  Recommendation rec;
  rec.id = "rec-" + std::to_string(NowMs()) + "-" + std::to_string(WorkerRng()() % 1000000);
  std::vector<Event> shown;
  // One ts for the recommendation's events: by (ts, seq) they replay together,
  // the first (which alone stores the context's terms) before the others.
  const int64_t shown_ts = NowMs();
  std::vector<uint32_t>& place = scratch.place;  // filled by the first item that needs it
  place.clear();
  for (const Candidate* c : chosen) {
    const AssetDisplay* a = c->asset;
    RecommendedItem item;
    item.asset_id = c->id;
    item.title = a->title;
    item.type = a->type;
    item.url = a->url;
    item.score = float(c->score);
    // Null for an asset whose concepts are still computed after an open.
    if (const std::vector<std::string>* concepts = a->concepts(); concepts != nullptr && !context_concepts.empty()) {
      for (const std::string& concept_id : *concepts) {
        if (std::find(context_concepts.begin(), context_concepts.end(), concept_id) != context_concepts.end()) {
          item.reasons.push_back("matches the " + Readable(concept_id) + " concern in the lead's context");
          break;
        }
      }
    }
    if (query != nullptr && item.reasons.empty() && c->similarity >= 0.2f) {
      item.reasons.push_back("close to the lead's context (similarity " + std::to_string(c->similarity).substr(0, 4) + ")");
    }
    const AssetStageStats& s = c->stats;  // zeros in the baseline: no learnt reason
    if (s.won > 0) {
      item.reasons.push_back("used in " + std::to_string(s.won) + " won deal" + (s.won > 1 ? "s" : "") + " at " + req.stage);
    }
    if (s.shown >= 10 && s.used > 0) {  // uses without a showing (outside recommend) do not inflate it
      item.reasons.push_back("reps use it " + Percent(double(std::min(s.used, s.shown)) / double(s.shown)) +
                             " of the times it is shown at " + req.stage);
    }
    if (c->phrase_term != nullptr) {
      item.reasons.push_back("your team used this after '" + *c->phrase_term + "'");
    }
    // What it is and where it fits: "objection script for the evaluation stage".
    item.reasons.push_back(Readable(a->type) + " for the " + req.stage + " stage");
    // Newness is a reason only when the exploration draw put the item above a
    // more relevant candidate.
    const bool unrated = s.shown < 5 && s.used == 0 && s.won + s.lost == 0;
    if (unrated && c->exploration > 0 && !holdout) {
      if (place.empty()) {  // each candidate's place in the answer (not chosen: after every chosen one)
        place.assign(cands.size(), UINT32_MAX);
        for (size_t j = 0; j < chosen.size(); ++j) place[size_t(chosen[j] - cands.data())] = uint32_t(j);
      }
      const uint32_t mine = place[size_t(c - cands.data())];
      for (size_t j = 0; j < cands.size(); ++j) {
        const Candidate& other = cands[j];
        if (other.relevance + other.evidence + other.phrases > c->relevance + c->evidence + c->phrases &&
            place[j] > mine) {
          item.reasons.push_back("new: not yet rated at " + req.stage + ", shown to learn how it does");
          break;
        }
      }
    }
    Event e;
    e.event_id = std::string(rec.id).append(":").append(c->id);
    e.type = EventType::kShown;
    e.lead_id = req.lead_id;
    e.asset_id = c->id;
    e.stage = req.stage;
    e.rep_id = req.rep_id;
    e.recommendation_id = rec.id;
    e.topic = topic;
    if (shown.empty()) {
      e.terms = terms;
    } else {
      e.same_terms = !terms.empty();  // the first's: stored once, not k times
    }
    e.arm = arm;  // the writer records it with the lead at its first recommend; never in the response
    e.ts = shown_ts;
    shown.push_back(std::move(e));
    rec.items.push_back(std::move(item));
  }
  if (!shown.empty()) {
    auto recorded = feedback_->RecordShown(std::move(shown));  // counted now, synced within 50 ms
    if (!recorded.ok()) return recorded.status();
  }
  return rec;
}

Result<RecordResult> EngineImpl::RecordEvents(std::vector<Event> events) {
  if (Status s = ValidateEvents(&events, options_); !s.ok()) return s;
  return feedback_->Record(std::move(events));
}

Result<Lead> EngineImpl::GetLead(const std::string& lead_id) { return feedback_->GetLead(lead_id); }

AssetStageStats EngineImpl::GetStats(const std::string& asset_id, const std::string& stage) const {
  return feedback_->Stats(asset_id, stage);
}

}  // namespace playbook
