#include "ctl/output.h"

#include <google/protobuf/util/json_util.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace kapal::ctl {

absl::StatusOr<OutputFormat> ParseOutputFormat(absl::string_view name) {
  if (name == "table") return OutputFormat::kTable;
  if (name == "json") return OutputFormat::kJson;
  if (name == "yaml") return OutputFormat::kYaml;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown output format \"", name, "\" (expected table, json or yaml)"));
}

nlohmann::json MessageToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  std::string text;
  // Printing a valid message cannot fail; an empty object stands in if it ever does.
  if (!google::protobuf::util::MessageToJsonString(message, &text, options).ok()) return {};
  return nlohmann::json::parse(text, nullptr, false);
}

namespace {

bool NeedsQuotes(const std::string& value) {
  if (value.empty()) return true;
  std::string lower = absl::AsciiStrToLower(value);
  static const char* const kSpecial[] = {"true", "false", "yes", "no", "on",
                                         "off",  "null",  "~",   "y",  "n"};
  for (const char* special : kSpecial) {
    if (lower == special) return true;
  }
  double number = 0;
  return absl::SimpleAtod(value, &number);
}

void Emit(YAML::Emitter& out, const nlohmann::json& json) {
  switch (json.type()) {
    case nlohmann::json::value_t::object:
      if (json.empty()) {
        out << YAML::Flow << YAML::BeginMap << YAML::EndMap;
        return;
      }
      out << YAML::BeginMap;
      for (const auto& [key, value] : json.items()) {
        out << YAML::Key << key << YAML::Value;
        Emit(out, value);
      }
      out << YAML::EndMap;
      return;
    case nlohmann::json::value_t::array:
      if (json.empty()) {
        out << YAML::Flow << YAML::BeginSeq << YAML::EndSeq;
        return;
      }
      out << YAML::BeginSeq;
      for (const auto& value : json) Emit(out, value);
      out << YAML::EndSeq;
      return;
    case nlohmann::json::value_t::string: {
      const std::string& value = json.get_ref<const std::string&>();
      if (NeedsQuotes(value)) out << YAML::DoubleQuoted;
      out << value;
      return;
    }
    case nlohmann::json::value_t::boolean:
      out << json.get<bool>();
      return;
    case nlohmann::json::value_t::null:
      out << YAML::Null;
      return;
    default:
      out << json.dump();
      return;
  }
}

}  // namespace

std::string JsonToYaml(const nlohmann::json& json) {
  YAML::Emitter out;
  out.SetIndent(2);
  Emit(out, json);
  return std::string(out.c_str()) + "\n";
}

void PrintDocument(const nlohmann::json& document, OutputFormat format, std::ostream& out) {
  if (format == OutputFormat::kYaml) {
    out << JsonToYaml(document);
  } else {
    out << document.dump(2) << "\n";
  }
}

void Table::Print(std::ostream& out) const {
  std::vector<size_t> widths;
  for (const auto& row : rows_) {
    widths.resize(std::max(widths.size(), row.size()));
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  for (const auto& row : rows_) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line.append(widths[i] - row[i].size() + 3, ' ');
    }
    // Empty trailing cells leave padding behind; a line never ends in spaces.
    line.erase(line.find_last_not_of(' ') + 1);
    out << line << "\n";
  }
}

std::string ShortId(const std::string& id) {
  std::string hex = id.substr(id.find(':') + 1);
  return hex.substr(0, 13);
}

}  // namespace kapal::ctl
