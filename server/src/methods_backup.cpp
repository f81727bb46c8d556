// Handler of server.backup: a consistent online backup (Engine::Backup).
#include <spdlog/spdlog.h>

#include "playbook/engine/engine.h"
#include "playbook/server/methods.h"
#include "playbook/server/requests.h"

namespace playbook::server {

void AddBackupMethods(Dispatcher& d, Engine& engine) {
  // Admin: it writes wherever the daemon may write.
  d.Add({"server.backup", Role::kAdmin, [&engine](const json& params, const CallContext&) -> Result<json> {
           auto req = ParseServerBackup(params);
           if (!req.ok()) return req.status();
           auto result = engine.Backup(req.value().dir);
           if (!result.ok()) {
             spdlog::warn("server.backup into '{}' failed: {}", req.value().dir, result.status().ToString());
             return result.status();
           }
           const BackupInfo& b = result.value();
           spdlog::info("server.backup: {} files, {} bytes in '{}' in {} ms (catalog writes waited {} ms); "
                        "catalog sequence {}, {} events, index {}",
                        b.files, b.bytes, b.dir, b.ms, b.paused_ms, b.catalog_seq, b.events,
                        b.index_included ? "included" : "left out (rebuilt at start)");
           return json{{"dir", b.dir},
                       {"ms", b.ms},
                       {"bytes", b.bytes},
                       {"files", b.files},
                       {"created_ms", b.created_ms},
                       {"catalog_seq", b.catalog_seq},
                       {"events", b.events},
                       {"index", b.index_included},
                       {"paused_ms", b.paused_ms}};
         }});
}

}  // namespace playbook::server
