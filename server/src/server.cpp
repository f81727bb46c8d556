// The server's threads and lifecycle: the accept loop, the network threads,
// the worker pool, signal handling and the graceful stop.
#include "playbook/server/server.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <pthread.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>
#include <thread>
#include <vector>

#include "jobs.h"
#include "playbook/server/methods.h"
#include "playbook/server/service_notify.h"
#include "sessions.h"
#include "shared_state.h"

namespace playbook::server {

namespace net = boost::asio;
using tcp = net::ip::tcp;

// Beyond the grace period, a stop takes up to 2 s to close the connections (WaitForDrain) and
// then the storage flush and the index save: this much is allowed for both.
constexpr uint64_t kStopMarginMs = 32000;

struct Server::Impl {
  Impl(Config c, Engine* e)
      : config(std::move(c)), engine(e), state(config, engine, workers), acceptor(ioc),
        signals(ioc, SIGINT, SIGTERM), reload(ioc, SIGHUP), timer(ioc) {}

  void DoAccept() {
    acceptor.async_accept(net::make_strand(ioc), [this](boost::system::error_code ec,
                                                        tcp::socket socket) {
      if (ec == net::error::operation_aborted || !acceptor.is_open()) return;
      if (ec) {
        // Out of descriptors and the like: say so and try again shortly,
        // rather than spin.
        spdlog::warn("accept: {}", ec.message());
        timer.expires_after(std::chrono::milliseconds(100));
        timer.async_wait([this](boost::system::error_code) { DoAccept(); });
        return;
      }
      boost::system::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      StartHttpSession(std::move(socket), state);
      DoAccept();
    });
  }

  void OnSignal(boost::system::error_code ec, int sig) {
    if (ec) return;
    if (state.draining) {
      spdlog::warn("signal {} again: stopping now", sig);
      ioc.stop();
      return;
    }
    spdlog::info("signal {}: stopping", sig);
    signals.async_wait([this](boost::system::error_code e, int s) { OnSignal(e, s); });
    BeginShutdown();
  }

  void OnReload(boost::system::error_code ec, int) {
    if (ec) return;
    reload.async_wait([this](boost::system::error_code e, int s) { OnReload(e, s); });
    ReloadTokens();
  }

  // SIGHUP: the config file's [[auth.tokens]] replace the tokens in force, all
  // at once; nothing else is applied. A bad file changes nothing.
  void ReloadTokens() {
    if (config.source_path.empty()) {
      spdlog::warn("SIGHUP: started without --config: no tokens to reload");
      return;
    }
    Result<Config> loaded = LoadConfigFile(config.source_path);
    if (!loaded.ok()) {
      spdlog::error("SIGHUP: tokens not reloaded, the {} in force stay: {}", state.auth.size(),
                    loaded.status().ToString());
      return;
    }
    for (const std::string& key : ChangedKeysExceptTokens(config.source_text, loaded.value().source_text)) {
      spdlog::warn("SIGHUP: {} changed: needs a restart; ignored", key);
    }
    std::vector<AuthToken> tokens = std::move(loaded.value().tokens);
    if (tokens.empty() && !state.auth.open()) {
      spdlog::error("SIGHUP: tokens not reloaded, the {} in force stay: the file would remove every "
                    "token, leaving the daemon open to anyone as admin (that needs a restart)",
                    state.auth.size());
      return;
    }
    state.auth.Replace(std::move(tokens));
    std::string names;
    for (const std::string& n : state.auth.Names()) names += (names.empty() ? "" : ",") + n;
    spdlog::info("SIGHUP: tokens reloaded from {}: {} token(s) [{}]; open connections keep their role",
                 config.source_path, state.auth.size(), names);
  }

  // Runs on the network loop.
  void BeginShutdown() {
    if (state.draining.exchange(true)) return;
    boost::system::error_code ignored;
    acceptor.close(ignored);
    spdlog::info("draining: {} request(s) in flight, up to {} ms", state.queued(),
                 config.server.shutdown_grace_ms);
    // systemd: stopping. The stop may take the grace period, 2 s of closing and the flush: the
    // extension lets a shutdown_grace_ms beyond the unit's TimeoutStopSec finish before a SIGKILL.
    std::string stopping = "STOPPING=1\nSTATUS=draining\nEXTEND_TIMEOUT_USEC=";
    stopping += std::to_string((uint64_t{config.server.shutdown_grace_ms} + kStopMarginMs) * 1000);
    if (Status s = NotifyServiceManager(stopping); !s.ok()) spdlog::warn("{}", s.ToString());
    drain_deadline =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(config.server.shutdown_grace_ms);
    WaitForDrain();
  }

