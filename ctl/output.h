#pragma once

#include <google/protobuf/message.h>

#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace kapal::ctl {

enum class OutputFormat { kTable, kJson, kYaml };

absl::StatusOr<OutputFormat> ParseOutputFormat(absl::string_view name);

// A CRI message as crictl prints it: lowerCamelCase names, zero values included.
nlohmann::json MessageToJson(const google::protobuf::Message& message);

// Block-style YAML of a JSON document; strings that YAML would read back as something else
// (numbers, booleans, null, empty) are quoted.
std::string JsonToYaml(const nlohmann::json& json);

// Writes JSON (indented) or YAML of DOCUMENT to OUT.
void PrintDocument(const nlohmann::json& document, OutputFormat format, std::ostream& out);

// An id as tables show it: the first 13 hex digits ("sha256:" dropped), like crictl.
std::string ShortId(const std::string& id);

// Left-aligned columns separated by at least three spaces, like crictl's tables.
class Table {
 public:
  explicit Table(std::vector<std::string> header) : rows_{std::move(header)} {}
  void AddRow(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  void Print(std::ostream& out) const;

 private:
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace kapal::ctl
