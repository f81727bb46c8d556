// Counts one open TCP connection in the metrics for as long as it lives; moves
// from the HTTP session to the WebSocket session on upgrade. Private to server/.
#pragma once

#include "playbook/server/metrics.h"

namespace playbook::server {

class ConnectionCount {
 public:
  explicit ConnectionCount(Metrics* metrics) : metrics_(metrics) {
    if (metrics_) metrics_->ConnectionOpened();
  }
  ConnectionCount(ConnectionCount&& other) noexcept : metrics_(other.metrics_) {
    other.metrics_ = nullptr;
  }
  ConnectionCount& operator=(ConnectionCount&&) = delete;
  ConnectionCount(const ConnectionCount&) = delete;
  ~ConnectionCount() {
    if (metrics_) metrics_->ConnectionClosed();
  }

 private:
  Metrics* metrics_;
};

}  // namespace playbook::server