  void WaitForDrain() {
    if (state.queued() > 0 && std::chrono::steady_clock::now() < drain_deadline) {
      timer.expires_after(std::chrono::milliseconds(10));
      timer.async_wait([this](boost::system::error_code) { WaitForDrain(); });
      return;
    }
    if (state.queued() > 0) {
      spdlog::warn("grace period over with {} request(s) still running; closing connections",
                   state.queued());
    }
    auto sessions = state.Sessions();
    for (auto& s : sessions) s->GoAway();
    close_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    WaitForClose();
  }

  void WaitForClose() {
    if (state.metrics.open_websockets() > 0 && std::chrono::steady_clock::now() < close_deadline) {
      timer.expires_after(std::chrono::milliseconds(10));
      timer.async_wait([this](boost::system::error_code) { WaitForClose(); });
      return;
    }
    ioc.stop();  // idle keep-alive HTTP connections are dropped with the loop
  }

  Config config;
  Engine* engine;
  // Declared before the io_contexts so that it outlives the handlers (and the
  // sessions they own) that the io_contexts destroy.
  SharedState state;
  net::io_context ioc;      // network: accept, HTTP, WebSocket
  net::io_context workers;  // the worker pool's queue
  tcp::acceptor acceptor;
  net::signal_set signals;
  net::signal_set reload;  // SIGHUP: reload the tokens
  net::steady_timer timer;
  std::unique_ptr<net::ssl::context> tls;  // [server.tls]; state.tls points here
  std::chrono::steady_clock::time_point drain_deadline, close_deadline;
  bool started = false;
  // Background jobs (aggregates.rebuild); last, so the first destroyed: its
  // threads are joined while everything they use still exists.
  Jobs jobs;
};

namespace {

// [server.tls]: the certificate chain and key, read now; errors name the key.
Result<std::unique_ptr<net::ssl::context>> MakeTlsContext(const TlsOptions& tls) {
  for (const auto& [field, path] : {std::pair{"server.tls.cert", &tls.cert}, std::pair{"server.tls.key", &tls.key}}) {
    std::FILE* f = std::fopen(path->c_str(), "rb");
    if (f == nullptr) {
      return Status::InvalidArgument(field, "cannot read '" + *path + "': " + std::strerror(errno));
    }
    std::fclose(f);
  }
  auto ctx = std::make_unique<net::ssl::context>(net::ssl::context::tls_server);
  ctx->set_options(net::ssl::context::default_workarounds | net::ssl::context::no_sslv2 |
                   net::ssl::context::no_sslv3 | net::ssl::context::no_tlsv1 |
                   net::ssl::context::no_tlsv1_1 | net::ssl::context::single_dh_use);
  boost::system::error_code ec;
  ctx->use_certificate_chain_file(tls.cert, ec);
  if (ec) {
    return Status::InvalidArgument("server.tls.cert",
                                   "'" + tls.cert + "' is not a PEM certificate chain: " + ec.message());
  }
  ctx->use_private_key_file(tls.key, net::ssl::context::pem, ec);
  if (ec) {
    return Status::InvalidArgument("server.tls.key", "'" + tls.key + "' is not a PEM private key: " + ec.message());
  }
  if (SSL_CTX_check_private_key(ctx->native_handle()) != 1) {
    return Status::InvalidArgument("server.tls.key", "'" + tls.key + "' does not match the certificate in '" +
                                                         tls.cert + "'");
  }
  return ctx;
}

}  // namespace

uint32_t WorkerThreads(const ServerOptions& options) {
  // Handlers wait on synced writes (feedback, recommend's shown events): more
  // waiting callers share each fsync (group commit). Measured on 2 cores,
  // feedback.record of 1 event from 16 clients: 4,800 events/s with 2 workers,
  // 22,000 with 16 (docs/benchmarks.md).
  return options.worker_threads > 0 ? options.worker_threads
                                    : std::max(8u, 4 * std::thread::hardware_concurrency());
}

Server::Server(Config config, Engine* engine)
    : impl_(std::make_unique<Impl>(std::move(config), engine)) {}

Server::~Server() = default;

Status Server::Start(bool engine_open) {
  Impl& m = *impl_;
  m.state.serving.store(engine_open, std::memory_order_release);
  const ServerOptions& so = m.config.server;

  StatsSource stats;
  stats.metrics = &m.state.metrics;
  stats.started = m.state.started;
  const uint32_t workers = WorkerThreads(so);
  stats.workers = [&m, workers] {
    return json{{"threads", workers},
                {"queued", m.state.queued()},
                {"max_queued", m.config.server.max_queued_requests}};
  };
  m.state.dispatcher.set_max_response_bytes(so.max_response_bytes);
  AddServerMethods(m.state.dispatcher, std::move(stats));
  AddCatalogMethods(m.state.dispatcher, *m.engine);
  AddFeedbackMethods(m.state.dispatcher, *m.engine);
  AddReportMethods(m.state.dispatcher, *m.engine, m.jobs);
  AddBackupMethods(m.state.dispatcher, *m.engine);
  if (m.config.debug.test_methods) AddDebugMethods(m.state.dispatcher);

  if (so.tls.enabled()) {
    auto tls = MakeTlsContext(so.tls);
    if (!tls.ok()) return tls.status();
    m.tls = std::move(tls).value();
    m.state.tls = m.tls.get();
  }

  boost::system::error_code ec;
  const std::string host = so.bind == "localhost" ? "127.0.0.1" : so.bind;
  const net::ip::address address = net::ip::make_address(host, ec);
  if (ec) return Status::InvalidArgument("server.bind", "not an IP address: '" + so.bind + "'");
  const tcp::endpoint endpoint(address, so.port);
  const std::string where = so.bind + ":" + std::to_string(so.port);
  m.acceptor.open(endpoint.protocol(), ec);
  if (!ec) m.acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) m.acceptor.bind(endpoint, ec);
  if (!ec) m.acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) return Status::IOError("cannot listen on " + where + ": " + ec.message());
  m.started = true;
  return Status::Ok();
}

