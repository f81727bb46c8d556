// A remote embedder: a model served over HTTP behind an OpenAI-compatible
// `POST /v1/embeddings` (Ollama, text-embeddings-inference, vLLM, llama.cpp's
// server), for teams that run their own model ([embedder] kind = "http").
//
// It lives in server/ because server/ is the only code that knows Beast: the
// engine sees a models::Embedder, as it does the built-in one.
//
// Request: {"model": <model>, "input": [<text>, ...]} with at most batch_size
// texts. Response: {"data": [{"embedding": [<dimension numbers>], "index": i},
// ...]}; everything else in it is ignored. Every byte of the response is
// treated as hostile: ParseEmbeddingsResponse checks it all.
//
// Thread safety: immutable after Create; EmbedBatch may run concurrently (each
// call makes its own connections).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "playbook/engine/status.h"
#include "playbook/models/embedder.h"

namespace playbook::server {

// The parts of an http:// URL the client needs.
struct HttpUrl {
  std::string host;    // "127.0.0.1", "embed.internal", "::1" (no brackets)
  uint16_t port = 80;
  std::string target;  // "/v1/embeddings" (path and query)
  // "host[:port]" as the Host header and messages show it ("[::1]:8080").
  std::string authority;
};

// "http://host[:port][/path[?query]]"; no path (or "/") means "/v1/embeddings".
// InvalidArgument(field) naming what is wrong: https:// (not supported: see
// docs/operations.md), user info, a bad port, spaces or control characters.
Result<HttpUrl> ParseHttpUrl(std::string_view url, const std::string& field);

struct HttpEmbedderOptions {
  std::string url;       // the endpoint, for ParseHttpUrl
  std::string model;     // sent as "model"; part of Name()
  uint32_t dimension = 0;  // numbers in every returned embedding, 1..4096
  // The whole exchange of one request (connect, send, receive) must end within
  // this; past it the connection is closed and the call fails (Overloaded).
  uint32_t timeout_ms = 10000;
  uint32_t batch_size = 64;  // texts per request, >= 1
  std::string api_key;   // sent as "Authorization: Bearer <api_key>"; empty = none. Never logged.
  // Answers Concepts() (the lexicon's concepts, for reasons and topics); null = none.
  std::shared_ptr<const models::Embedder> concepts;
};

class HttpEmbedder final : public models::Embedder {
 public:
  // InvalidArgument naming "embedder.url", "embedder.model", ... Does not
  // contact the endpoint (a model down at start does not stop the daemon).
  static Result<std::unique_ptr<HttpEmbedder>> Create(HttpEmbedderOptions options);

  // "http:<model>@<dimension>": a changed model or dimension makes the stored
  // vectors stale (index.rebuild re-embeds them). The URL is not part of it:
  // the same model moved to another host makes the same vectors.
  std::string Name() const override;
  uint32_t Dimension() const override { return options_.dimension; }
  // One request per batch_size texts, in order. Overloaded: the endpoint could
  // not be reached, timed out, or answered 429/502/503/504; Internal: any other
  // HTTP status or a response ParseEmbeddingsResponse refuses. Messages start
  // with "embedder <url>: ".
  //
  // After a request that could not reach the endpoint or timed out, calls fail
  // at once (Overloaded, "unavailable ...") for kRetryAfter; then one call
  // tries again while the others keep failing at once, until it succeeds. So
  // a hung endpoint holds one worker thread at a time, not all of them.
  Status EmbedBatch(const std::vector<std::string>& texts, float* out) const override;
  std::vector<std::string> Concepts(std::string_view text) const override;
  // The terms learnt from (the lexical embedder's, as for Concepts).
  std::vector<std::string> Terms(std::string_view text) const override;

  const HttpUrl& url() const { return url_; }

  // Appends its counters in the Prometheus text format (for GET /metrics):
  // playbook_embedder_requests_total{result}, playbook_embedder_texts_total,
  // playbook_embedder_request_duration_seconds (sum and count). Any thread.
  void RenderMetrics(std::string* out) const;

  // How long calls fail at once after a request did not reach the endpoint.
  static constexpr std::chrono::milliseconds kRetryAfter{1000};

 private:
  HttpEmbedder(HttpEmbedderOptions options, HttpUrl url);
  // One request of texts[from, to) into out (rows from..to).
  Status EmbedRange(const std::vector<std::string>& texts, size_t from, size_t to, float* out) const;
  // POST `body`; the response's status and body. IOError: not reached, or timed
  // out; Internal: an answer over the size limit.
  Status Post(const std::string& body, unsigned* status, std::string* response) const;

  // The breaker above: whether a request may be sent now (else *why says why not).
  bool Admit(std::string* why) const;
  // The outcome of an admitted request: reached (an answer came, whatever it
  // said) or not (`failure` says why).
  void Reached(bool reached, const std::string& failure) const;

  const HttpEmbedderOptions options_;
  const HttpUrl url_;
  const std::string where_;  // "embedder http://host:port/path: "

  mutable std::mutex mu_;  // guards the breaker's state below
  mutable bool tripped_ = false;  // the last request did not reach the endpoint
  mutable bool probing_ = false;  // one request is trying again
  mutable std::chrono::steady_clock::time_point retry_at_;
  mutable std::string last_failure_;

  // How requests ended: ok, unreachable (not reached or timed out), http_error
  // (a non-2xx status), bad_response (refused by the parser), skipped (failed
  // at once by the breaker, never sent).
  enum Outcome : int { kOk = 0, kUnreachable, kHttpError, kBadResponse, kSkipped, kOutcomeCount };
  void Count(Outcome outcome, std::chrono::steady_clock::duration took) const;
  mutable std::array<std::atomic<uint64_t>, kOutcomeCount> requests_{};
  mutable std::atomic<uint64_t> texts_{0};        // embedded, in ok requests
  mutable std::atomic<uint64_t> duration_ns_{0};  // of the requests sent
};

// The request body for `texts` (JSON; every string escaped).
std::string EmbeddingsRequestBody(std::string_view model, const std::vector<std::string>& texts, size_t from,
                                  size_t to);

// Checks a response body and writes `count` L2-normalised rows of `dimension`
// floats to `out` (caller-owned), row i from the entry with "index" i (entries
// without "index" count by position). Internal with a message naming what is
// wrong ("data[3].embedding has 12 numbers, expected 384", "data has 2
// entries for 3 inputs", "data[0].embedding[5] is not finite as float32",
// "not JSON: ..."); `out` then holds garbage. Public for tests and fuzzing.
Status ParseEmbeddingsResponse(std::string_view body, size_t count, uint32_t dimension, float* out);

}  // namespace playbook::server
