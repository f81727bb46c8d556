// One WebSocket connection: frames in, responses out.
//
// Everything here runs on the connection's strand (the stream's executor),
// except the dispatch itself, which runs on a worker and posts its response
// back. One write is in flight at a time; the rest wait in queue_. Reading
// pauses while max_inflight_per_connection frames, or max_connection_bytes of
// frames and responses, are being worked on or waiting to be written, so a
// client that sends without reading cannot make the server buffer without
// bound; a write the client does not take within write_timeout_ms closes the
// connection, and one that receives nothing is pinged and closed when the
// ping goes unanswered (idle_timeout_ms).
#include "ws_session.h"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <deque>
#include <memory>
#include <string>
#include <string_view>

#include "playbook/server/version.h"
#include "sessions.h"
#include "shared_state.h"

namespace playbook::server {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace net = boost::asio;


// Over a ConnStream: ws:// and wss:// (after the TLS handshake) share one instantiation of
// the WebSocket operations (conn_stream.h says why).
class WsSessionImpl final : public WsSession, public std::enable_shared_from_this<WsSessionImpl> {
 public:
  WsSessionImpl(ConnStream stream, Identity who, SharedState& state, ConnectionCount count)
      : ws_(std::move(stream)), write_timer_(ws_.get_executor()), state_(state), role_(who.role),
        token_name_(std::move(who.name)), id_(state.NextConnectionId()), count_(std::move(count)) {}

  ~WsSessionImpl() override {
    state_.ReleaseBytes(queued_bytes_);
    if (registered_) {
      state_.metrics.WebSocketClosed();
      state_.RemoveSession(id_);
      spdlog::debug("conn={} closed", id_);
    }
  }

  void Run(http::request<http::string_body> req) {
    websocket::stream_base::timeout timeouts;
    timeouts.handshake_timeout = std::chrono::seconds(30);
    timeouts.idle_timeout = std::chrono::milliseconds(state_.config.server.idle_timeout_ms);
    timeouts.keep_alive_pings = true;  // an idle but live client answers; a half-open one does not
    ws_.set_option(timeouts);
    // A browser that offered subprotocols (the dashboard: "playbook.v1" and
    // "bearer.TOKEN") fails the connection unless one of them is selected.
    const auto offered = OfferedSubprotocols(req);
    const bool playbook_v1 = std::find(offered.begin(), offered.end(), "playbook.v1") != offered.end();
    ws_.set_option(websocket::stream_base::decorator([playbook_v1](websocket::response_type& res) {
      res.set(http::field::server, std::string("playbookd/") + BuildVersion());
      res.set("X-Content-Type-Options", "nosniff");
      res.set("X-Frame-Options", "DENY");
      res.set("Referrer-Policy", "no-referrer");
      res.set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'");
      if (playbook_v1) res.set(http::field::sec_websocket_protocol, "playbook.v1");
    }));
    ws_.read_message_max(0);  // enforced in OnRead; see ReadSome
    ws_.async_accept(req, beast::bind_front_handler(&WsSessionImpl::OnAccept, this->shared_from_this()));
  }

  void GoAway() override {
    net::dispatch(ws_.get_executor(), [self = this->shared_from_this()] {
      self->closing_ = true;
      if (!self->writing_) self->DoClose();
    });
  }

 private:
  void OnAccept(beast::error_code ec) {
    if (ec) {
      spdlog::debug("conn={} upgrade failed: {}", id_, ec.message());
      return;
    }
    registered_ = true;
    state_.metrics.WebSocketOpened();
    state_.AddSession(id_, this->weak_from_this());
    spdlog::debug("conn={} websocket open, role={} token={}", id_, RoleName(role_), token_name_);
    if (state_.draining) {  // shutdown began while this one was upgrading
      closing_ = true;
      DoClose();
      return;
    }
    MaybeRead();
  }

  void MaybeRead() {
    if (reading_ || closing_ || closed_) return;
    if (inflight_ + queue_.size() >= state_.config.server.max_inflight_per_connection) return;
    if (held_bytes_ >= state_.config.server.max_connection_bytes) return;
    ReadSome();
  }

