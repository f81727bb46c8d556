// Reading a method's params: typed getters that record the first error with
// the path of the offending field ("assets[3].stages"), and a Finish() that
// rejects every member nobody read, so unknown input is named, never ignored.
//
//   ParamReader r(params);
//   int64_t ms = r.Int("ms", /*fallback=*/0, /*min=*/0, /*max=*/10000);
//   if (Status s = r.Finish(); !s.ok()) return s;  // InvalidArgument(field, reason)
//
// Not thread-safe; one reader per request.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "playbook/engine/status.h"
#include "playbook/server/jsonrpc.h"

namespace playbook::server {

class ParamReader {
 public:
  // `object` must outlive the reader. A non-object is an error on `path`
  // ("params" when path is empty).
  explicit ParamReader(const json& object, std::string path = "");

  // Whether the member is present (null counts as present). Does not mark it read.
  bool Has(std::string_view key) const;

  // Required string of 1..max_len bytes.
  std::string String(std::string_view key, size_t max_len = 1 << 20);
  // Optional string; nullopt when absent or null.
  std::optional<std::string> OptString(std::string_view key, size_t max_len = 1 << 20);
  // Integer in [min, max]; `fallback` when absent.
  int64_t Int(std::string_view key, int64_t fallback, int64_t min, int64_t max);
  std::optional<int64_t> OptInt(std::string_view key, int64_t min, int64_t max);
  // Finite number (integer or float) in [min, max]; nullopt when absent.
  std::optional<double> OptNumber(std::string_view key, double min, double max);
  bool Bool(std::string_view key, bool fallback);
  // Array of strings; `required` makes absence an error. Empty elements are errors.
  std::vector<std::string> Strings(std::string_view key, bool required, size_t max_items = 100000);
  // Array of numbers (a vector), or a string of base64 little-endian float32
  // (playbook/base/vector_base64.h); empty when absent. Non-numbers, numbers
  // that are not finite as float32 (1e39, or NaN/inf decoded from base64) are
  // named ("vector[3]"); bad base64 is named by the key; the length is the
  // caller's to check.
  std::vector<float> Floats(std::string_view key, size_t max_items);
  // The raw member, marked read; nullptr when absent. Type checks are the caller's.
  const json* Raw(std::string_view key);

  // Records an error on `key` of this object unless one is recorded already.
  void Fail(std::string_view key, std::string reason);
  // The path of `key` in this object: "assets[3].stages".
  std::string PathOf(std::string_view key) const;

  bool ok() const { return error_->ok(); }
  // The first error, or an error on the first member that was not read.
  Status Finish();

 private:
  const json* Member(std::string_view key);

  const json& object_;
  std::string path_;
  std::shared_ptr<Status> error_;
  std::set<std::string, std::less<>> read_;
};

}  // namespace playbook::server
