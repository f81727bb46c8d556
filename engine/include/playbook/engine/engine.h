// The engine: Playbook's core, with no networking and no JSON.
//
// Thread safety: all public methods may be called concurrently from any
// thread once Open has returned, except Close, which must be called once,
// after every other call has returned.
#pragma once

#include <memory>
#include <string>

#include "playbook/engine/options.h"
#include "playbook/engine/status.h"

namespace playbook {

class Engine {
 public:
  // Opens (creating when missing) the data dir named by options.data_dir.
  // Fails with IOError when the directory cannot be created or is in use by
  // another process, with Corruption when it holds data this build cannot read.
  static Result<std::unique_ptr<Engine>> Open(const EngineOptions& options);

  virtual ~Engine() = default;
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // OK when the engine can serve reads and durable writes.
  virtual Status Health() const = 0;

  // Makes everything written so far durable and releases the data dir.
  // Idempotent. The destructor calls it when it was not called.
  virtual Status Close() = 0;

  virtual const EngineOptions& options() const = 0;

 protected:
  Engine() = default;
};

}  // namespace playbook
