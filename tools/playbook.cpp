// playbook: the command-line client of playbookd.
//
//   playbook --version
//   playbook call    [options] METHOD ['JSON-PARAMS']
//   playbook import  [options] FILE|-
//   playbook export  [options] [FILE|-]
//   playbook reindex [options]
//   playbook simulate [options]
//   playbook report  [options] assets|unused|dismissals|phrases|reps|funnel|experiment
//   playbook reaggregate [--check] [options]
//   playbook backup  [options] DIR
//   playbook restore DIR --data-dir NEW
//
// Exit status: 0 success, 1 the server answered with a JSON-RPC error (import:
// some lines failed), 2 usage error (nothing was sent), 3 connection, handshake
// or timeout failure. docs/cli.md describes every subcommand.
//
// main() is a thin dispatch over the table of subcommands below; a new
// subcommand is one function (tools/cli/NAME.cpp, declared in cli/common.h)
// plus one row.
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include "cli/common.h"
#include "playbook/server/version.h"

namespace playbook::cli {
int RunSimulate(Args args);  // tools/cli/simulate.cpp
int RunReport(Args args);    // tools/cli/report.cpp
int RunReaggregate(Args args);  // tools/cli/reaggregate.cpp
int RunBackup(Args args);       // tools/cli/backup.cpp
int RunRestore(Args args);      // tools/cli/backup.cpp
}  // namespace playbook::cli

namespace {

using namespace playbook::cli;

struct Subcommand {
  std::string_view name;
  std::string_view synopsis;  // after "playbook <name> "
  std::string_view summary;
  int (*run)(Args args);
};

constexpr Subcommand kSubcommands[] = {
    {"call", "[options] METHOD ['JSON-PARAMS']", "send one JSON-RPC request and print the response",
     RunCall},
    {"import", "[--batch N] [--format jsonl|csv] [options] FILE|-",
     "upsert the assets of a JSON Lines or CSV file in batches, reporting bad lines", RunImport},
    {"export", "[--stage S] [--type T] [--with-vectors] [options] [FILE|-]",
     "write the assets as JSON Lines that import reads back", RunExport},
    {"reindex", "[options]", "rebuild the vector index, showing progress until it is done",
     RunReindex},
    {"simulate", "[--leads N] [--seed S] [--follow P] [--k K] [--format table|json] [options]",
     "run a simulated sales team against the daemon and measure whether its ranking learns",
     RunSimulate},
    {"report",
     "assets|unused|dismissals|phrases|reps|funnel|experiment [--from DATE] [--to DATE] [--stage S] [--format table|csv|json] "
     "[report options] [options]",
     "print a content-effectiveness report (playbook report --help) as a table, CSV or JSON", RunReport},
    {"reaggregate", "[--check] [--no-progress] [options]",
     "rebuild the report and ranking aggregates from the raw event log (--check: compare only)",
     RunReaggregate},
    {"backup", "[options] DIR",
     "write a consistent online backup of the daemon's data into DIR (on the daemon's machine)", RunBackup},
    {"restore", "DIR --data-dir NEW", "offline: copy a backup into a new data dir, checked against its manifest",
     RunRestore},
};

void PrintUsage(std::ostream& out) {
  out << "Usage: playbook <command> [options] [arguments]\n"
         "       playbook <command> --help\n"
         "       playbook --version | --help\n\n"
         "Commands:\n";
  for (const auto& sub : kSubcommands) {
    out << "  " << sub.name << " " << sub.synopsis << "\n      " << sub.summary << "\n";
  }
  out << "\n" << kConnectionOptions
      << "\nExit status: 0 success, 1 the server returned an error (import: some lines failed),\n"
         "2 usage error, 3 connection, authentication or timeout failure.\n";
}

int Dispatch(Args args) {
  if (args.empty()) {
    PrintUsage(std::cerr);
    return kExitUsage;
  }
  const std::string& first = args[0];
  if (first == "--help" || first == "-h" || first == "help") {
    PrintUsage(std::cout);
    return kExitOk;
  }
  if (first == "--version" || first == "-V" || first == "version") {
    std::cout << "playbook " << playbook::BuildVersion() << "\n";
    return kExitOk;
  }
  if (!first.empty() && first[0] == '-') return UsageError("unknown option '" + first + "'");
  for (const auto& sub : kSubcommands) {
    if (sub.name == first) return sub.run(args.subspan(1));
  }
  return UsageError("unknown command '" + first + "'");
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  try {
    return Dispatch(args);
  } catch (const std::exception& e) {
    std::cerr << "playbook: " << e.what() << "\n";
    return kExitConnection;
  }
}
