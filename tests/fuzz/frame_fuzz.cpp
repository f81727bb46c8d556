// One WebSocket text frame through the request boundary, as the daemon takes
// it: ParseFrame (server/include/playbook/server/jsonrpc.h), then for each
// well-formed request the params parser of its method from the real method
// table (CheckParams, server/include/playbook/server/requests.h), and the
// answer serialised. Nothing may throw or crash; every error is well-formed.
// And ParseFrame's fast path (ParseJsonFast) against json::parse: whatever it
// accepts, json::parse accepts too and builds the same document, value types
// included.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "playbook/server/jsonrpc.h"
#include "playbook/server/requests.h"

namespace ps = playbook::server;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (ps::json fast; ps::ParseJsonFast(text, &fast)) {
    ps::json slow;
    try {
      slow = ps::json::parse(text);
    } catch (const ps::json::exception&) {
      std::abort();  // the fast path took text nlohmann refuses
    }
    if (!ps::SameJsonDocument(fast, slow)) std::abort();
  }
  const ps::Frame frame = ps::ParseFrame(text);
  if (frame.error) {
    if (!frame.entries.empty() || frame.error->message.empty()) std::abort();
    (void)ps::Serialize(ps::MakeError(nullptr, *frame.error));
    return 0;
  }
  if (frame.entries.empty() || (!frame.is_batch && frame.entries.size() != 1)) std::abort();
  for (const ps::Entry& e : frame.entries) {
    if (e.error) {
      (void)ps::Serialize(ps::MakeError(e.has_id ? e.id : nullptr, *e.error));
      continue;
    }
    if (e.method.empty() || !(e.params.is_object() || e.params.is_array())) std::abort();
    const playbook::Status st = ps::CheckParams(e.method, e.params);
    if (st.ok()) {
      (void)ps::Serialize(ps::MakeResult(e.id, nullptr));
    } else {
      // Answered with the error the daemon would send.
      (void)ps::Serialize(ps::MakeError(e.id, ps::ErrorFromStatus(st)));
    }
  }
  return 0;
}
