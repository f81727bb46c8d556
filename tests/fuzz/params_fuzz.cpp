// Every method's params parser (server/include/playbook/server/requests.h),
// reached directly: the first byte picks the method among ParsedMethods(),
// the rest is the params JSON. So the fuzzer need not discover method names
// (frame_fuzz.cpp covers the way in through a whole frame). A refusal must be
// InvalidArgument naming a field, or NotFound never (the method is known).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "playbook/server/jsonrpc.h"
#include "playbook/server/requests.h"

namespace ps = playbook::server;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::vector<std::string> methods = ps::ParsedMethods();
  if (size == 0 || methods.empty()) return 0;
  const std::string& method = methods[data[0] % methods.size()];
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  ps::json params;
  try {
    params = ps::json::parse(text);
  } catch (const ps::json::exception&) {
    return 0;  // not JSON: the frame parser's business (frame_fuzz.cpp)
  }
  const playbook::Status st = ps::CheckParams(method, params);
  if (!st.ok()) {
    if (st.code() == playbook::Status::Code::kNotFound) std::abort();  // the method has a parser
    (void)ps::Serialize(ps::MakeError(1, ps::ErrorFromStatus(st)));
  }
  return 0;
}
