#include <openssl/sha.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "base/unique_fd.h"
#include "gtest/gtest.h"
#include "streaming/http.h"
#include "streaming/spdy.h"
#include "streaming/tls.h"
#include "streaming/websocket.h"

namespace kapal::streaming {
namespace {

std::string Sha256Hex(const std::string& data) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), sizeof digest));
}

struct SocketPair {
  base::UniqueFd ours, theirs;
};
SocketPair MakeSocketPair() {
  int fds[2];
  EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  return {base::UniqueFd(fds[0]), base::UniqueFd(fds[1])};
}

std::string ReadSome(int fd) {
  char buffer[65536];
  ssize_t n = ::read(fd, buffer, sizeof buffer);
  return n > 0 ? std::string(buffer, static_cast<size_t>(n)) : "";
}

TEST(SpdyTest, HeaderDictionaryIsTheSpecsBytes) {
  // The SPDY/3 dictionary as spdystream (crictl, kubelet) uses it: 1423 bytes with this digest.
  EXPECT_EQ(SpdyHeaderDictionary().size(), 1423u);
  EXPECT_EQ(Sha256Hex(SpdyHeaderDictionary()),
            "51d27341373f923f3cd88e1eb7162aeaa3723d7585ff2399201dc06498407f02");
}

TEST(SpdyTest, SynStreamHeadersAndDataArriveAcrossSplitReads) {
  SocketPair sockets = MakeSocketPair();
  SpdyConnection client(sockets.theirs.Get());
  SpdyConnection server(sockets.ours.Get());
  // Two statements: the second block depends on the compression context the first left.
  std::string frames = client.EncodeSynStream(1, {{"streamtype", "stdout"}, {"port", "80"}});
  frames += client.EncodeSynStream(3, {{"streamtype", "error"}, {"requestid", "0"}});
  std::vector<SpdyEvent> events;
  // One byte at a time: frames are parsed only when whole.
  for (char c : frames) {
    absl::Status consumed = server.Consume(std::string(1, c), events);
    ASSERT_TRUE(consumed.ok()) << consumed.ToString();
  }
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].kind, SpdyEvent::Kind::kStreamOpened);
  EXPECT_EQ(events[0].stream, 1u);
  EXPECT_EQ(events[0].headers["streamtype"], "stdout");
  EXPECT_EQ(events[0].headers["port"], "80");
  // The second block uses the compression context the first one left.
  EXPECT_EQ(events[1].stream, 3u);
  EXPECT_EQ(events[1].headers["streamtype"], "error");
}

TEST(SpdyTest, DataFramesCarryFinAndLargePayloadsAreSplit) {
  SocketPair sockets = MakeSocketPair();
  SpdyConnection server(sockets.ours.Get());
  SpdyConnection reader(sockets.theirs.Get());
  std::string big(100 * 1024, 'x');
  std::thread writer([&] { ASSERT_TRUE(server.SendData(5, big, /*fin=*/true)); });
  std::vector<SpdyEvent> events;
  std::string received;
  bool fin = false;
  while (!fin) {
    ASSERT_TRUE(reader.ReadEvents(events).ok());
    for (SpdyEvent& event : events) {
      EXPECT_EQ(event.stream, 5u);
      received += event.data;
      fin = fin || event.fin;
    }
    events.clear();
  }
  writer.join();
  EXPECT_EQ(received, big);
}

TEST(SpdyTest, PingIsAnsweredAndOtherVersionsRefused) {
  SocketPair sockets = MakeSocketPair();
  SpdyConnection server(sockets.ours.Get());
  // PING, version 3, type 6, length 4, id 7.
  std::string ping = {'\x80', '\x03', '\x00', '\x06', '\x00', '\x00',
                      '\x00', '\x04', '\x00', '\x00', '\x00', '\x07'};
  std::vector<SpdyEvent> events;
  ASSERT_TRUE(server.Consume(ping, events).ok());
  EXPECT_TRUE(events.empty());
  EXPECT_EQ(ReadSome(sockets.theirs.Get()), ping);
  std::string version2 = ping;
  version2[1] = '\x02';
  EXPECT_FALSE(server.Consume(version2, events).ok());
}

