// The remote embedder's JSON: the request it sends and the checks on what
// comes back. Kept apart from the Beast client (http_embedder.cpp) so the
// parser is a pure function the tests and the fuzzer reach directly.
#include <cfloat>
#include <cmath>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "http_embedder_text.h"
#include "playbook/server/http_embedder.h"
#include "playbook/server/jsonrpc.h"

namespace playbook::server {
namespace {

using json = nlohmann::json;

Status Bad(std::string what) { return Status::Internal("bad response: " + what); }

std::string At(size_t i) {
  std::string s = "data[";
  s += std::to_string(i);
  s += "]";
  return s;
}

const char* TypeOf(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::object: return "an object";
    case json::value_t::array: return "an array";
    case json::value_t::string: return "a string";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::binary: return "binary";
    case json::value_t::discarded: return "nothing";
    default: return "a number";
  }
}

}  // namespace

std::string Printable(std::string_view text, size_t max) {
  std::string out;
  for (char c : text) {
    if (out.size() >= max) {
      out += "...";
      break;
    }
    const auto u = static_cast<unsigned char>(c);
    out += (u >= 0x20 && u < 0x7f) ? c : '?';
  }
  return out;
}

std::string EmbeddingsRequestBody(std::string_view model, const std::vector<std::string>& texts, size_t from,
                                  size_t to) {
  json input = json::array();
  for (size_t i = from; i < to; ++i) input.push_back(texts[i]);
  // Invalid UTF-8 (an asset's body is checked, a context need not be) is sent
  // replaced, not refused: the model sees U+FFFD where the bad bytes were.
  return json{{"model", model}, {"input", std::move(input)}}.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string ErrorBodyReason(std::string_view body) {
  // {"error": {"message": "..."}} (OpenAI, vLLM), {"error": "..."} (Ollama,
  // text-embeddings-inference), else the first bytes as they are.
  if (!body.empty() && !DeeperThan(body, kMaxJsonDepth)) {
    try {
      const json v = json::parse(body);
      if (v.is_object() && v.contains("error")) {
        const json& e = v["error"];
        if (e.is_string()) return Printable(e.get<std::string>(), 300);
        if (e.is_object() && e.contains("message") && e["message"].is_string()) {
          return Printable(e["message"].get<std::string>(), 300);
        }
      }
    } catch (const json::exception&) {
      // not JSON: the raw text below
    }
  }
  return Printable(body, 300);
}

Status ParseEmbeddingsResponse(std::string_view body, size_t count, uint32_t dimension, float* out) {
  if (DeeperThan(body, kMaxJsonDepth)) return Bad("JSON nests deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  json doc;
  try {
    doc = json::parse(body);
  } catch (const json::exception& e) {
    // parse_error quotes the bytes it stopped at: made printable.
    return Bad("not JSON: " + Printable(e.what(), 200));
  }
  if (!doc.is_object()) return Bad(std::string("expected a JSON object, got ") + TypeOf(doc));
  const auto data = doc.find("data");
  if (data == doc.end()) {
    if (doc.contains("error")) return Bad("no \"data\"; the endpoint says: " + ErrorBodyReason(body));
    return Bad("no \"data\" member");
  }
  if (!data->is_array()) return Bad(std::string("\"data\" is ") + TypeOf(*data) + ", expected an array");
  if (data->size() != count) {
    return Bad("\"data\" has " + std::to_string(data->size()) + " entries for " + std::to_string(count) +
               " inputs");
  }
  std::vector<bool> seen(count, false);
  for (size_t i = 0; i < count; ++i) {
    const json& entry = (*data)[i];
    if (!entry.is_object()) return Bad(At(i) + " is " + TypeOf(entry) + ", expected an object");
    size_t row = i;
    if (const auto idx = entry.find("index"); idx != entry.end()) {
      if (!idx->is_number_integer() || idx->get<int64_t>() < 0 || idx->get<int64_t>() >= int64_t(count)) {
        return Bad(At(i) + ".index must be an integer 0.." + std::to_string(count - 1));
      }
      row = static_cast<size_t>(idx->get<int64_t>());
    }
    if (seen[row]) return Bad(At(i) + ".index " + std::to_string(row) + " repeats an earlier entry's");
    seen[row] = true;
    const auto emb = entry.find("embedding");
    if (emb == entry.end()) return Bad(At(i) + " has no \"embedding\"");
    if (!emb->is_array()) {
      return Bad(At(i) + ".embedding is " + TypeOf(*emb) + ", expected an array of numbers (encoding_format float)");
    }
    if (emb->size() != dimension) {
      return Bad(At(i) + ".embedding has " + std::to_string(emb->size()) + " numbers, expected " +
                 std::to_string(dimension) + " (embedder.dimension)");
    }
    float* v = out + row * dimension;
    double norm = 0;
    for (uint32_t j = 0; j < dimension; ++j) {
      const json& x = (*emb)[j];
      if (!x.is_number()) return Bad(At(i) + ".embedding[" + std::to_string(j) + "] is " + TypeOf(x));
      const double d = x.get<double>();
      if (!std::isfinite(d) || std::fabs(d) > FLT_MAX) {
        return Bad(At(i) + ".embedding[" + std::to_string(j) + "] is not finite as float32");
      }
      v[j] = static_cast<float>(d);
      norm += double(v[j]) * double(v[j]);
    }
    if (!(norm > 0) || !std::isfinite(norm)) {
      // All zeros says nothing about the text; an overflowing norm cannot be normalised.
      return Bad(At(i) + ".embedding " + (norm > 0 ? "cannot be normalised" : "is all zeros"));
    }
    const double inv = 1.0 / std::sqrt(norm);
    for (uint32_t j = 0; j < dimension; ++j) v[j] = static_cast<float>(v[j] * inv);
  }
  return Status::Ok();
}

}  // namespace playbook::server
