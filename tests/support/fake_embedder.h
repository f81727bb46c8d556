// A small OpenAI-compatible embeddings endpoint (POST /v1/embeddings) for
// tests of [embedder] kind = "http": plain sockets, one thread, loopback only.
// It counts what it is asked and can be told to misbehave.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace playbook::testing {

class FakeEmbeddingServer {
 public:
  enum class Mode {
    kOk,              // well-formed vectors (VectorFor)
    kHang,            // reads the request, never answers (until the mode changes or Stop)
    kHttp500,         // 500 with an OpenAI-style error body
    kHttp503,         // 503 "model loading"
    kNotJson,         // 200 with a body that is not JSON
    kWrongDimension,  // one number short in every embedding
    kWrongCount,      // one entry short
    kNonFinite,       // a number beyond float32 (1e39)
    kDuplicateIndex,  // two entries with index 0
    kHuge,            // 200 with 2 MiB of body
  };

  explicit FakeEmbeddingServer(uint32_t dimension) : dimension_(dimension) {}
  ~FakeEmbeddingServer();
  FakeEmbeddingServer(const FakeEmbeddingServer&) = delete;
  FakeEmbeddingServer& operator=(const FakeEmbeddingServer&) = delete;

  // Listens on 127.0.0.1:`port` (0 = any free port; again after Stop, the
  // same port as before). False when it cannot.
  bool Start(uint16_t port = 0);
  // Closes the listening socket (connections are then refused) and the thread.
  void Stop();

  uint16_t port() const { return port_; }
  // "http://127.0.0.1:<port>/v1/embeddings"
  std::string url() const;

  void set_mode(Mode mode);
  // Requests answered or hung so far, and the number of inputs in each.
  int requests() const;
  std::vector<size_t> batch_sizes() const;
  // The "model" and the Authorization header of the last request.
  std::string last_model() const;
  std::string last_authorization() const;
  void ResetCounts();

  // The unit vector the endpoint answers for `text` under `model`: words
  // hashed (with the model's name) into `dimension` signed counts, normalised.
  static std::vector<float> VectorFor(const std::string& text, const std::string& model, uint32_t dimension);

 private:
  void Serve();
  void Handle(int fd);

  const uint32_t dimension_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::thread thread_;
  std::atomic<bool> stop_{false};

  mutable std::mutex mu_;
  std::condition_variable changed_;
  Mode mode_ = Mode::kOk;
  int requests_ = 0;
  std::vector<size_t> batch_sizes_;
  std::string last_model_, last_authorization_;
};

}  // namespace playbook::testing
