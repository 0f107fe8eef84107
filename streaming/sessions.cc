#include "streaming/sessions.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"
#include "shim/exit_file.h"
#include "streaming/http.h"

namespace kapal::streaming {

namespace {

// Input is read from the client while less than this waits for the process.
constexpr size_t kInputBacklog = 256 * 1024;
// Output an ended process left in its pipes is sent for at most this long.
constexpr auto kDrainTime = std::chrono::seconds(2);

// Terminal sizes arrive as JSON objects ({"Width":80,"Height":24}), one per line.
class ResizeReader {
 public:
  explicit ResizeReader(ResizeFunction apply) : apply_(std::move(apply)) {}
  void Take(const std::string& data) {
    buffer_ += data;
    size_t newline;
    while ((newline = buffer_.find('\n')) != std::string::npos) {
      nlohmann::json size = nlohmann::json::parse(buffer_.substr(0, newline), nullptr, false);
      buffer_.erase(0, newline + 1);
      if (!size.is_object()) continue;
      int width = size.value("Width", 0), height = size.value("Height", 0);
      if (width > 0 && height > 0 && width <= 65535 && height <= 65535) {
        apply_(static_cast<uint16_t>(width), static_cast<uint16_t>(height));
      }
    }
    if (buffer_.size() > 4096) buffer_.clear();
  }

 private:
  ResizeFunction apply_;
  std::string buffer_;
};

}  // namespace

void FinishCommand(CommandTransport& transport, const absl::Status& status, int exit_code,
                   const std::vector<std::string>& cmd) {
  transport.End(Channel::kStdout);
  transport.End(Channel::kStderr);
  std::string message;
  if (transport.StatusOnErrorChannel()) {
    nlohmann::json report = {{"metadata", nlohmann::json::object()}};
    if (status.ok() && exit_code == 0) {
      report["status"] = "Success";
    } else if (status.ok()) {
      report["status"] = "Failure";
      report["message"] =
          absl::StrCat("command terminated with non-zero exit code: error executing command [",
                       absl::StrJoin(cmd, " "), "], exit code ", exit_code);
      report["reason"] = "NonZeroExitCode";
      report["details"] = {
          {"causes", nlohmann::json::array(
                         {{{"reason", "ExitCode"}, {"message", std::to_string(exit_code)}}})}};
    } else {
      report["status"] = "Failure";
      report["message"] = std::string(status.message());
      report["reason"] = "InternalError";
      report["code"] = 500;
    }
    message = report.dump();
  } else if (!status.ok()) {
    message = std::string(status.message());
  } else if (exit_code != 0) {
    message = absl::StrCat("command terminated with non-zero exit code: exit code ", exit_code);
  }
  if (!message.empty()) transport.Send(Channel::kError, message);
  transport.End(Channel::kError);
}

void RunExecSession(CommandTransport& transport, runtime::ExecProcess& process,
                    const std::vector<std::string>& cmd) {
  ResizeReader resizes(
      [&](uint16_t columns, uint16_t rows) { (void)process.Resize(columns, rows); });
  int output = process.output(), errors = process.errors();
  // A terminal is both input and output: its output side is the one read here.
  std::string pending_input;
  bool input_ended = false;
  bool ended = false;
  std::chrono::steady_clock::time_point drain_deadline;
  std::vector<ChannelEvent> events;
  std::string data;
  for (;;) {
    if (input_ended && pending_input.empty()) process.CloseInput();
    if (ended &&
        ((output < 0 && errors < 0) || std::chrono::steady_clock::now() > drain_deadline)) {
      break;
    }
    std::vector<pollfd> fds;
    if (pending_input.size() < kInputBacklog) fds.push_back({transport.fd(), POLLIN, 0});
    if (output >= 0) fds.push_back({output, POLLIN, 0});
    if (errors >= 0) fds.push_back({errors, POLLIN, 0});
    if (!pending_input.empty() && process.input() >= 0) {
      fds.push_back({process.input(), POLLOUT, 0});
    }
    if (!ended) fds.push_back({process.ended(), POLLIN, 0});
    if (::poll(fds.data(), fds.size(), ended ? 100 : -1) < 0 && errno != EINTR) break;
    for (const pollfd& polled : fds) {
      if (polled.revents == 0) continue;
      if (polled.fd == transport.fd()) {
        events.clear();
        if (!transport.Read(events).ok()) {
          process.Kill();  // the client went away: nothing it started stays behind
          return;
        }
        for (ChannelEvent& event : events) {
          if (event.channel == Channel::kStdin) {
            if (process.input() >= 0) pending_input += event.data;
            if (event.end) input_ended = true;
          } else if (event.channel == Channel::kResize) {
            resizes.Take(event.data);
          }
        }
      } else if (polled.fd == output || polled.fd == errors) {
        bool is_output = polled.fd == output;
        if (ReadAvailable(polled.fd, data)) {
          if (!data.empty() &&
              !transport.Send(is_output ? Channel::kStdout : Channel::kStderr, data)) {
            process.Kill();
            return;
          }
        } else {
          (is_output ? output : errors) = -1;
        }
      } else if (polled.fd == process.input()) {
        ssize_t n = ::write(process.input(), pending_input.data(), pending_input.size());
        if (n > 0) {
          pending_input.erase(0, static_cast<size_t>(n));
        } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
          pending_input.clear();  // the process closed its stdin
        }
      } else if (polled.fd == process.ended()) {
        ended = true;
        drain_deadline = std::chrono::steady_clock::now() + kDrainTime;
      }
    }
  }
  absl::StatusOr<int> code = process.ExitCode();
  FinishCommand(transport, code.status(), code.ok() ? *code : -1, cmd);
}

