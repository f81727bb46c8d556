// The dashboard's static files (server/web/), compiled into playbookd at build
// time by server/web/embed.cmake. No Beast here: http_session.cpp serves them.
#pragma once

#include <cstddef>
#include <string_view>

namespace playbook::server {

struct WebAsset {
  std::string_view path;          // "/web/app.js"
  std::string_view content_type;  // "text/javascript; charset=utf-8"
  std::string_view body;
};

// The file served at `path`: "/" (and "/index.html") is /web/index.html;
// "/web/<name>" is server/web/<name>; "/panel/" (and "/panel") is
// /panel/index.html, "/panel/<name>" server/web/panel/<name>. nullptr for
// anything else.
const WebAsset* FindWebAsset(std::string_view path);

namespace web_data {
// Defined in the generated web_assets_data.cpp.
extern const WebAsset kAssets[];
extern const size_t kAssetCount;
}  // namespace web_data

}  // namespace playbook::server
