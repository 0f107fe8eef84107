#pragma once

// The Stream* list rpcs (KEP-5825): the answer of a List* rpc sent as a stream of responses of
// bounded size, so a node with thousands of containers, images or stats never needs one gRPC
// message over the client's limit (4 MiB by default, 16 MiB in kubelet).

#include <grpcpp/grpcpp.h>

#include <cstddef>

#include "google/protobuf/repeated_ptr_field.h"

namespace kapal::cri {

// Serialized bytes of items in one streamed response, at most (one item larger than this goes
// alone).
inline constexpr size_t kStreamChunkBytes = 1 << 20;

// Moves ITEMS to WRITER (a grpc::ServerWriter<Response>, or anything with its Write) in
// responses of about CHUNK_BYTES each; FIELD(response) is the response's repeated field.
// Nothing is sent for no items. CANCELLED when the client went away.
template <typename Response, typename Writer, typename Item, typename Field>
grpc::Status SendInChunks(Writer* writer, google::protobuf::RepeatedPtrField<Item>& items,
                          Field field, size_t chunk_bytes = kStreamChunkBytes) {
  Response response;
  size_t bytes = 0;
  for (Item& item : items) {
    size_t size = item.ByteSizeLong();
    if (field(response)->size() > 0 && bytes + size > chunk_bytes) {
      if (!writer->Write(response)) return grpc::Status(grpc::StatusCode::CANCELLED, "client gone");
      response.Clear();
      bytes = 0;
    }
    *field(response)->Add() = std::move(item);
    bytes += size;
  }
  if (field(response)->size() > 0 && !writer->Write(response)) {
    return grpc::Status(grpc::StatusCode::CANCELLED, "client gone");
  }
  return grpc::Status::OK;
}

}  // namespace kapal::cri
