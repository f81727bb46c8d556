#include "playbook/server/auth.h"

#include <algorithm>
#include <cctype>

namespace playbook::server {
namespace {

std::shared_ptr<const std::vector<AuthToken>> Named(std::vector<AuthToken> tokens) {
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i].name.empty()) tokens[i].name = "token-" + std::to_string(i);
  }
  return std::make_shared<const std::vector<AuthToken>>(std::move(tokens));
}

}  // namespace

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

TokenAuth::TokenAuth(std::vector<AuthToken> tokens) : tokens_(Named(std::move(tokens))) {}

std::shared_ptr<const TokenAuth::Tokens> TokenAuth::Snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  return tokens_;
}

bool TokenAuth::open() const { return Snapshot()->empty(); }

size_t TokenAuth::size() const { return Snapshot()->size(); }

std::vector<std::string> TokenAuth::Names() const {
  std::vector<std::string> names;
  for (const AuthToken& t : *Snapshot()) names.push_back(t.name);
  return names;
}

void TokenAuth::Replace(std::vector<AuthToken> tokens) {
  auto fresh = Named(std::move(tokens));
  std::lock_guard<std::mutex> lock(mu_);
  tokens_.swap(fresh);
  // The old set is released outside the lock, with `fresh`, unless a reader still holds it.
}

std::optional<Identity> TokenAuth::Identify(std::string_view header) const {
  const std::shared_ptr<const Tokens> tokens = Snapshot();
  if (tokens->empty()) return Identity{Role::kAdmin, "-"};
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
  const AuthToken* match = nullptr;
  for (const AuthToken& t : *tokens) {
    if (ConstantTimeEquals(presented, t.token) && match == nullptr) match = &t;
  }
  if (match == nullptr) return std::nullopt;
  return Identity{match->role, match->name};
}

std::optional<Role> TokenAuth::Authenticate(std::string_view header) const {
  std::optional<Identity> id = Identify(header);
  if (!id) return std::nullopt;
  return id->role;
}

}  // namespace playbook::server