void RunAttachSession(CommandTransport& transport, runtime::AttachedContainer& attached,
                      const ResizeFunction& resize) {
  ResizeReader resizes(resize);
  int shim = attached.socket.Get();
  std::string frames;
  std::vector<ChannelEvent> events;
  char buffer[32 * 1024];
  for (;;) {
    pollfd fds[2] = {{transport.fd(), POLLIN, 0}, {shim, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0 && errno != EINTR) return;
    if (fds[0].revents != 0) {
      events.clear();
      if (!transport.Read(events).ok()) return;  // detached; the container goes on
      for (ChannelEvent& event : events) {
        if (event.channel == Channel::kStdin) {
          // The shim takes input without blocking (and queues it), so a plain send is enough.
          if (!event.data.empty() && attached.stdin) {
            (void)::send(shim, event.data.data(), event.data.size(), MSG_NOSIGNAL);
          }
          if (event.end) ::shutdown(shim, SHUT_WR);
        } else if (event.channel == Channel::kResize) {
          resizes.Take(event.data);
        }
      }
    }
    if (fds[1].revents != 0) {
      ssize_t n = ::read(shim, buffer, sizeof buffer);
      if (n <= 0) break;  // the container ended
      frames.append(buffer, static_cast<size_t>(n));
      while (frames.size() >= shim::kAttachFrameHeader) {
        size_t length = 0;
        for (int i = 1; i <= 4; ++i) length = (length << 8) | static_cast<uint8_t>(frames[i]);
        if (frames.size() < shim::kAttachFrameHeader + length) break;
        Channel channel = frames[0] == static_cast<char>(shim::kAttachStderr) ? Channel::kStderr
                                                                              : Channel::kStdout;
        if (!transport.Send(channel,
                            absl::string_view(frames).substr(shim::kAttachFrameHeader, length))) {
          return;
        }
        frames.erase(0, shim::kAttachFrameHeader + length);
      }
    }
  }
  FinishCommand(transport, absl::OkStatus(), 0, {});
}

}  // namespace kapal::streaming
