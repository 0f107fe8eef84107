#include "builder/dockerfile.h"

#include <cctype>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "nlohmann/json.hpp"

namespace kapal::builder {

namespace {

const std::set<std::string>& Keywords() {
  static const std::set<std::string> kKeywords = {
      "ADD",    "ARG",   "CMD",         "COPY",  "ENTRYPOINT", "ENV",
      "EXPOSE", "FROM",  "HEALTHCHECK", "LABEL", "MAINTAINER", "ONBUILD",
      "RUN",    "SHELL", "STOPSIGNAL",  "USER",  "VOLUME",     "WORKDIR"};
  return kKeywords;
}

// Instructions whose arguments may be a JSON array (the exec form).
bool TakesJson(const std::string& keyword) {
  return keyword == "RUN" || keyword == "CMD" || keyword == "ENTRYPOINT" || keyword == "SHELL" ||
         keyword == "COPY" || keyword == "ADD" || keyword == "VOLUME";
}

// Instructions whose leading --name=value words are flags.
bool TakesFlags(const std::string& keyword) {
  return keyword == "FROM" || keyword == "COPY" || keyword == "ADD" || keyword == "RUN" ||
         keyword == "HEALTHCHECK";
}

absl::Status LineError(int line, absl::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat("Dockerfile line ", line, ": ", message));
}

std::optional<std::vector<std::string>> JsonStrings(absl::string_view text) {
  if (!absl::StartsWith(text, "[")) return std::nullopt;
  nlohmann::json parsed = nlohmann::json::parse(text, nullptr, false);
  if (!parsed.is_array()) return std::nullopt;
  std::vector<std::string> out;
  for (const nlohmann::json& item : parsed) {
    if (!item.is_string()) return std::nullopt;
    out.push_back(item.get<std::string>());
  }
  return out;
}

bool IsNameStart(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool IsNameChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// The word processor: one pass over the text, producing words (or one word when not
// splitting).
class WordProcessor {
 public:
  WordProcessor(absl::string_view text, const Lookup& lookup, char escape, bool split)
      : text_(text), lookup_(lookup), escape_(escape), split_(split) {}

  absl::StatusOr<std::vector<std::string>> Run() {
    while (pos_ < text_.size()) {
      char c = text_[pos_];
      if (split_ && std::isspace(static_cast<unsigned char>(c))) {
        EndWord();
        ++pos_;
      } else if (c == '\'') {
        if (absl::Status s = SingleQuoted(); !s.ok()) return s;
      } else if (c == '"') {
        if (absl::Status s = DoubleQuoted(); !s.ok()) return s;
      } else if (c == escape_) {
        ++pos_;
        if (pos_ < text_.size()) {
          Append(text_[pos_++]);
        } else {
          Append(escape_);
        }
      } else if (c == '$') {
        absl::StatusOr<std::string> value = Variable();
        if (!value.ok()) return value.status();
        // An unquoted expansion splits into words, as in a shell.
        if (split_) {
          bool first = true;
          for (absl::string_view piece : absl::StrSplit(*value, absl::ByAnyChar(" \t\n"))) {
            if (!first) EndWord();
            first = false;
            Append(piece);
          }
        } else {
          Append(*value);
        }
      } else {
        Append(c);
        ++pos_;
      }
    }
    EndWord();
    if (!split_) words_ = {current_};
    return words_;
  }

 private:
  void Append(char c) {
    current_ += c;
    started_ = true;
  }
  void Append(absl::string_view s) {
    current_.append(s.data(), s.size());
    started_ = started_ || !s.empty();
  }
  void EndWord() {
    if (!split_) return;
    if (started_) words_.push_back(current_);
    current_.clear();
    started_ = false;
  }
  absl::Status SingleQuoted() {
    ++pos_;
    started_ = true;
    size_t end = text_.find('\'', pos_);
    if (end == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("unexpected end of text: missing ' in: ", text_));
    }
    Append(text_.substr(pos_, end - pos_));
    pos_ = end + 1;
    return absl::OkStatus();
  }

  absl::Status DoubleQuoted() {
    ++pos_;
    started_ = true;
    while (pos_ < text_.size()) {
      char c = text_[pos_];
      if (c == '"') {
        ++pos_;
        return absl::OkStatus();
      }
      if (c == escape_ && pos_ + 1 < text_.size()) {
        char next = text_[pos_ + 1];
        if (next == '"' || next == '$' || next == escape_) {
          Append(next);
          pos_ += 2;
          continue;
        }
      }
      if (c == '$') {
        absl::StatusOr<std::string> value = Variable();
        if (!value.ok()) return value.status();
        Append(*value);
        continue;
      }
      Append(c);
      ++pos_;
    }
    return absl::InvalidArgumentError(
        absl::StrCat("unexpected end of text: missing \" in: ", text_));
  }

  // At a '$': the variable's value (or "$" itself when no name follows).
  absl::StatusOr<std::string> Variable() {
    ++pos_;
    if (pos_ >= text_.size()) return std::string("$");
    if (text_[pos_] == '{') {
      ++pos_;
      size_t start = pos_;
      while (pos_ < text_.size() && IsNameChar(text_[pos_])) ++pos_;
      std::string name(text_.substr(start, pos_ - start));
      if (name.empty() || pos_ >= text_.size()) {
        return absl::InvalidArgumentError(absl::StrCat("bad substitution in: ", text_));
      }
      if (text_[pos_] == '}') {
        ++pos_;
        return lookup_(name).value_or("");
      }
      std::string op;
      if (text_[pos_] == ':' && pos_ + 1 < text_.size()) {
        op = std::string(text_.substr(pos_, 2));
        pos_ += 2;
      } else {
        op = std::string(1, text_[pos_]);
        ++pos_;
      }
      if (op != ":-" && op != ":+" && op != "-" && op != "+") {
        return absl::InvalidArgumentError(
            absl::StrCat("unsupported modifier (", op, ") in substitution: ", text_));
      }
      // The word up to the matching brace, itself expanded.
      int depth = 1;
      size_t word_start = pos_;
      while (pos_ < text_.size() && depth > 0) {
        if (text_[pos_] == '{') ++depth;
        if (text_[pos_] == '}') --depth;
        if (depth > 0) ++pos_;
      }
      if (depth != 0) return absl::InvalidArgumentError(absl::StrCat("missing '}' in: ", text_));
      absl::string_view word = text_.substr(word_start, pos_ - word_start);
      ++pos_;
      std::optional<std::string> value = lookup_(name);
      bool set = value.has_value() && (op[0] != ':' || !value->empty());
      bool use_word = (op.back() == '-') ? !set : set;
      if (!use_word) return op.back() == '-' ? *value : std::string();
      absl::StatusOr<std::vector<std::string>> expanded =
          WordProcessor(word, lookup_, escape_, /*split=*/false).Run();
      if (!expanded.ok()) return expanded.status();
      return expanded->front();
    }
    if (!IsNameStart(text_[pos_])) return std::string("$");
    size_t start = pos_;
    while (pos_ < text_.size() && IsNameChar(text_[pos_])) ++pos_;
    return lookup_(std::string(text_.substr(start, pos_ - start))).value_or("");
  }

  absl::string_view text_;
  const Lookup& lookup_;
  char escape_;
  bool split_;
  size_t pos_ = 0;
  std::string current_;
  bool started_ = false;
  std::vector<std::string> words_;
};

// The logical lines of a Dockerfile: continuations joined, comments and blank lines dropped.
struct LogicalLine {
  int line;
  std::string text;
};

std::vector<LogicalLine> LogicalLines(const std::vector<std::string>& lines, size_t first,
                                      char escape) {
  std::vector<LogicalLine> out;
  std::optional<LogicalLine> pending;
  for (size_t i = first; i < lines.size(); ++i) {
    absl::string_view line = absl::StripAsciiWhitespace(lines[i]);
    if (absl::StartsWith(line, "#")) continue;  // comments, also inside a continuation
    if (line.empty()) {
      if (pending.has_value() && i + 1 == lines.size()) {
        out.push_back(*pending);
        pending.reset();
      }
      continue;
    }
    bool continues = line.back() == escape;
    if (continues) line.remove_suffix(1);
    absl::string_view kept = absl::StripTrailingAsciiWhitespace(lines[i]);
    if (continues) kept.remove_suffix(1);
    kept = absl::StripLeadingAsciiWhitespace(kept);
    if (!pending.has_value()) {
      pending = LogicalLine{static_cast<int>(i) + 1, std::string(kept)};
    } else {
      pending->text += std::string(kept);
    }
    if (!continues) {
      out.push_back(*pending);
      pending.reset();
    }
  }
  if (pending.has_value()) out.push_back(*pending);
  return out;
}

absl::StatusOr<Instruction> ParseInstruction(const LogicalLine& logical) {
  Instruction instruction;
  instruction.line = logical.line;
  absl::string_view text = logical.text;
  size_t space = text.find_first_of(" \t");
  instruction.keyword = absl::AsciiStrToUpper(text.substr(0, space));
  if (Keywords().count(instruction.keyword) == 0) {
    return LineError(logical.line, absl::StrCat("unknown instruction: ", text.substr(0, space)));
  }
  absl::string_view rest =
      space == absl::string_view::npos ? "" : absl::StripAsciiWhitespace(text.substr(space));
  if (TakesFlags(instruction.keyword)) {
    while (absl::StartsWith(rest, "--")) {
      size_t end = rest.find_first_of(" \t");
      absl::string_view flag = rest.substr(2, end == absl::string_view::npos ? end : end - 2);
      std::pair<std::string, std::string> kv = absl::StrSplit(flag, absl::MaxSplits('=', 1));
      if (kv.first.empty()) return LineError(logical.line, "a flag without a name");
      instruction.flags.push_back(kv);
      rest = end == absl::string_view::npos ? "" : absl::StripAsciiWhitespace(rest.substr(end));
    }
  }
  instruction.rest = std::string(rest);
  if (TakesJson(instruction.keyword)) instruction.json = JsonStrings(rest);
  return instruction;
}

}  // namespace

