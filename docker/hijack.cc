#include "docker/hijack.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstdint>

#include "streaming/http.h"

namespace kapal::docker {

std::string MultiplexedFrame(bool is_stderr, absl::string_view data) {
  std::string frame(8, '\0');
  frame[0] = is_stderr ? 2 : 1;
  uint32_t size = static_cast<uint32_t>(data.size());
  for (int i = 0; i < 4; ++i) frame[4 + i] = static_cast<char>((size >> (24 - 8 * i)) & 0xff);
  frame.append(data.data(), data.size());
  return frame;
}

absl::Status HijackedTransport::Read(std::vector<streaming::ChannelEvent>& events) {
  char buffer[32 * 1024];
  ssize_t n = ::recv(fd_, buffer, sizeof buffer, MSG_DONTWAIT);
  if (n > 0) {
    events.push_back({streaming::Channel::kStdin, std::string(buffer, static_cast<size_t>(n))});
    return absl::OkStatus();
  }
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return absl::OkStatus();
  if (n == 0) {
    // The CLI closes its writing side when its stdin ends; it still reads the output.
    input_open_ = false;
    events.push_back({streaming::Channel::kStdin, "", /*end=*/true});
    return absl::OkStatus();
  }
  return absl::UnavailableError("the client went away");
}

bool HijackedTransport::Send(streaming::Channel channel, absl::string_view data) {
  bool is_stderr = channel == streaming::Channel::kStderr;
  if (channel != streaming::Channel::kStdout && !is_stderr) return true;
  if ((is_stderr && !send_stderr_) || (!is_stderr && !send_stdout_)) return true;
  if (!multiplexed_) return streaming::WriteAll(fd_, data);
  return streaming::WriteAll(fd_, MultiplexedFrame(is_stderr, data));
}

}  // namespace kapal::docker
