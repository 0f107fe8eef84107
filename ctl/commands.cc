#include "ctl/commands.h"

#include <grpcpp/grpcpp.h>

#include <iostream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace kapal::ctl {

namespace {

void DebugLog(const CriClient& client, absl::string_view what,
              const google::protobuf::Message& message) {
  if (client.Debug()) {
    std::cerr << "debug: " << what << " " << message.GetTypeName() << " "
              << MessageToJson(message).dump() << "\n";
  }
}

std::string DurationText(std::chrono::milliseconds timeout) {
  if (timeout.count() % 1000 == 0) return absl::StrCat(timeout.count() / 1000, "s");
  return absl::StrCat(timeout.count(), "ms");
}

}  // namespace

absl::StatusOr<std::unique_ptr<CriClient>> CriClient::Connect(const ClientConfig& config) {
  absl::StatusOr<std::string> runtime_target = EndpointToTarget(config.runtime_endpoint);
  if (!runtime_target.ok()) return runtime_target.status();
  absl::StatusOr<std::string> image_target = EndpointToTarget(
      config.image_endpoint.empty() ? config.runtime_endpoint : config.image_endpoint);
  if (!image_target.ok()) return image_target.status();

  std::unique_ptr<CriClient> client(new CriClient(config));
  auto deadline = std::chrono::system_clock::now() + config.timeout;
  auto connect = [&](const std::string& target) -> absl::StatusOr<std::shared_ptr<grpc::Channel>> {
    grpc::ChannelArguments arguments;
    arguments.SetMaxReceiveMessageSize(16 * 1024 * 1024);
    std::shared_ptr<grpc::Channel> channel =
        grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), arguments);
    if (!channel->WaitForConnected(deadline)) {
      return absl::UnavailableError(absl::StrCat("cannot connect to ", target, " within ",
                                                 DurationText(config.timeout),
                                                 ": is kapald running, and are you root?"));
    }
    return channel;
  };
  absl::StatusOr<std::shared_ptr<grpc::Channel>> runtime_channel = connect(*runtime_target);
  if (!runtime_channel.ok()) return runtime_channel.status();
  std::shared_ptr<grpc::Channel> image_channel = *runtime_channel;
  if (*image_target != *runtime_target) {
    absl::StatusOr<std::shared_ptr<grpc::Channel>> connected = connect(*image_target);
    if (!connected.ok()) return connected.status();
    image_channel = *connected;
  }
  client->runtime_ = runtime::v1::RuntimeService::NewStub(*runtime_channel);
  client->images_ = runtime::v1::ImageService::NewStub(image_channel);
  client->kapal_images_ = kapal::v1::Images::NewStub(image_channel);
  client->kapal_builds_ = kapal::v1::Builds::NewStub(image_channel);
  client->kapal_containers_ = kapal::v1::Containers::NewStub(*runtime_channel);
  return client;
}

std::unique_ptr<grpc::ClientContext> CriClient::NewContext() const {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + config_.timeout);
  return context;
}

std::unique_ptr<grpc::ClientContext> CriClient::LongContext() const {
  auto context = std::make_unique<grpc::ClientContext>();
  // Pulls of large images take minutes; an hour bounds a stuck one.
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::hours(1));
  return context;
}

absl::Status RpcError(absl::string_view rpc, const grpc::Status& status) {
  auto code = static_cast<absl::StatusCode>(status.error_code());
  return absl::Status(
      code, absl::StrCat(rpc, ": ", absl::StatusCodeToString(code), ": ", status.error_message()));
}

absl::Status RunVersion(CriClient& client, OutputFormat format, std::ostream& out) {
  runtime::v1::VersionRequest request;
  request.set_version("v1");
  runtime::v1::VersionResponse response;
  DebugLog(client, "request", request);
  grpc::Status status = client.Runtime().Version(client.NewContext().get(), request, &response);
  if (!status.ok()) return RpcError("Version", status);
  DebugLog(client, "response", response);
  if (format == OutputFormat::kTable) {
    out << "Version:  " << response.version() << "\n"
        << "RuntimeName:  " << response.runtime_name() << "\n"
        << "RuntimeVersion:  " << response.runtime_version() << "\n"
        << "RuntimeApiVersion:  " << response.runtime_api_version() << "\n";
  } else {
    PrintDocument(MessageToJson(response), format, out);
  }
  return absl::OkStatus();
}

absl::Status RunInfo(CriClient& client, OutputFormat format, std::ostream& out) {
  runtime::v1::StatusRequest request;
  request.set_verbose(true);
  runtime::v1::StatusResponse response;
  DebugLog(client, "request", request);
  grpc::Status status = client.Runtime().Status(client.NewContext().get(), request, &response);
  if (!status.ok()) return RpcError("Status", status);
  DebugLog(client, "response", response);

  nlohmann::json document;
  document["status"] = MessageToJson(response.status());
  nlohmann::json handlers = nlohmann::json::array();
  for (const auto& handler : response.runtime_handlers())
    handlers.push_back(MessageToJson(handler));
  document["runtimeHandlers"] = handlers;
  // As crictl does: each info value that is JSON is shown as structure, not as a string.
  std::map<std::string, std::string> sorted(response.info().begin(), response.info().end());
  for (const auto& [key, value] : sorted) {
    nlohmann::json parsed = nlohmann::json::parse(value, nullptr, false);
    document[key] = parsed.is_discarded() ? nlohmann::json(value) : parsed;
  }
  if (format != OutputFormat::kTable) {
    PrintDocument(document, format, out);
    return absl::OkStatus();
  }
  Table conditions({"CONDITION", "STATUS", "REASON", "MESSAGE"});
  for (const auto& condition : response.status().conditions()) {
    conditions.AddRow({condition.type(), condition.status() ? "true" : "false", condition.reason(),
                       condition.message()});
  }
  conditions.Print(out);
  out << "\n";
  const nlohmann::json& runtime =
      document.contains("runtime") ? document["runtime"] : nlohmann::json{};
  Table facts({"FACT", "VALUE"});
  auto fact = [&](const char* name, const nlohmann::json& value) {
    if (value.is_null()) return;
    facts.AddRow({name, value.is_string() ? value.get<std::string>() : value.dump()});
  };
  fact("runtime version", runtime.value("version", nlohmann::json()));
  fact("cgroup driver", runtime.value("cgroupDriver", nlohmann::json()));
  if (document.contains("host"))
    fact("cgroup layout", document["host"].value("cgroupLayout", nlohmann::json()));
  fact("pod CIDR", runtime.value("podCIDR", nlohmann::json()));
  fact("metrics", runtime.value("metricsAddress", nlohmann::json()));
  fact("database", runtime.value("database", nlohmann::json()));
  if (runtime.contains("unsyncedLayers")) {
    const nlohmann::json& unsynced = runtime["unsyncedLayers"];
    facts.AddRow({"layers not yet synced",
                  absl::StrCat(unsynced.value("thisBoot", 0), " waiting for the background sync, ",
                               unsynced.value("earlierBoot", 0),
                               " left by a machine crash that could not be unpacked again")});
  }
  std::string names;
  for (const auto& handler : response.runtime_handlers()) {
    if (!handler.name().empty()) absl::StrAppend(&names, names.empty() ? "" : ", ", handler.name());
  }
  facts.AddRow({"runtime handlers", names});
  facts.Print(out);
  return absl::OkStatus();
}

}  // namespace kapal::ctl
