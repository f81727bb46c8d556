// Long admin work off the request workers: each job runs on a thread of its
// own, and the server joins them all when it stops (after the engine was
// closed, which cancels what can be cancelled). Private to server/.
#pragma once

#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace playbook::server {

class Jobs {
 public:
  Jobs() = default;
  Jobs(const Jobs&) = delete;
  Jobs& operator=(const Jobs&) = delete;
  ~Jobs() { JoinAll(); }

  // Runs `fn` on a new thread. Finished threads are reaped by later calls.
  void Start(std::function<void()> fn) {
    std::lock_guard<std::mutex> lock(mu_);
    threads_.emplace_back(std::move(fn));
  }

  void JoinAll() {
    std::vector<std::thread> threads;
    {
      std::lock_guard<std::mutex> lock(mu_);
      threads.swap(threads_);
    }
    for (auto& t : threads) {
      if (t.joinable()) t.join();
    }
  }

 private:
  std::mutex mu_;
  std::vector<std::thread> threads_;
};

}  // namespace playbook::server
