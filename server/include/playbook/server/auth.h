// API tokens and roles. A token is presented on the WebSocket upgrade as
// "Authorization: Bearer TOKEN"; its role decides which methods it may call.
//
// Thread safety: Authenticate/Identify may run concurrently with each other and
// with Replace (the SIGHUP reload), which swaps the whole token set at once.
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "playbook/server/config.h"

namespace playbook::server {

// Who a connection authenticated as: the token's role and name (never the token).
struct Identity {
  Role role = Role::kAdmin;
  std::string name;  // "-" in open mode (no tokens configured)
};

class TokenAuth {
 public:
  // Tokens without a name are called "token-<index>".
  explicit TokenAuth(std::vector<AuthToken> tokens);

  // True when no token is configured: everyone is admin (loopback only; see ValidateConfig).
  bool open() const;
  size_t size() const;
  // The configured tokens' names, in order.
  std::vector<std::string> Names() const;

  // The identity of the bearer token in an Authorization header value, or
  // nullopt for a missing, malformed or unknown token. When open(), always
  // admin named "-". Compares against every token in constant time per token.
  std::optional<Identity> Identify(std::string_view authorization_header) const;
  // Identify's role.
  std::optional<Role> Authenticate(std::string_view authorization_header) const;

  // Swaps in a new token set atomically: a later Identify sees all of the new
  // tokens and none of the old. Connections already open keep their role.
  void Replace(std::vector<AuthToken> tokens);

 private:
  using Tokens = std::vector<AuthToken>;
  std::shared_ptr<const Tokens> Snapshot() const;

  mutable std::mutex mu_;
  std::shared_ptr<const Tokens> tokens_;
};

// Whether `have` may call a method that requires `need` (roles nest: crm < marketing < admin).
inline bool RoleAllows(Role have, Role need) { return static_cast<int>(have) >= static_cast<int>(need); }

// Equality whose time depends only on the lengths, not on where the inputs differ.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

}  // namespace playbook::server
