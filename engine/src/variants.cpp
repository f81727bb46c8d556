#include "variants.h"

#include <algorithm>
#include <vector>

namespace playbook {

std::string ContentRoot(const std::string& id, const std::function<std::string(const std::string&)>& next) {
  std::vector<std::string> path{id};
  while (path.size() <= kMaxVariantHops) {
    std::string to = next(path.back());
    if (to.empty()) return path.back();
    const auto seen = std::find(path.begin(), path.end(), to);
    if (seen != path.end()) return *std::min_element(seen, path.end());  // the cycle's smallest id
    path.push_back(std::move(to));
  }
  return path.back();
}

}  // namespace playbook
