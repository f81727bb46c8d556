#include "playbook/server/params.h"

#include <cmath>
#include <limits>

#include "playbook/base/vector_base64.h"

namespace playbook::server {
namespace {

const char* TypeName(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: return "an integer";
    case json::value_t::number_float: return "a number";
    case json::value_t::string: return "a string";
    case json::value_t::array: return "an array";
    case json::value_t::object: return "an object";
    default: return "something else";
  }
}

// 1e9 as "1000000000", 0.05 as "0.05": bounds in messages.
std::string FormatNumber(double d) {
  json j = d;
  if (d == std::trunc(d) && std::fabs(d) < 9e15) j = static_cast<int64_t>(d);
  return j.dump();
}

}  // namespace

ParamReader::ParamReader(const json& object, std::string path)
    : object_(object), path_(std::move(path)), error_(std::make_shared<Status>()) {
  if (!object_.is_object()) {
    *error_ = Status::InvalidArgument(path_.empty() ? "params" : path_,
                                      std::string("expected an object, got ") + TypeName(object_));
  }
}

std::string ParamReader::PathOf(std::string_view key) const {
  return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
}

void ParamReader::Fail(std::string_view key, std::string reason) {
  if (error_->ok()) *error_ = Status::InvalidArgument(PathOf(key), std::move(reason));
}

bool ParamReader::Has(std::string_view key) const {
  return object_.is_object() && object_.contains(key);
}

const json* ParamReader::Member(std::string_view key) {
  read_.emplace(key);
  if (!object_.is_object()) return nullptr;
  auto it = object_.find(key);
  return it == object_.end() ? nullptr : &*it;
}

const json* ParamReader::Raw(std::string_view key) { return Member(key); }

std::string ParamReader::String(std::string_view key, size_t max_len) {
  const json* v = Member(key);
  if (v == nullptr || v->is_null()) {
    Fail(key, "required");
    return {};
  }
  auto s = OptString(key, max_len);
  if (s && s->empty()) Fail(key, "must not be empty");
  return s.value_or("");
}

std::optional<std::string> ParamReader::OptString(std::string_view key, size_t max_len) {
  const json* v = Member(key);
  if (v == nullptr || v->is_null()) return std::nullopt;
  if (!v->is_string()) {
    Fail(key, std::string("expected a string, got ") + TypeName(*v));
    return std::nullopt;
  }
  const auto& s = v->get_ref<const std::string&>();
  if (s.size() > max_len) {
    Fail(key, "longer than " + std::to_string(max_len) + " bytes");
    return std::nullopt;
  }
  return s;
}

std::optional<int64_t> ParamReader::OptInt(std::string_view key, int64_t min, int64_t max) {
  const json* v = Member(key);
  if (v == nullptr || v->is_null()) return std::nullopt;
  const std::string range = std::to_string(min) + ".." + std::to_string(max);
  int64_t n = 0;
  if (v->is_number_unsigned()) {
    const uint64_t u = v->get<uint64_t>();
    if (u > static_cast<uint64_t>(INT64_MAX)) {
      Fail(key, "must be in " + range + ", got " + std::to_string(u));
      return std::nullopt;
    }
    n = static_cast<int64_t>(u);
  } else if (v->is_number_integer()) {
    n = v->get<int64_t>();
  } else if (v->is_number_float()) {
    // 5.0 is the integer 5. The range check comes before the cast: casting a
    // double outside int64's range is undefined.
    const double d = v->get<double>();
    if (!(d >= -9.2e18 && d <= 9.2e18) || d != std::trunc(d)) {
      Fail(key, "expected an integer in " + range + ", got " + v->dump());
      return std::nullopt;
    }
    n = static_cast<int64_t>(d);
  } else {
    Fail(key, std::string("expected an integer, got ") + TypeName(*v));
    return std::nullopt;
  }
  if (n < min || n > max) {
    Fail(key, "must be in " + range + ", got " + std::to_string(n));
    return std::nullopt;
  }
  return n;
}

int64_t ParamReader::Int(std::string_view key, int64_t fallback, int64_t min, int64_t max) {
  return OptInt(key, min, max).value_or(fallback);
}

