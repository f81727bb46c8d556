// Variants (translations) of one content item: assets linked by variant_of.
// Private to engine/.
#pragma once

#include <functional>
#include <string>

namespace playbook {

// A chain of variant_of links longer than this ends where it was cut.
constexpr size_t kMaxVariantHops = 64;

// The content id of asset `id`: its variant_of links followed to the asset
// that has none, or to an id not known. next(x) returns x's variant_of, ""
// when it has none or x is not known. A cycle (UpsertAssets refuses to make
// one, but the reports also see deleted assets) resolves to its smallest id,
// for every asset on it or leading to it; never loops.
std::string ContentRoot(const std::string& id, const std::function<std::string(const std::string&)>& next);

}  // namespace playbook
