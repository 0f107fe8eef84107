#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace kapal::images {

// A content digest, "ALGORITHM:HEX", as OCI defines it. Only sha256 and sha512 can be verified;
// other well-formed algorithms parse but are refused where content must be checked.
class Digest {
 public:
  static absl::StatusOr<Digest> Parse(absl::string_view text);
  static Digest Sha256Of(absl::string_view data);

  const std::string& Algorithm() const { return algorithm_; }
  const std::string& Hex() const { return hex_; }
  std::string String() const { return algorithm_ + ":" + hex_; }
  // The first 12 hex digits, as docker and crictl show image ids.
  std::string Short() const { return hex_.substr(0, 12); }

  bool operator==(const Digest&) const = default;
  bool operator<(const Digest& other) const { return String() < other.String(); }

 private:
  friend class Hasher;
  Digest(std::string algorithm, std::string hex)
      : algorithm_(std::move(algorithm)), hex_(std::move(hex)) {}
  std::string algorithm_;
  std::string hex_;
};

// Hashes a stream of bytes for one digest algorithm (OpenSSL EVP, which uses SHA-NI where the
// CPU has it).
class Hasher {
 public:
  static absl::StatusOr<Hasher> ForAlgorithm(absl::string_view algorithm);
  Hasher(Hasher&&) noexcept;
  Hasher& operator=(Hasher&&) noexcept;
  ~Hasher();

  void Update(const void* data, size_t size);
  // The digest of everything passed to Update; the hasher cannot be used after.
  Digest Finish();

 private:
  struct State;
  Hasher(std::string algorithm, std::unique_ptr<State> state);
  std::string algorithm_;
  std::unique_ptr<State> state_;
};

}  // namespace kapal::images