  // Reads a message piece by piece so the size limit is ours to enforce: when
  // Beast enforces read_message_max itself it fails the connection and, in
  // 1.74, tears it down while the peer is still sending, which resets the
  // connection and loses the 1009 close frame. Closing ourselves runs the
  // close handshake, which drains the rest of the message first.
  void ReadSome() {
    reading_ = true;
    ws_.async_read_some(buffer_, kReadChunk,
                        beast::bind_front_handler(&WsSessionImpl::OnRead, this->shared_from_this()));
  }

  void OnRead(beast::error_code ec, std::size_t) {
    reading_ = false;
    if (ec) {
      if (ec != websocket::error::closed && ec != net::error::operation_aborted &&
          ec != net::error::eof) {
        spdlog::debug("conn={} read: {}", id_, ec.message());
      }
      closed_ = true;
      return;
    }
    if (buffer_.size() > state_.config.server.max_frame_bytes) {
      state_.metrics.FrameTooBig();
      spdlog::info("conn={} closing with 1009: message over max_frame_bytes ({})", id_,
                   state_.config.server.max_frame_bytes);
      buffer_.consume(buffer_.size());
      close_code_ = websocket::close_code::too_big;
      closing_ = true;
      if (!writing_) DoClose();
      return;
    }
    if (!ws_.is_message_done()) return ReadSome();
    std::string text = beast::buffers_to_string(buffer_.data());
    buffer_.consume(buffer_.size());
    OnFrame(std::move(text), ws_.got_text());
    MaybeRead();
  }

  CallContext Context() {
    CallContext ctx;
    ctx.role = role_;
    ctx.token_name = token_name_;
    ctx.connection_id = id_;
    ctx.received = std::chrono::steady_clock::now();
    ctx.notify = [weak = this->weak_from_this()](const json& notification) {
      if (auto self = weak.lock()) {
        net::post(self->ws_.get_executor(), [self, text = Serialize(notification)]() mutable {
          self->Send(std::move(text));
        });
      }
    };
    return ctx;
  }

  void OnFrame(std::string text, bool is_text) {
    CallContext ctx = Context();
    if (!is_text) {
      state_.metrics.RecordRequest(Metrics::kUnknownSlot, Metrics::kInvalidRequest,
                                   std::chrono::nanoseconds(0));
      Send(Serialize(MakeError(json(), RpcError{kInvalidRequest,
                                                "Invalid request: binary frames are not supported",
                                                "", "send JSON-RPC as text frames"})));
      return;
    }
    const uint64_t bytes = text.size();
    const bool starting = !state_.serving.load(std::memory_order_acquire);
    if (state_.draining || starting || !state_.TryEnqueue(bytes)) {
      // Answered here, on the network thread: a scan for the ids, no parse.
      const bool draining = state_.draining;
      RpcError busy{kOverloaded,
                    draining   ? "Overloaded: the server is shutting down; retry on another instance"
                    : starting ? "Overloaded: the server is starting (opening its data dir); retry shortly"
                               : "Overloaded: too many requests queued; retry later",
                    "", draining ? "shutting down" : starting ? "starting" : "queue full"};
      if (auto out = state_.dispatcher.RejectFrame(text, busy, ctx)) Send(std::move(*out));
      return;
    }
    ++inflight_;
    held_bytes_ += bytes;
    state_.Post([self = this->shared_from_this(), text = std::move(text), ctx = std::move(ctx)](auto& release) {
      std::optional<std::string> out;
      // A frame that waited in the queue longer than max_queue_wait_ms is
      // answered -32003 unrun: under a flood the queue drains of stale work
      // and what is admitted is answered in bounded time.
      const auto waited = std::chrono::steady_clock::now() - ctx.received;
      const auto max_wait = std::chrono::milliseconds(self->state_.config.server.max_queue_wait_ms);
      if (max_wait.count() > 0 && waited > max_wait) {
        RpcError stale{kOverloaded,
                       "Overloaded: waited " +
                           std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(waited).count()) +
                           " ms in the queue, over server.max_queue_wait_ms; retry later",
                       "", "queue wait over max_queue_wait_ms"};
        out = self->state_.dispatcher.RejectFrame(text, stale, ctx);
      } else {
        out = self->state_.dispatcher.HandleFrame(text, ctx);
      }
      release();  // before the answer can reach the client
      net::post(self->ws_.get_executor(), [self, bytes = text.size(), out = std::move(out)]() mutable {
        --self->inflight_;
        self->held_bytes_ -= bytes;
        self->state_.ReleaseBytes(bytes);
        if (out) self->Send(std::move(*out));
        self->MaybeRead();
      });
    });
  }

