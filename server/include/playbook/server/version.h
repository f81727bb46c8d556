#pragma once

namespace playbook {
// "0.1.0+<git commit>" of this build.
const char* BuildVersion();
}  // namespace playbook
