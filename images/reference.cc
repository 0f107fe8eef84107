#include "images/reference.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace kapal::images {

namespace {

absl::Status Invalid(absl::string_view text, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("image reference \"", text, "\": ", why));
}

bool IsAlnumLower(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// A path component: [a-z0-9]+ ((\.|_|__|-+) [a-z0-9]+)*
bool IsPathComponent(absl::string_view part) {
  if (part.empty() || !IsAlnumLower(part.front()) || !IsAlnumLower(part.back())) return false;
  for (size_t i = 0; i < part.size();) {
    if (IsAlnumLower(part[i])) {
      ++i;
      continue;
    }
    size_t start = i;
    while (i < part.size() && !IsAlnumLower(part[i])) ++i;
    absl::string_view separator = part.substr(start, i - start);
    bool dashes = separator.find_first_not_of('-') == absl::string_view::npos;
    if (!(separator == "." || separator == "_" || separator == "__" || dashes)) return false;
  }
  return true;
}

// A tag: [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
bool IsTag(absl::string_view tag) {
  if (tag.empty() || tag.size() > 128) return false;
  auto word = [](char c) { return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_'; };
  if (!word(tag.front())) return false;
  for (char c : tag) {
    if (!word(c) && c != '.' && c != '-') return false;
  }
  return true;
}

// A registry host: DNS labels or an IPv4 address or [IPv6], with an optional :port.
bool IsDomain(absl::string_view domain) {
  absl::string_view host = domain;
  if (absl::StartsWith(host, "[")) {
    size_t close = host.find(']');
    if (close == absl::string_view::npos) return false;
    for (char c : host.substr(1, close - 1)) {
      if (!absl::ascii_isxdigit(static_cast<unsigned char>(c)) && c != ':') return false;
    }
    host = host.substr(close + 1);
    if (host.empty()) return true;
    if (host.front() != ':') return false;
    host.remove_prefix(1);
    return !host.empty() && host.find_first_not_of("0123456789") == absl::string_view::npos;
  }
  size_t colon = host.rfind(':');
  if (colon != absl::string_view::npos) {
    absl::string_view port = host.substr(colon + 1);
    if (port.empty() || port.find_first_not_of("0123456789") != absl::string_view::npos)
      return false;
    host = host.substr(0, colon);
  }
  if (host.empty()) return false;
  for (absl::string_view label : absl::StrSplit(host, '.')) {
    if (label.empty() || label.front() == '-' || label.back() == '-') return false;
    for (char c : label) {
      if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-') return false;
    }
  }
  return true;
}

}  // namespace

std::string Reference::String() const {
  std::string out = Name();
  if (!tag.empty()) absl::StrAppend(&out, ":", tag);
  if (digest) absl::StrAppend(&out, "@", digest->String());
  return out;
}

std::string Reference::Canonical() const {
  if (digest) return absl::StrCat(Name(), "@", digest->String());
  return absl::StrCat(Name(), ":", tag);
}

absl::StatusOr<Reference> ParseReference(absl::string_view text) {
  if (text.empty()) return Invalid(text, "empty");
  if (text.size() > 4096) return Invalid(text.substr(0, 64), "longer than 4096 characters");
  Reference ref;
  absl::string_view rest = text;

  size_t at = rest.find('@');
  if (at != absl::string_view::npos) {
    absl::StatusOr<Digest> digest = Digest::Parse(rest.substr(at + 1));
    if (!digest.ok()) return Invalid(text, digest.status().message());
    ref.digest = *digest;
    rest = rest.substr(0, at);
  }
  // The tag follows the last ':' after the last '/' (a ':' before a '/' is a registry port).
  size_t slash = rest.rfind('/');
  size_t colon = rest.rfind(':');
  if (colon != absl::string_view::npos && (slash == absl::string_view::npos || colon > slash)) {
    absl::string_view tag = rest.substr(colon + 1);
    if (!IsTag(tag)) {
      return Invalid(text, absl::StrCat("invalid tag \"", tag,
                                        "\" (letters, digits, '_', '.', '-'; at most 128)"));
    }
    ref.tag = std::string(tag);
    rest = rest.substr(0, colon);
  }
  if (rest.empty()) return Invalid(text, "no repository name");

  // The first component is a registry when it looks like a host: it has a '.' or ':', is
  // localhost, or has upper-case letters (which a repository path may not have).
  absl::string_view remote = rest;
  size_t first_slash = rest.find('/');
  if (first_slash != absl::string_view::npos) {
    absl::string_view first = rest.substr(0, first_slash);
    bool is_domain = absl::StrContains(first, ".") || absl::StrContains(first, ":") ||
                     first == "localhost" || absl::AsciiStrToLower(first) != first;
    if (is_domain) {
      if (!IsDomain(first)) return Invalid(text, absl::StrCat("invalid registry \"", first, "\""));
      ref.domain = std::string(first);
      remote = rest.substr(first_slash + 1);
    }
  }
  if (ref.domain.empty() || ref.domain == "index.docker.io") ref.domain = kDockerHub;
  if (remote.empty()) return Invalid(text, "no repository name");
  if (absl::AsciiStrToLower(remote) != remote) {
    return Invalid(text, "repository name must be lowercase");
  }
  for (absl::string_view component : absl::StrSplit(remote, '/')) {
    if (!IsPathComponent(component)) {
      return Invalid(text, absl::StrCat("invalid repository path component \"", component,
                                        "\" (lowercase letters and digits, separated by '.', "
                                        "'_', '__' or '-')"));
    }
  }
  ref.path = std::string(remote);
  if (ref.domain == kDockerHub && !absl::StrContains(ref.path, "/")) {
    ref.path = absl::StrCat("library/", ref.path);
  }
  if (ref.Name().size() > 255) return Invalid(text, "repository name longer than 255 characters");
  // A bare 64-hex name is an image id, not a repository (Docker refuses it for the same reason).
  if (ref.domain == kDockerHub && ref.path.size() == 64 + 8 && ref.tag.empty() && !ref.digest &&
      Digest::Parse(absl::StrCat("sha256:", ref.path.substr(8))).ok() &&
      !absl::StrContains(text, "/")) {
    return Invalid(text, "a 64-digit hex string is an image id, not a repository name");
  }
  if (ref.tag.empty() && !ref.digest) ref.tag = "latest";
  return ref;
}

}  // namespace kapal::images
