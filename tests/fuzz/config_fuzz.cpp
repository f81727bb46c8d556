// The daemon's config reader (playbook::server::ParseConfig) on arbitrary TOML
// text: a verdict for every input, never a crash or an exception. A config it
// accepts is then checked by ValidateConfig, as playbookd does.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "playbook/server/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto config = playbook::server::ParseConfig(text, "fuzz.toml");
  if (config.ok()) {
    (void)playbook::server::ValidateConfig(config.value());
  } else if (config.status().message().empty()) {
    std::abort();  // a refusal always says why
  }
  return 0;
}
