// The inputs of `playbook import`: JSON Lines and CSV (RFC 4180) readers that
// turn a file into asset records (compact JSON, as assets.upsert takes them)
// with the line each record starts on, or the reason a record is unusable.
#pragma once

#include <cstddef>
#include <cstdint>
#include <istream>
#include <memory>
#include <string>

#include <nlohmann/json_fwd.hpp>

namespace playbook::cli {

// Compact JSON, invalid UTF-8 replaced: a record's text, and what the CLI prints of a response.
std::string OneLine(const nlohmann::ordered_json& j);

// One asset record of the input, or the reason it is unusable.
struct Record {
  int64_t line = 0;   // 1-based; a CSV record's first line
  std::string id;     // for batching; empty when the record has no string id
  std::string text;   // the asset as compact JSON
  std::string error;  // non-empty: the record is bad, `text` is unused
};

class Reader {
 public:
  virtual ~Reader() = default;
  // The next record; false at the end of the input.
  virtual bool Next(Record& r) = 0;
  // A problem with the input as a whole (e.g. a bad CSV header): nothing is imported.
  virtual std::string fatal() const { return {}; }
  // A read error happened.
  virtual bool failed() const = 0;
  // Bytes consumed so far, for progress.
  std::size_t bytes() const { return bytes_; }

 protected:
  std::size_t bytes_ = 0;
};

// JSON Lines: one object per line; blank lines and lines starting with # are
// skipped; a UTF-8 BOM and CRLF line ends are accepted.
std::unique_ptr<Reader> MakeJsonlReader(std::istream& in);
// CSV with a header naming columns among id,title,body,url,language,type,
// stages,tags,active,vector,variant_of (id, title, type, stages required). Reads the
// header at once: check fatal().
std::unique_ptr<Reader> MakeCsvReader(std::istream& in);

}  // namespace playbook::cli
