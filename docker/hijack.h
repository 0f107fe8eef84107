#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "streaming/transport.h"

namespace kapal::docker {

// A hijacked Docker connection as the streaming sessions' transport, so attach and exec run
// the same session code as CRI's: the client's bytes are stdin (its half-close ends stdin),
// output goes back raw (a terminal) or in Docker's multiplexed frames (8-byte header: stream,
// three zeros, length big-endian). Docker has no error or resize channel: the exit code is
// asked for by inspect, sizes come by their own requests.
class HijackedTransport : public streaming::CommandTransport {
 public:
  HijackedTransport(int fd, bool multiplexed, bool send_stdout, bool send_stderr)
      : fd_(fd), multiplexed_(multiplexed), send_stdout_(send_stdout), send_stderr_(send_stderr) {}

  // -1 once the client has closed its side: nothing more to read (poll skips it).
  int fd() const override { return input_open_ ? fd_ : -1; }
  absl::Status Read(std::vector<streaming::ChannelEvent>& events) override;
  bool Send(streaming::Channel channel, absl::string_view data) override;
  bool End(streaming::Channel) override { return true; }
  bool StatusOnErrorChannel() const override { return false; }

 private:
  int fd_;
  bool multiplexed_;
  bool send_stdout_;
  bool send_stderr_;
  bool input_open_ = true;
};

// Docker's frame of DATA on stream 1 (stdout) or 2 (stderr).
std::string MultiplexedFrame(bool is_stderr, absl::string_view data);

}  // namespace kapal::docker
