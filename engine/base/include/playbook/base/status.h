// The one error type of the engine and everything built on it.
//
// A Status is either OK or carries a Code, a message for humans and, for
// InvalidArgument, the path of the offending input field ("assets[3].stages").
// Only server/ maps codes to JSON-RPC error codes, in one place.
//
// Thread safety: a Status is a value; distinct objects may be used from
// distinct threads without synchronisation.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace playbook {

class [[nodiscard]] Status {
 public:
  enum class Code {
    kOk = 0,
    kInvalidArgument,  // the caller's input is wrong; field() names where
    kNotFound,         // a named thing does not exist
    kOverloaded,       // try again later; nothing was done
    kUnauthorized,     // the caller may not do this
    kCorruption,       // stored data is damaged
    kIOError,          // the file system or storage failed
    kInternal,         // a bug or an unexpected failure
  };

  // OK. Success allocates nothing.
  Status() = default;
  static Status Ok() { return Status(); }

  // `field` is a path into the request ("params.k", "assets[6].stages").
  static Status InvalidArgument(std::string field, std::string message) {
    return Status(Code::kInvalidArgument, std::move(message), std::move(field));
  }
  static Status NotFound(std::string message) { return Status(Code::kNotFound, std::move(message)); }
  static Status Overloaded(std::string message) { return Status(Code::kOverloaded, std::move(message)); }
  static Status Unauthorized(std::string message) { return Status(Code::kUnauthorized, std::move(message)); }
  static Status Corruption(std::string message) { return Status(Code::kCorruption, std::move(message)); }
  static Status IOError(std::string message) { return Status(Code::kIOError, std::move(message)); }
  static Status Internal(std::string message) { return Status(Code::kInternal, std::move(message)); }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  // Empty when OK.
  const std::string& message() const { return message_; }
  // The offending input field; empty unless the caller's input named one.
  const std::string& field() const { return field_; }

  // "InvalidArgument: assets[3].stages: unknown stage 'foo'", or "OK".
  std::string ToString() const;
  static const char* CodeName(Code code);

 private:
  Status(Code code, std::string message, std::string field = {})
      : code_(code), message_(std::move(message)), field_(std::move(field)) {}

  Code code_ = Code::kOk;
  std::string message_;
  std::string field_;
};

// A value or the Status that explains why there is none.
// REQUIRES: constructed from a non-OK Status when it holds no value.
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}          // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {}   // NOLINT: implicit by design

  bool ok() const { return std::holds_alternative<T>(v_); }
  // REQUIRES: ok()
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  // OK when a value is held.
  Status status() const { return ok() ? Status::Ok() : std::get<Status>(v_); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace playbook
