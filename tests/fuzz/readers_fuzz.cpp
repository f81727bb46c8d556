// The import readers of `playbook import` (tools/cli/readers.h) on arbitrary
// bytes: JSON Lines (readers_jsonl_fuzz) or CSV (readers_csv_fuzz), chosen at
// compile time. Every record must come back either as compact JSON that
// parses again or with an error; nothing may throw.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "readers.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::istringstream in(std::string(reinterpret_cast<const char*>(data), size));
#if PLAYBOOK_FUZZ_CSV
  auto reader = playbook::cli::MakeCsvReader(in);
#else
  auto reader = playbook::cli::MakeJsonlReader(in);
#endif
  playbook::cli::Record r;
  int64_t last_line = 0;
  while (reader->Next(r)) {
    if (r.line <= last_line) std::abort();  // lines only go forward
    last_line = r.line;
    if (r.error.empty()) {
      // What the reader produces is sent as is: it must be a JSON object.
      const auto j = nlohmann::json::parse(r.text, nullptr, /*allow_exceptions=*/false);
      if (!j.is_object()) std::abort();
    }
    if (reader->bytes() > size + 3) std::abort();  // + a BOM held back
  }
  return 0;
}
