#include "web_assets.h"

namespace playbook::server {

const WebAsset* FindWebAsset(std::string_view path) {
  if (path == "/" || path == "/index.html") path = "/web/index.html";
  if (path == "/panel" || path == "/panel/") path = "/panel/index.html";
  for (size_t i = 0; i < web_data::kAssetCount; ++i) {
    if (web_data::kAssets[i].path == path) return &web_data::kAssets[i];
  }
  return nullptr;
}

}  // namespace playbook::server
