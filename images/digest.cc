#include "images/digest.h"

#include <openssl/evp.h>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace kapal::images {

namespace {

bool IsLowerHex(absl::string_view text) {
  for (char c : text) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return !text.empty();
}

// OCI: algorithm-component (separator algorithm-component)*, components [a-z0-9]+,
// separators [+._-].
bool IsAlgorithm(absl::string_view text) {
  if (text.empty()) return false;
  bool after_separator = true;
  for (char c : text) {
    bool component = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    bool separator = c == '+' || c == '.' || c == '_' || c == '-';
    if (component) {
      after_separator = false;
    } else if (separator && !after_separator) {
      after_separator = true;
    } else {
      return false;
    }
  }
  return !after_separator;
}

const EVP_MD* Md(absl::string_view algorithm) {
  if (algorithm == "sha256") return EVP_sha256();
  if (algorithm == "sha512") return EVP_sha512();
  return nullptr;
}

}  // namespace

absl::StatusOr<Digest> Digest::Parse(absl::string_view text) {
  size_t colon = text.find(':');
  if (colon == absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("digest \"", text, "\" has no algorithm (expected sha256:<64 hex digits>)"));
  }
  absl::string_view algorithm = text.substr(0, colon);
  absl::string_view hex = text.substr(colon + 1);
  if (!IsAlgorithm(algorithm)) {
    return absl::InvalidArgumentError(absl::StrCat("digest \"", text, "\": bad algorithm"));
  }
  size_t want = algorithm == "sha256" ? 64 : algorithm == "sha512" ? 128 : 0;
  if (!IsLowerHex(hex) || (want != 0 && hex.size() != want) || (want == 0 && hex.size() < 32)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "digest \"", text, "\": the hex part must be ",
        want != 0 ? absl::StrCat(want, " lowercase hex digits") : "lowercase hex digits"));
  }
  return Digest(std::string(algorithm), std::string(hex));
}

Digest Digest::Sha256Of(absl::string_view data) {
  Hasher hasher = *Hasher::ForAlgorithm("sha256");
  hasher.Update(data.data(), data.size());
  return hasher.Finish();
}

struct Hasher::State {
  EVP_MD_CTX* context = nullptr;
  ~State() { EVP_MD_CTX_free(context); }
};

Hasher::Hasher(std::string algorithm, std::unique_ptr<State> state)
    : algorithm_(std::move(algorithm)), state_(std::move(state)) {}
Hasher::Hasher(Hasher&&) noexcept = default;
Hasher& Hasher::operator=(Hasher&&) noexcept = default;
Hasher::~Hasher() = default;

absl::StatusOr<Hasher> Hasher::ForAlgorithm(absl::string_view algorithm) {
  const EVP_MD* md = Md(algorithm);
  if (md == nullptr) {
    return absl::UnimplementedError(
        absl::StrCat("digest algorithm \"", algorithm, "\" is not supported (sha256, sha512 are)"));
  }
  auto state = std::make_unique<State>();
  state->context = EVP_MD_CTX_new();
  if (state->context == nullptr || EVP_DigestInit_ex(state->context, md, nullptr) != 1) {
    return absl::InternalError("OpenSSL: cannot start a digest");
  }
  return Hasher(std::string(algorithm), std::move(state));
}

void Hasher::Update(const void* data, size_t size) {
  EVP_DigestUpdate(state_->context, data, size);
}

Digest Hasher::Finish() {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(state_->context, out, &length);
  std::string hex =
      absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(out), length));
  return Digest(algorithm_, hex);
}

}  // namespace kapal::images