std::string Instruction::Text() const {
  std::string out = keyword;
  for (const auto& [name, value] : flags) absl::StrAppend(&out, " --", name, "=", value);
  if (!rest.empty()) absl::StrAppend(&out, " ", rest);
  return out;
}

std::optional<std::string> Instruction::Flag(const std::string& name) const {
  for (const auto& [flag, value] : flags) {
    if (flag == name) return value;
  }
  return std::nullopt;
}

int Dockerfile::Steps() const {
  int steps = static_cast<int>(global_args.size());
  for (const Stage& stage : stages) steps += 1 + static_cast<int>(stage.instructions.size());
  return steps;
}

absl::StatusOr<Dockerfile> ParseDockerfile(absl::string_view text) {
  Dockerfile dockerfile;
  std::vector<std::string> lines = absl::StrSplit(text, '\n');
  for (std::string& line : lines) {
    if (absl::EndsWith(line, "\r")) line.pop_back();
  }
  // Parser directives: "# name=value" lines at the very top.
  size_t first = 0;
  for (; first < lines.size(); ++first) {
    absl::string_view line = absl::StripAsciiWhitespace(lines[first]);
    if (!absl::ConsumePrefix(&line, "#")) break;
    std::pair<std::string, std::string> kv = absl::StrSplit(line, absl::MaxSplits('=', 1));
    std::string name = absl::AsciiStrToLower(absl::StripAsciiWhitespace(kv.first));
    std::string value(absl::StripAsciiWhitespace(kv.second));
    if (name == "escape") {
      if (value != "\\" && value != "`") {
        return LineError(static_cast<int>(first) + 1,
                         absl::StrCat("invalid escape token '", value, "': use \\ or `"));
      }
      dockerfile.escape = value[0];
    } else if (name != "syntax" || line.find('=') == absl::string_view::npos) {
      break;  // an ordinary comment ends the directives
    }
  }
  for (const LogicalLine& logical : LogicalLines(lines, first, dockerfile.escape)) {
    absl::StatusOr<Instruction> instruction = ParseInstruction(logical);
    if (!instruction.ok()) return instruction.status();
    if (instruction->keyword == "FROM") {
      Stage stage;
      stage.from = *instruction;
      std::vector<std::string> words = absl::StrSplit(instruction->rest, ' ', absl::SkipEmpty());
      if (words.size() == 3 && absl::AsciiStrToLower(words[1]) == "as") {
        stage.name = absl::AsciiStrToLower(words[2]);
      } else if (words.size() != 1) {
        return LineError(logical.line, "FROM takes an image and optionally AS NAME");
      }
      stage.base = words[0];
      dockerfile.stages.push_back(std::move(stage));
      continue;
    }
    if (dockerfile.stages.empty()) {
      if (instruction->keyword == "ARG") {
        dockerfile.global_args.push_back(std::move(*instruction));
        continue;
      }
      return LineError(logical.line,
                       absl::StrCat(instruction->keyword,
                                    " before the first FROM: a Dockerfile starts with FROM "
                                    "(only ARG may come before it)"));
    }
    dockerfile.stages.back().instructions.push_back(std::move(*instruction));
  }
  if (dockerfile.stages.empty()) {
    return absl::InvalidArgumentError("the Dockerfile has no FROM instruction");
  }
  return dockerfile;
}

