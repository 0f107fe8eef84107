// kapalctl: a crictl-compatible client for kapald. Global flags and /etc/crictl.yaml work as in
// crictl; the commands live in the kapal_ctl library.
#include <cstdlib>
#include <iostream>

#include "CLI/CLI.hpp"
#include "ctl/client_config.h"
#include "ctl/commands.h"
#include "ctl/output.h"

namespace {

const char* Env(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? value : nullptr;
}

int Fail(const absl::Status& status) {
  std::cerr << "kapalctl: " << status.message() << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kapalctl: talk to kapald, the Kubernetes container runtime (crictl-compatible)"};
  app.require_subcommand(1);
  std::string config_path = kapal::ctl::kDefaultCrictlConfig;
  std::string runtime_endpoint, image_endpoint, timeout_text;
  bool debug = false;
  CLI::Option* config_option =
      app.add_option("-c,--config", config_path, "Client configuration file (crictl.yaml)");
  app.add_option("-r,--runtime-endpoint", runtime_endpoint,
                 "Runtime endpoint (default unix:///run/kapal/kapal.sock)");
  app.add_option("-i,--image-endpoint", image_endpoint,
                 "Image endpoint (default: the runtime endpoint)");
  app.add_option("-t,--timeout", timeout_text, "Timeout of connecting and of each call (2s, 500ms)");
  app.add_flag("-D,--debug", debug, "Print requests and responses to stderr");

  std::string output = "table";
  CLI::App* version = app.add_subcommand("version", "Print the runtime's name and versions");
  version->add_option("-o,--output", output, "table, json or yaml");
  std::string info_output = "json";
  CLI::App* info = app.add_subcommand("info", "Print runtime conditions and configuration");
  info->add_option("-o,--output", info_output, "json, yaml or table");
  CLI11_PARSE(app, argc, argv);

  // Precedence as in crictl: flag, then environment, then crictl.yaml, then the default.
  if (const char* env = Env("CRI_CONFIG_FILE"); env != nullptr && config_option->count() == 0) {
    config_path = env;
  }
  absl::StatusOr<kapal::ctl::ClientConfig> config = kapal::ctl::LoadCrictlConfig(
      config_path, config_option->count() > 0 || Env("CRI_CONFIG_FILE") != nullptr);
  if (!config.ok()) return Fail(config.status());
  if (const char* env = Env("CONTAINER_RUNTIME_ENDPOINT")) config->runtime_endpoint = env;
  if (const char* env = Env("IMAGE_SERVICE_ENDPOINT")) config->image_endpoint = env;
  if (!runtime_endpoint.empty()) config->runtime_endpoint = runtime_endpoint;
  if (!image_endpoint.empty()) config->image_endpoint = image_endpoint;
  if (!timeout_text.empty()) {
    absl::StatusOr<std::chrono::milliseconds> timeout = kapal::ctl::ParseTimeout(timeout_text);
    if (!timeout.ok()) return Fail(timeout.status());
    // crictl: zero or less means the default.
    if (timeout->count() > 0) config->timeout = *timeout;
  }
  config->debug = config->debug || debug;

  std::string format_name = info->parsed() ? info_output : output;
  absl::StatusOr<kapal::ctl::OutputFormat> format = kapal::ctl::ParseOutputFormat(format_name);
  if (!format.ok()) return Fail(format.status());

  absl::StatusOr<std::unique_ptr<kapal::ctl::CriClient>> client =
      kapal::ctl::CriClient::Connect(*config);
  if (!client.ok()) return Fail(client.status());

  absl::Status result;
  if (version->parsed()) {
    result = kapal::ctl::RunVersion(**client, *format, std::cout);
  } else if (info->parsed()) {
    result = kapal::ctl::RunInfo(**client, *format, std::cout);
  }
  return result.ok() ? 0 : Fail(result);
}