void Server::AddMetrics(std::function<void(std::string*)> render) {
  impl_->state.metrics.AddSource(std::move(render));
}

void Server::EngineOpened() { impl_->state.serving.store(true, std::memory_order_release); }

std::optional<std::string> Server::HandleLocalFrame(std::string_view frame, const std::string& caller) const {
  CallContext ctx;
  ctx.role = Role::kAdmin;
  ctx.token_name = caller;
  return impl_->state.dispatcher.HandleFrame(frame, ctx);
}

uint16_t Server::port() const {
  boost::system::error_code ec;
  return impl_->acceptor.local_endpoint(ec).port();
}

void Server::Run() {
  Impl& m = *impl_;
  if (!m.started) return;
  m.signals.async_wait([&m](boost::system::error_code ec, int sig) { m.OnSignal(ec, sig); });
  m.reload.async_wait([&m](boost::system::error_code ec, int sig) { m.OnReload(ec, sig); });
  m.DoAccept();

  const ServerOptions& so = m.config.server;
  const uint32_t worker_count = WorkerThreads(so);
  auto guard = net::make_work_guard(m.workers);
  std::vector<std::thread> workers;
  // Named for perf and top -H (the others: pb-syncer, pb-saver, rocksdb:*).
  for (uint32_t i = 0; i < worker_count; ++i) {
    workers.emplace_back([&m] {
      pthread_setname_np(pthread_self(), "pb-worker");
      m.workers.run();
    });
  }

  std::vector<std::thread> io;
  for (uint32_t i = 1; i < std::max(1u, so.io_threads); ++i) {
    io.emplace_back([&m] {
      pthread_setname_np(pthread_self(), "pb-io");
      m.ioc.run();
    });
  }
  m.ioc.run();
  for (auto& t : io) t.join();

  // Requests still queued after the grace period are dropped; running ones finish.
  guard.reset();
  m.workers.stop();
  for (auto& t : workers) t.join();
  spdlog::info("server stopped");
}

void Server::Shutdown() {
  Impl* m = impl_.get();
  net::post(m->ioc, [m] { m->BeginShutdown(); });
}

}  // namespace playbook::server