absl::StatusOr<Instruction> ParseInstructionLine(absl::string_view text, char) {
  return ParseInstruction(LogicalLine{1, std::string(absl::StripAsciiWhitespace(text))});
}

absl::StatusOr<std::string> ExpandWord(absl::string_view word, const Lookup& lookup, char escape) {
  absl::StatusOr<std::vector<std::string>> words =
      WordProcessor(word, lookup, escape, /*split=*/false).Run();
  if (!words.ok()) return words.status();
  return words->front();
}

absl::StatusOr<std::vector<std::string>> ExpandWords(absl::string_view text, const Lookup& lookup,
                                                     char escape) {
  return WordProcessor(text, lookup, escape, /*split=*/true).Run();
}

std::vector<std::string> SplitRawWords(absl::string_view text, char escape) {
  std::vector<std::string> words;
  std::string current;
  bool started = false;
  char quote = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (quote == 0 && std::isspace(static_cast<unsigned char>(c))) {
      if (started) words.push_back(current);
      current.clear();
      started = false;
      continue;
    }
    started = true;
    current += c;
    if (c == escape && quote != '\'' && i + 1 < text.size()) {
      current += text[++i];
    } else if (quote == 0 && (c == '\'' || c == '"')) {
      quote = c;
    } else if (c == quote) {
      quote = 0;
    }
  }
  if (started) words.push_back(current);
  return words;
}

