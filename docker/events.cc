// GET /events: the core's journal as `docker events` reads it: what is kept since --since, then
// each new event as it happens, until --until or the client leaves; filtered by type, event,
// container, image, label, volume and network.

#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "docker/api_impl.h"

namespace kapal::docker {

namespace {

constexpr auto kWaitSlice = std::chrono::milliseconds(500);

// Docker's --since/--until as the CLI sends them: Unix seconds, with an optional fraction.
int64_t TimeNanos(const std::string& text) {
  double seconds = 0;
  if (text.empty() || !absl::SimpleAtod(text, &seconds)) return 0;
  return static_cast<int64_t>(seconds * 1e9);
}

using Filters = std::map<std::string, std::vector<std::string>>;

Filters ParseFilters(const std::string& text) {
  Filters filters;
  nlohmann::json parsed = nlohmann::json::parse(text.empty() ? "{}" : text, nullptr, false);
  if (!parsed.is_object()) return filters;
  for (const auto& [key, values] : parsed.items()) {
    if (values.is_array()) {
      for (const nlohmann::json& value : values) {
        if (value.is_string()) filters[key].push_back(value.get<std::string>());
      }
    } else if (values.is_object()) {
      for (const auto& [value, on] : values.items()) {
        if (on.is_boolean() && on.get<bool>()) filters[key].push_back(value);
      }
    }
  }
  return filters;
}

std::string Attribute(const runtime::JournalEvent& event, const std::string& name) {
  auto found = event.attributes.find(name);
  return found == event.attributes.end() ? "" : found->second;
}

// Each filter key must match one of its values; different keys all must.
bool Matches(const Filters& filters, const runtime::JournalEvent& event) {
  for (const auto& [key, values] : filters) {
    bool any = false;
    for (const std::string& value : values) {
      if (key == "type") {
        any = event.type == value;
      } else if (key == "event") {
        any = event.action == value;
      } else if (key == "container") {
        any = event.type == "container" &&
              (absl::StartsWith(event.id, value) || Attribute(event, "name") == value);
      } else if (key == "image") {
        any = Attribute(event, "image") == value || Attribute(event, "name") == value ||
              FamiliarReference(Attribute(event, "name")) == value ||
              (event.type == "image" && absl::StartsWith(event.id, value));
      } else if (key == "label") {
        size_t equals = value.find('=');
        any = equals == std::string::npos
                  ? event.attributes.count(value) != 0
                  : Attribute(event, value.substr(0, equals)) == value.substr(equals + 1);
      } else if (key == "volume" || key == "network") {
        any = event.type == key && (event.id == value || Attribute(event, "name") == value);
      }
      if (any) break;
    }
    if (!any) return false;
  }
  return true;
}

nlohmann::json DockerEvent(const runtime::JournalEvent& event) {
  nlohmann::json attributes = nlohmann::json::object();
  for (const auto& [key, value] : event.attributes) attributes[key] = value;
  std::string id = event.id;
  if (event.type == "image" && (event.action == "pull" || event.action == "push")) {
    id = FamiliarReference(id);
  }
  if (attributes.contains("name") && event.type == "image") {
    attributes["name"] = FamiliarReference(attributes["name"].get<std::string>());
  }
  if (attributes.contains("image")) {
    attributes["image"] = FamiliarReference(attributes["image"].get<std::string>());
  }
  nlohmann::json out = {{"Type", event.type},
                        {"Action", event.action},
                        {"Actor", {{"ID", id}, {"Attributes", attributes}}},
                        {"scope", "local"},
                        {"time", event.time_nanos / 1000000000},
                        {"timeNano", event.time_nanos}};
  // The fields of the API before 1.22, which the CLI still prints from.
  if (event.type == "container" || event.type == "image") {
    out["status"] = event.action;
    out["id"] = id;
    if (event.type == "container") out["from"] = attributes.value("image", "");
  }
  return out;
}

}  // namespace

void Api::Impl::Events(const Request& request, Responder& responder) {
  int64_t since = TimeNanos(request.Query("since"));
  int64_t until = TimeNanos(request.Query("until"));
  Filters filters = ParseFilters(request.Query("filters"));
  runtime::Journal& journal = runtime.journal();
  // Pods are kapal's own; Docker's clients know containers, images, volumes and networks.
  auto wanted = [&](const runtime::JournalEvent& event) {
    return event.type != "pod" && Matches(filters, event);
  };
  if (!responder.StartStream(200, "application/json")) return;
  auto send = [&](const runtime::JournalEvent& event) {
    return responder.WriteChunk(DockerEvent(event).dump() + "\n");
  };
  uint64_t cursor = journal.LastSequence();
  if (since > 0) {
    for (const runtime::JournalEvent& event : journal.Recent()) {
      if (event.sequence > cursor) break;  // newer ones come from the wait below
      if (event.time_nanos < since || (until > 0 && event.time_nanos > until)) continue;
      if (wanted(event) && !send(event)) return;
    }
  }
  while (!responder.ClientGone() && !stopping) {
    if (until > 0 && runtime::NowNanos() > until) break;
    for (const runtime::JournalEvent& event : journal.After(cursor, kWaitSlice)) {
      cursor = event.sequence;
      if (until > 0 && event.time_nanos > until) break;
      if (wanted(event) && !send(event)) return;
    }
  }
  responder.EndStream();
}

}  // namespace kapal::docker
