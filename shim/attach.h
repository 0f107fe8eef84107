#pragma once

#include <poll.h>

#include <cstddef>
#include <string>
#include <vector>

// The attach sessions of one container, inside kapal-shim: every client gets the container's
// output (framed as shim/exit_file.h says) and may feed its stdin. Nothing here blocks: a client
// that does not read is dropped once it is kAttachBacklog behind, input waits while the
// container does not read its stdin.
namespace kapal::shim {

class AttachHub {
 public:
  // LISTENER is the bound attach socket; CONTAINER_STDIN the write end of the container's stdin
  // (or its terminal), -1 when it has none. Both become the hub's to close.
  AttachHub(int listener, int container_stdin, bool stdin_once, bool terminal);
  AttachHub(const AttachHub&) = delete;
  AttachHub& operator=(const AttachHub&) = delete;
  ~AttachHub();

  // Adds what the hub waits for to FDS.
  void AddPollFds(std::vector<pollfd>& fds) const;
  // Handles what poll reported for one of the hub's descriptors; false when FD is not the hub's.
  bool Handle(const pollfd& polled);
  // Sends container output to every client.
  void Broadcast(unsigned char stream, const char* data, size_t size);
  // The container has ended: sends what is queued (a second at most each) and closes clients.
  void CloseAll();

 private:
  struct Client {
    int fd = -1;
    std::string pending;  // frames not yet sent
    bool input_open = true;
  };
  void Accept();
  void ReadInput(Client& client);
  void Flush(Client& client);
  void EndInput(Client& client);
  void CloseStdin();

  int listener_ = -1;
  int container_stdin_ = -1;
  bool stdin_once_ = false;
  bool terminal_ = false;
  std::string stdin_pending_;  // client input the container has not taken yet
  std::vector<Client> clients_;
};

}  // namespace kapal::shim