std::optional<double> ParamReader::OptNumber(std::string_view key, double min, double max) {
  const json* v = Member(key);
  if (v == nullptr || v->is_null()) return std::nullopt;
  if (!v->is_number()) {
    Fail(key, std::string("expected a number, got ") + TypeName(*v));
    return std::nullopt;
  }
  const double d = v->get<double>();
  if (!(d >= min && d <= max)) {  // also false for NaN
    Fail(key, "must be a number in " + FormatNumber(min) + ".." + FormatNumber(max) + ", got " + v->dump());
    return std::nullopt;
  }
  return d;
}

bool ParamReader::Bool(std::string_view key, bool fallback) {
  const json* v = Member(key);
  if (v == nullptr || v->is_null()) return fallback;
  if (!v->is_boolean()) {
    Fail(key, std::string("expected true or false, got ") + TypeName(*v));
    return fallback;
  }
  return v->get<bool>();
}

std::vector<std::string> ParamReader::Strings(std::string_view key, bool required,
                                              size_t max_items) {
  std::vector<std::string> out;
  const json* v = Member(key);
  if (v == nullptr || v->is_null()) {
    if (required) Fail(key, "required");
    return out;
  }
  if (!v->is_array()) {
    Fail(key, std::string("expected an array of strings, got ") + TypeName(*v));
    return out;
  }
  if (v->size() > max_items) {
    Fail(key, "more than " + std::to_string(max_items) + " items");
    return out;
  }
  out.reserve(v->size());
  for (size_t i = 0; i < v->size(); ++i) {
    const json& e = (*v)[i];
    std::string at = std::string(key) + "[" + std::to_string(i) + "]";
    if (!e.is_string()) {
      Fail(at, std::string("expected a string, got ") + TypeName(e));
      return {};
    }
    if (e.get_ref<const std::string&>().empty()) {
      Fail(at, "must not be empty");
      return {};
    }
    out.push_back(e.get<std::string>());
  }
  return out;
}

std::vector<float> ParamReader::Floats(std::string_view key, size_t max_items) {
  std::vector<float> out;
  const json* v = Member(key);
  if (v == nullptr || v->is_null()) return out;
  if (v->is_string()) {
    std::string why;
    if (!DecodeVectorBase64(v->get_ref<const std::string&>(), max_items, &out, &why)) {
      Fail(key, why);
      return {};
    }
    for (size_t i = 0; i < out.size(); ++i) {
      if (!std::isfinite(out[i])) {
        Fail(std::string(key) + "[" + std::to_string(i) + "]",
             std::string("must be a finite number, got ") + (std::isnan(out[i]) ? "NaN" : out[i] > 0 ? "inf" : "-inf") +
                 " (decoded from base64)");
        return {};
      }
    }
    return out;
  }
  if (!v->is_array()) {
    Fail(key, std::string("expected an array of numbers or a base64 string of float32, got ") + TypeName(*v));
    return out;
  }
  if (v->size() > max_items) {
    Fail(key, "more than " + std::to_string(max_items) + " numbers");
    return out;
  }
  out.reserve(v->size());
  for (size_t i = 0; i < v->size(); ++i) {
    const json& e = (*v)[i];
    if (!e.is_number()) {
      Fail(std::string(key) + "[" + std::to_string(i) + "]", std::string("expected a number, got ") + TypeName(e));
      return {};
    }
    // Finite in JSON is not finite in float32: 1e39 would become inf and
    // every score NaN.
    const double d = e.get<double>();
    if (!(std::fabs(d) <= double(std::numeric_limits<float>::max()))) {
      Fail(std::string(key) + "[" + std::to_string(i) + "]",
           "must be a finite number within float32 range (|x| <= 3.4e38), got " + e.dump());
      return {};
    }
    out.push_back(static_cast<float>(d));
  }
  return out;
}

Status ParamReader::Finish() {
  if (!error_->ok()) return *error_;
  for (auto it = object_.begin(); it != object_.end(); ++it) {
    if (read_.find(it.key()) == read_.end()) {
      Fail(it.key(), "unknown field");
      return *error_;
    }
  }
  return Status::Ok();
}

}  // namespace playbook::server