  // Queues a frame to write; its bytes are held (for this connection and in
  // the server's total) until it is written.
  void Send(std::string text) {
    if (closed_ || close_sent_) return;
    held_bytes_ += text.size();
    queued_bytes_ += text.size();
    state_.HoldBytes(text.size());
    queue_.push_back(std::move(text));
    if (!writing_) DoWrite();
  }

  void PopWritten() {
    const uint64_t n = queue_.front().size();
    held_bytes_ -= n;
    queued_bytes_ -= n;
    state_.ReleaseBytes(n);
    queue_.pop_front();
  }

  void DoWrite() {
    writing_ = true;
    ws_.text(true);
    // A client that does not read: the write never completes. Closing the
    // socket ends it (OnWrite sees operation_aborted) and frees what is queued.
    write_timer_.expires_after(std::chrono::milliseconds(state_.config.server.write_timeout_ms));
    write_timer_.async_wait([self = this->shared_from_this(), gen = ++write_gen_](beast::error_code ec) {
      if (ec || gen != self->write_gen_ || !self->writing_) return;
      spdlog::info("conn={} closing: a response was not read within write_timeout_ms ({})", self->id_,
                   self->state_.config.server.write_timeout_ms);
      beast::error_code ignored;
      beast::get_lowest_layer(self->ws_).socket().close(ignored);
    });
    ws_.async_write(net::buffer(queue_.front()),
                    beast::bind_front_handler(&WsSessionImpl::OnWrite, this->shared_from_this()));
  }

  void OnWrite(beast::error_code ec, std::size_t) {
    writing_ = false;
    ++write_gen_;
    write_timer_.cancel();
    if (ec) {
      spdlog::debug("conn={} write: {}", id_, ec.message());
      closed_ = true;
      while (!queue_.empty()) PopWritten();
      return;
    }
    PopWritten();
    if (!queue_.empty()) {
      DoWrite();
    } else if (closing_) {
      DoClose();
    } else {
      MaybeRead();
    }
  }

  // REQUIRES: no write in flight (a close counts as a write).
  void DoClose() {
    if (closed_ || close_sent_) return;
    close_sent_ = true;
    ws_.async_close(close_code_,
                    [self = this->shared_from_this()](beast::error_code) { self->closed_ = true; });
  }

  websocket::stream<ConnStream> ws_;
  net::steady_timer write_timer_;
  uint64_t write_gen_ = 0;  // which write the timer is for
  beast::flat_buffer buffer_;
  std::deque<std::string> queue_;  // responses waiting to be written; front is in flight
  SharedState& state_;
  const Role role_;
  const std::string token_name_;
  const uint64_t id_;
  ConnectionCount count_;
  uint32_t inflight_ = 0;  // frames on the workers
  uint64_t held_bytes_ = 0;    // frames on the workers + responses queued (max_connection_bytes)
  uint64_t queued_bytes_ = 0;  // responses queued, held in the server's total too
  bool registered_ = false;
  bool reading_ = false;
  bool writing_ = false;
  bool closing_ = false;  // GoAway: close once the queue is written
  bool close_sent_ = false;
  bool closed_ = false;
  websocket::close_code close_code_ = websocket::close_code::going_away;
  static constexpr size_t kReadChunk = 64 * 1024;
};

}  // namespace

std::vector<std::string_view> OfferedSubprotocols(const http::request<http::string_body>& req) {
  std::vector<std::string_view> out;
  const auto [first, last] = req.equal_range(http::field::sec_websocket_protocol);
  for (auto field = first; field != last; ++field) {
    std::string_view list(field->value().data(), field->value().size());
    while (!list.empty()) {
      const size_t comma = list.find(',');
      std::string_view item = list.substr(0, comma);
      while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
      while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
      if (!item.empty()) out.push_back(item);
      if (comma == std::string_view::npos) break;
      list.remove_prefix(comma + 1);
    }
  }
  return out;
}

void StartWsSession(ConnStream stream, http::request<http::string_body> req, Identity who, SharedState& state,
                    ConnectionCount count) {
  std::make_shared<WsSessionImpl>(std::move(stream), std::move(who), state, std::move(count))->Run(std::move(req));
}

}  // namespace playbook::server