absl::StatusOr<std::vector<Assignment>> ParseAssignments(const Instruction& instruction,
                                                         const Lookup& lookup, char escape) {
  std::vector<Assignment> out;
  std::vector<std::string> words = SplitRawWords(instruction.rest, escape);
  if (words.empty()) {
    return LineError(instruction.line, absl::StrCat(instruction.keyword, " needs arguments"));
  }
  bool pairs = words.front().find('=') != std::string::npos || instruction.keyword == "ARG";
  if (!pairs) {
    // The old form: NAME VALUE, the value being the rest of the line.
    if (words.size() < 2) {
      return LineError(instruction.line, absl::StrCat(instruction.keyword, " ", words.front(),
                                                      " needs a value (NAME=VALUE or NAME VALUE)"));
    }
    absl::string_view rest = absl::StripAsciiWhitespace(
        absl::string_view(instruction.rest).substr(words.front().size()));
    absl::StatusOr<std::string> value = ExpandWord(rest, lookup, escape);
    if (!value.ok()) return LineError(instruction.line, value.status().message());
    out.push_back({words.front(), *value, true});
    return out;
  }
  for (const std::string& word : words) {
    size_t equals = word.find('=');
    if (equals == std::string::npos) {
      if (instruction.keyword == "ARG") {
        absl::StatusOr<std::string> name = ExpandWord(word, lookup, escape);
        if (!name.ok()) return LineError(instruction.line, name.status().message());
        out.push_back({*name, "", false});
        continue;
      }
      return LineError(instruction.line, absl::StrCat("can't find = in \"", word,
                                                      "\": must be of the form NAME=VALUE"));
    }
    absl::StatusOr<std::string> name = ExpandWord(word.substr(0, equals), lookup, escape);
    absl::StatusOr<std::string> value = ExpandWord(word.substr(equals + 1), lookup, escape);
    if (!name.ok()) return LineError(instruction.line, name.status().message());
    if (!value.ok()) return LineError(instruction.line, value.status().message());
    if (name->empty()) {
      return LineError(instruction.line,
                       absl::StrCat(instruction.keyword, " names can not be blank"));
    }
    out.push_back({*name, *value, true});
  }
  return out;
}

}  // namespace kapal::builder
