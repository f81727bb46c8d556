// API tokens and roles. A token is presented on the WebSocket upgrade as
// "Authorization: Bearer TOKEN"; its role decides which methods it may call.
//
// Thread safety: const after construction; Authenticate may run concurrently.
#pragma once

#include <optional>
#include <string_view>
#include <vector>

#include "playbook/server/config.h"

namespace playbook::server {

class TokenAuth {
 public:
  explicit TokenAuth(std::vector<AuthToken> tokens);

  // True when no token is configured: everyone is admin (loopback only; see ValidateConfig).
  bool open() const { return tokens_.empty(); }

  // The role of the bearer token in an Authorization header value, or nullopt
  // for a missing, malformed or unknown token. When open(), always admin.
  // Compares against every token in constant time per token.
  std::optional<Role> Authenticate(std::string_view authorization_header) const;

 private:
  std::vector<AuthToken> tokens_;
};

// Whether `have` may call a method that requires `need` (roles nest: crm < marketing < admin).
inline bool RoleAllows(Role have, Role need) { return static_cast<int>(have) >= static_cast<int>(need); }

// Equality whose time depends only on the lengths, not on where the inputs differ.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

}  // namespace playbook::server
