#include "playbook/server/auth.h"

#include <algorithm>

namespace playbook::server {

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  const size_t n = std::max(a.size(), b.size());
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

TokenAuth::TokenAuth(std::vector<AuthToken> tokens) : tokens_(std::move(tokens)) {}

std::optional<Role> TokenAuth::Authenticate(std::string_view header) const {
  if (open()) return Role::kAdmin;
  constexpr std::string_view kScheme = "Bearer ";
  if (header.size() <= kScheme.size()) return std::nullopt;
  // The scheme is case-insensitive (RFC 7235).
  for (size_t i = 0; i < kScheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(header[i])) !=
        std::tolower(static_cast<unsigned char>(kScheme[i]))) {
      return std::nullopt;
    }
  }
  std::string_view presented = header.substr(kScheme.size());
  while (!presented.empty() && presented.front() == ' ') presented.remove_prefix(1);
  while (!presented.empty() && presented.back() == ' ') presented.remove_suffix(1);
  // Visit every token, whatever matches, so the time says nothing about which.
  std::optional<Role> role;
  for (const AuthToken& t : tokens_) {
    if (ConstantTimeEquals(presented, t.token) && !role) role = t.role;
  }
  return role;
}

}  // namespace playbook::server
