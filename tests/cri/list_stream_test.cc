#include "cri/list_stream.h"

#include <string>
#include <vector>

#include "api/cri_messages.h"
#include "gtest/gtest.h"

namespace kapal::cri {
namespace {

// Stands in for grpc::ServerWriter: keeps what is written; a client gone after LIMIT writes.
struct RecordingWriter {
  std::vector<runtime::v1::StreamContainersResponse> sent;
  size_t limit = 1000;
  bool Write(const runtime::v1::StreamContainersResponse& response) {
    if (sent.size() >= limit) return false;
    sent.push_back(response);
    return true;
  }
};

google::protobuf::RepeatedPtrField<runtime::v1::Container> Containers(int count) {
  google::protobuf::RepeatedPtrField<runtime::v1::Container> items;
  for (int i = 0; i < count; ++i) {
    runtime::v1::Container* container = items.Add();
    container->set_id(std::string(64, static_cast<char>('a' + i % 26)));
    (*container->mutable_labels())["index"] = std::to_string(i);
  }
  return items;
}

auto ContainersOf = [](runtime::v1::StreamContainersResponse& response) {
  return response.mutable_containers();
};

TEST(ListStreamTest, EveryItemOnceInOrderInBoundedChunks) {
  auto items = Containers(100);
  size_t item_bytes = items[0].ByteSizeLong();
  RecordingWriter writer;
  ASSERT_TRUE((SendInChunks<runtime::v1::StreamContainersResponse>(&writer, items, ContainersOf,
                                                                   item_bytes * 30))
                  .ok());
  ASSERT_EQ(writer.sent.size(), 4u);  // 30 + 30 + 30 + 10
  int next = 0;
  for (const auto& response : writer.sent) {
    EXPECT_LE(response.containers_size(), 30);
    for (const auto& container : response.containers()) {
      EXPECT_EQ(container.labels().at("index"), std::to_string(next++));
    }
  }
  EXPECT_EQ(next, 100);
}

TEST(ListStreamTest, NothingForNoItemsAndCancelledWhenTheClientGoes) {
  auto none = Containers(0);
  RecordingWriter writer;
  EXPECT_TRUE(
      (SendInChunks<runtime::v1::StreamContainersResponse>(&writer, none, ContainersOf)).ok());
  EXPECT_TRUE(writer.sent.empty());
  auto items = Containers(10);
  RecordingWriter gone;
  gone.limit = 1;
  grpc::Status status = SendInChunks<runtime::v1::StreamContainersResponse>(
      &gone, items, ContainersOf, items[0].ByteSizeLong());
  EXPECT_EQ(status.error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_EQ(gone.sent.size(), 1u);
}

}  // namespace
}  // namespace kapal::cri