TEST(WebSocketTest, AcceptKeyIsRfc6455s) {
  EXPECT_EQ(WebSocketAccept("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(WebSocketTest, MaskedFragmentedClientMessagesAreJoined) {
  SocketPair sockets = MakeSocketPair();
  WebSocketConnection server(sockets.ours.Get());
  std::string first = WebSocketConnection::EncodeClientFrame(WebSocketOpcode::kBinary, "hel");
  first[0] = static_cast<char>(first[0] & 0x7f);  // not FIN: a fragment
  std::string second = WebSocketConnection::EncodeClientFrame(WebSocketOpcode::kBinary, "lo");
  second[0] = static_cast<char>(0x80);  // FIN, continuation
  std::string big(70000, 'y');          // a 64-bit length
  std::string third = WebSocketConnection::EncodeClientFrame(WebSocketOpcode::kText, big);
  std::vector<WebSocketMessage> messages;
  ASSERT_TRUE(server.Consume(first + second + third, messages).ok());
  ASSERT_EQ(messages.size(), 2u);
  EXPECT_EQ(messages[0].opcode, WebSocketOpcode::kBinary);
  EXPECT_EQ(messages[0].payload, "hello");
  EXPECT_EQ(messages[1].payload, big);
}

TEST(WebSocketTest, UnmaskedClientFramesAreRefusedAndPingsAnswered) {
  SocketPair sockets = MakeSocketPair();
  WebSocketConnection server(sockets.ours.Get());
  std::vector<WebSocketMessage> messages;
  ASSERT_TRUE(
      server.Consume(WebSocketConnection::EncodeClientFrame(WebSocketOpcode::kPing, "p"), messages)
          .ok());
  std::string pong = ReadSome(sockets.theirs.Get());
  std::vector<WebSocketMessage> answers;
  ASSERT_TRUE(WebSocketConnection::DecodeServerFrames(pong, answers).ok());
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0].opcode, WebSocketOpcode::kPong);
  EXPECT_EQ(answers[0].payload, "p");
  EXPECT_FALSE(
      server.Consume(WebSocketConnection::EncodeServerFrame(WebSocketOpcode::kText, "x"), messages)
          .ok());
}

TEST(HttpTest, RequestHeadHeadersAndQuery) {
  SocketPair sockets = MakeSocketPair();
  std::string head =
      "POST /exec/abc?port=80&port=443&command=a%20b HTTP/1.1\r\n"
      "Upgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n"
      "X-Stream-Protocol-Version: v3.channel.k8s.io, channel.k8s.io\r\n\r\nEARLY";
  ASSERT_EQ(::write(sockets.theirs.Get(), head.data(), head.size()),
            static_cast<ssize_t>(head.size()));
  std::string early;
  absl::StatusOr<HttpRequest> request =
      ReadRequest(sockets.ours.Get(), std::chrono::seconds(5), early);
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->method, "POST");
  EXPECT_EQ(request->path, "/exec/abc");
  EXPECT_EQ(request->Header("upgrade"), "SPDY/3.1");
  EXPECT_EQ(request->HeaderList("x-stream-protocol-version"),
            (std::vector<std::string>{"v4.channel.k8s.io", "v3.channel.k8s.io", "channel.k8s.io"}));
  EXPECT_EQ(request->QueryValues("port"), (std::vector<std::string>{"80", "443"}));
  EXPECT_EQ(request->QueryValues("command"), (std::vector<std::string>{"a b"}));
  EXPECT_EQ(early, "EARLY");
}

TEST(HttpTest, NotHttpAndSilentClientsAreRefused) {
  SocketPair sockets = MakeSocketPair();
  std::string junk = "HELLO\r\n\r\n";
  ASSERT_EQ(::write(sockets.theirs.Get(), junk.data(), junk.size()),
            static_cast<ssize_t>(junk.size()));
  std::string early;
  EXPECT_EQ(ReadRequest(sockets.ours.Get(), std::chrono::seconds(5), early).status().code(),
            absl::StatusCode::kInvalidArgument);
  SocketPair silent = MakeSocketPair();
  EXPECT_EQ(ReadRequest(silent.ours.Get(), std::chrono::milliseconds(100), early).status().code(),
            absl::StatusCode::kDeadlineExceeded);
}

}  // namespace
}  // namespace kapal::streaming

namespace kapal::streaming {
namespace {

TEST(TlsTest, PumpsCarryBytesBothWaysAndEndWithTheConnection) {
  SocketPair sockets = MakeSocketPair();
  absl::StatusOr<std::unique_ptr<TlsContext>> server_context =
      TlsContext::ForServer("", "", "127.0.0.1");
  ASSERT_TRUE(server_context.ok()) << server_context.status();
  absl::StatusOr<std::unique_ptr<TlsContext>> client_context = TlsContext::ForInsecureClient();
  ASSERT_TRUE(client_context.ok());
  absl::StatusOr<std::unique_ptr<TlsPump>> server(absl::UnknownError("not started"));
  std::thread handshake(
      [&] { server = TlsPump::Start(**server_context, sockets.ours.Get(), true); });
  absl::StatusOr<std::unique_ptr<TlsPump>> client =
      TlsPump::Start(**client_context, sockets.theirs.Get(), false);
  handshake.join();
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_TRUE(client.ok()) << client.status();
  for (int round = 0; round < 3; ++round) {
    std::string request = "GET /exec/token HTTP/1.1\r\n\r\n" + std::to_string(round);
    ASSERT_TRUE(WriteAll((*client)->Plain(), request));
    std::string got;
    while (got.size() < request.size()) got += ReadSome((*server)->Plain());
    EXPECT_EQ(got, request);
    ASSERT_TRUE(WriteAll((*server)->Plain(), "answer"));
    std::string answer;
    while (answer.size() < 6) answer += ReadSome((*client)->Plain());
    EXPECT_EQ(answer, "answer");
  }
  // The server's session ends: the client reads end of file.
  (*server)->ClosePlain();
  EXPECT_EQ(ReadSome((*client)->Plain()), "");
}

}  // namespace
}  // namespace kapal::streaming
