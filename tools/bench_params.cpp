// playbook-bench-params: what the daemon spends parsing assets.upsert params,
// vectors as JSON arrays vs base64 float32 (docs/protocol.md), per asset:
// json::parse of the params plus ParseAssetsUpsert, over 500-asset batches, d=384.
//
//   build/bin/playbook-bench-params
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include "playbook/base/vector_base64.h"
#include "playbook/server/requests.h"
using namespace playbook;
using json = nlohmann::json;
int main() {
  std::mt19937 rng(1);
  std::normal_distribution<float> g(0, 1);
  json arr = json::array(), b64 = json::array();
  for (int i = 0; i < 500; ++i) {
    std::vector<float> v(384);
    for (auto& x : v) x = g(rng) * 0.05f;
    json a{{"id", "gen-" + std::to_string(i)}, {"title", "t"}, {"type", "video"}, {"stages", {"interest"}}};
    json c = a;
    json va = json::array();
    for (float x : v) va.push_back(x);
    a["vector"] = va;
    c["vector"] = EncodeVectorBase64(v.data(), v.size());
    arr.push_back(a);
    b64.push_back(c);
  }
  for (auto* which : {&arr, &b64}) {
    const std::string text = json{{"assets", *which}}.dump();
    auto t0 = std::chrono::steady_clock::now();
    const int reps = 20;
    size_t n = 0;
    for (int r = 0; r < reps; ++r) {
      json p = json::parse(text);
      auto parsed = server::ParseAssetsUpsert(p);
      n += parsed.ok() ? parsed.value().size() : 0;
    }
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("%s: %zu bytes per 500-asset batch, %.1f us per asset (JSON parse + params), %zu ok\n",
                which == &arr ? "array " : "base64", text.size(), s / (reps * 500) * 1e6, n);
  }
}
