#include "support/fake_embedder.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstring>

#include <nlohmann/json.hpp>

namespace playbook::testing {
namespace {

using json = nlohmann::json;

bool SendAll(int fd, const std::string& s) {
  size_t sent = 0;
  while (sent < s.size()) {
    const ssize_t n = ::send(fd, s.data() + sent, s.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

std::string Response(int status, const char* reason, const std::string& body) {
  std::string r = "HTTP/1.1 ";
  r += std::to_string(status);
  r += " ";
  r += reason;
  r += "\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: ";
  r += std::to_string(body.size());
  r += "\r\n\r\n";
  r += body;
  return r;
}

// The value of header `name` (lower-case) in `head`, or "".
std::string Header(const std::string& head, const std::string& name) {
  std::string lower = head;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const size_t at = lower.find("\r\n" + name + ":");
  if (at == std::string::npos) return "";
  size_t from = at + 3 + name.size();
  while (from < head.size() && head[from] == ' ') ++from;
  return head.substr(from, head.find("\r\n", from) - from);
}

}  // namespace

FakeEmbeddingServer::~FakeEmbeddingServer() { Stop(); }

std::vector<float> FakeEmbeddingServer::VectorFor(const std::string& text, const std::string& model,
                                                  uint32_t dimension) {
  std::vector<float> v(dimension, 0.0f);
  uint64_t salt = 1469598103934665603ull;
  for (char c : model) salt = (salt ^ static_cast<uint8_t>(c)) * 1099511628211ull;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && (text[i] == ' ' || text[i] == '\n')) ++i;
    uint64_t h = salt;
    bool any = false;
    while (i < text.size() && text[i] != ' ' && text[i] != '\n') {
      h = (h ^ static_cast<uint8_t>(text[i++])) * 1099511628211ull;
      any = true;
    }
    // Signed hashing into three buckets: two words make the same vector
    // only if all three collide, so small test dimensions stay distinct.
    for (uint64_t k = 0; any && k < 3; ++k) {
      uint64_t x = (h + k * 0x9E3779B97F4A7C15ull) * 0xBF58476D1CE4E5B9ull;
      x ^= x >> 31;
      v[x % dimension] += (x >> 40) & 1 ? 1.0f : -1.0f;
    }
  }
  double n = 0;
  for (float x : v) n += double(x) * x;
  if (n == 0) {
    v[0] = 1.0f;
    return v;
  }
  for (float& x : v) x = static_cast<float>(x / std::sqrt(n));
  return v;
}

bool FakeEmbeddingServer::Start(uint16_t port) {
  Stop();
  // CLOEXEC: the daemon a test starts must not inherit (and keep open) this port.
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) return false;
  const int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port != 0 ? port : port_);
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(listen_fd_, 16) != 0) {
    ::close(listen_fd_);
    listen_fd_ = -1;
    return false;
  }
  socklen_t len = sizeof addr;
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  stop_ = false;
  thread_ = std::thread([this] { Serve(); });
  return true;
}

void FakeEmbeddingServer::Stop() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  changed_.notify_all();
  thread_.join();
  ::close(listen_fd_);
  listen_fd_ = -1;
}

std::string FakeEmbeddingServer::url() const {
  return "http://127.0.0.1:" + std::to_string(port_) + "/v1/embeddings";
}

void FakeEmbeddingServer::set_mode(Mode mode) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    mode_ = mode;
  }
  changed_.notify_all();
}

int FakeEmbeddingServer::requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_;
}

std::vector<size_t> FakeEmbeddingServer::batch_sizes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return batch_sizes_;
}

std::string FakeEmbeddingServer::last_model() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_model_;
}

std::string FakeEmbeddingServer::last_authorization() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_authorization_;
}

void FakeEmbeddingServer::ResetCounts() {
  std::lock_guard<std::mutex> lock(mu_);
  requests_ = 0;
  batch_sizes_.clear();
}

void FakeEmbeddingServer::Serve() {
  while (!stop_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    timeval tv{5, 0};  // a test's client that stops sending must not hold the thread
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    Handle(fd);
    ::close(fd);
  }
}

void FakeEmbeddingServer::Handle(int fd) {
  std::string in;
  char buf[65536];
  size_t head_end = std::string::npos;
  while ((head_end = in.find("\r\n\r\n")) == std::string::npos) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return;
    in.append(buf, static_cast<size_t>(n));
  }
  const std::string head = in.substr(0, head_end);
  const size_t length = std::strtoul(Header(head, "content-length").c_str(), nullptr, 10);
  std::string body = in.substr(head_end + 4);
  while (body.size() < length) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return;
    body.append(buf, static_cast<size_t>(n));
  }
  json req = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!req.is_object() || !req.contains("input") || !req["input"].is_array() || !req.contains("model") ||
      !req["model"].is_string() || head.rfind("POST /v1/embeddings ", 0) != 0) {
    SendAll(fd, Response(400, "Bad Request", R"({"error":{"message":"expected POST /v1/embeddings {model, input}"}})"));
    return;
  }
  const std::string model = req["model"].get<std::string>();
  std::vector<std::string> input;
  for (const json& t : req["input"]) input.push_back(t.is_string() ? t.get<std::string>() : t.dump());
  Mode mode;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++requests_;
    batch_sizes_.push_back(input.size());
    last_model_ = model;
    last_authorization_ = Header(head, "authorization");
    mode = mode_;
  }
  switch (mode) {
    case Mode::kHang: {
      std::unique_lock<std::mutex> lock(mu_);
      changed_.wait(lock, [&] { return stop_ || mode_ != Mode::kHang; });
      return;  // closed without an answer
    }
    case Mode::kHttp500:
      SendAll(fd, Response(500, "Internal Server Error", R"({"error":{"message":"CUDA out of memory"}})"));
      return;
    case Mode::kHttp503:
      SendAll(fd, Response(503, "Service Unavailable", R"({"error":"model is loading"})"));
      return;
    case Mode::kHuge:
      SendAll(fd, Response(200, "OK", std::string(2 << 20, ' ')));
      return;
    case Mode::kNotJson:
      SendAll(fd, Response(200, "OK", "<html>\x01\xff gateway</html>"));
      return;
    default:
      break;
  }
  json data = json::array();
  // Answered in reverse order, as the index field allows.
  for (size_t i = input.size(); i-- > 0;) {
    std::vector<float> v = VectorFor(input[i], model, dimension_);
    if (mode == Mode::kWrongDimension) v.pop_back();
    json emb = v;
    if (mode == Mode::kNonFinite) emb[0] = 1e39;
    data.push_back({{"object", "embedding"}, {"index", mode == Mode::kDuplicateIndex ? 0 : i}, {"embedding", emb}});
  }
  if (mode == Mode::kWrongCount && !data.empty()) data.erase(data.begin());
  const json out{{"object", "list"}, {"model", model}, {"data", data}, {"usage", {{"prompt_tokens", 1}}}};
  SendAll(fd, Response(200, "OK", out.dump()));
}

}  // namespace playbook::testing
