// Text from the remote embedder made safe to log and to put in a JSON-RPC
// error (printable ASCII only: the endpoint's bytes need not be UTF-8).
#pragma once

#include <string>
#include <string_view>

namespace playbook::server {

// `text` with every byte outside 0x20..0x7e replaced by '?', cut after `max`
// bytes (then ending in "...").
std::string Printable(std::string_view text, size_t max);

// What a non-2xx response body says: the "error" message of the common JSON
// shapes, else the body's first bytes; Printable.
std::string ErrorBodyReason(std::string_view body);

}  // namespace playbook::server
