// kapalctl: a crictl-compatible client for kapald. Global flags and /etc/crictl.yaml work as in
// crictl; the commands live in the kapal_ctl library.
#include <unistd.h>

#include <cstdlib>
#include <functional>
#include <iostream>

#include "CLI/CLI.hpp"
#include "ctl/client_config.h"
#include "ctl/commands.h"
#include "ctl/image_commands.h"
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

using kapal::ctl::CriClient;
using kapal::ctl::OutputFormat;

// What the chosen command will do once the client is connected.
struct Action {
  std::string output_format = "table";
  std::function<absl::Status(CriClient&, OutputFormat)> run;
};

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
  app.add_option("-t,--timeout", timeout_text,
                 "Timeout of connecting and of each call (2s, 500ms)");
  app.add_flag("-D,--debug", debug, "Print requests and responses to stderr");

  Action action;
  auto output_option = [&](CLI::App* command, const char* default_format, const char* help) {
    command->add_option("-o,--output", action.output_format, help);
    command->callback([&action, default_format, command] {
      if (command->get_option("--output")->count() == 0) action.output_format = default_format;
    });
  };

  CLI::App* version = app.add_subcommand("version", "Print the runtime's name and versions");
  output_option(version, "table", "table, json or yaml");
  CLI::App* info = app.add_subcommand("info", "Print runtime conditions and configuration");
  output_option(info, "json", "json, yaml or table");

  // Image commands, crictl's names and Docker-style ones under `image`.
  kapal::ctl::PullCommand pull;
  kapal::ctl::ImagesCommand images;
  std::vector<std::string> image_names;
  auto add_pull = [&](CLI::App* parent, const char* name) {
    CLI::App* command = parent->add_subcommand(name, "Pull an image, showing layer progress");
    command->add_option("image", pull.image, "Image reference (busybox, host:5000/a/b:tag)")
        ->required();
    command->add_option("--creds", pull.creds, "Registry credentials, USER[:PASSWORD]");
    command->add_option("--auth", pull.auth, "Registry credentials, base64 of USER:PASSWORD");
    command->callback([&] {
      action.run = [&](CriClient& client, OutputFormat) {
        pull.terminal = ::isatty(STDOUT_FILENO) != 0;
        return kapal::ctl::RunPull(client, pull, std::cout);
      };
    });
  };
  auto add_images = [&](CLI::App* parent, const char* name) {
    CLI::App* command = parent->add_subcommand(name, "List images");
    command->add_option("filter", images.filter, "Only this image (reference or id)");
    command->add_flag("-q,--quiet", images.quiet, "Only image ids");
    command->add_flag("--digests", images.digests, "Show digests");
    command->add_option("-o,--output", action.output_format, "table, json or yaml");
    command->callback([&] {
      action.run = [&](CriClient& client, OutputFormat format) {
        images.format = format;
        return kapal::ctl::RunImages(client, images, std::cout);
      };
    });
  };
  auto add_inspect = [&](CLI::App* parent, const char* name) {
    CLI::App* command = parent->add_subcommand(name, "Show an image's status and config");
    command->add_option("images", image_names, "Image references or ids")->required();
    command->add_option("-o,--output", action.output_format, "json or yaml");
    command->callback([&] {
      action.run = [&](CriClient& client, OutputFormat format) {
        return kapal::ctl::RunInspectImages(client, image_names, format, std::cout);
      };
    });
  };
  auto add_remove = [&](CLI::App* parent, const char* name) {
    CLI::App* command = parent->add_subcommand(name, "Remove images (a tag, when others remain)");
    command->add_option("images", image_names, "Image references or ids")->required();
    command->callback([&] {
      action.run = [&](CriClient& client, OutputFormat) {
        return kapal::ctl::RunRemoveImages(client, image_names, std::cout);
      };
    });
  };
  add_pull(&app, "pull");
  add_images(&app, "images");
  add_inspect(&app, "inspecti");
  add_remove(&app, "rmi");
  CLI::App* image = app.add_subcommand(
      "image", "Docker-style image commands: ls, pull, rm, inspect, import, export");
  image->require_subcommand(1);
  add_images(image, "ls");
  add_pull(image, "pull");
  add_remove(image, "rm");
  add_inspect(image, "inspect");
  std::string archive_file;
  std::string export_image;
  CLI::App* import_command = image->add_subcommand(
      "import", "Import an image archive (OCI image layout tar or docker save tar)");
  import_command->add_option("file", archive_file, "The archive")->required();
  import_command->callback([&] {
    action.run = [&](CriClient& client, OutputFormat) {
      return kapal::ctl::RunImportImage(client, archive_file, std::cout);
    };
  });
  CLI::App* export_command =
      image->add_subcommand("export", "Export an image as an OCI image layout tar");
  export_command->add_option("image", export_image, "Image reference or id")->required();
  export_command->add_option("file", archive_file, "Where to write it (- for stdout)")->required();
  export_command->callback([&] {
    action.run = [&](CriClient& client, OutputFormat) {
      return kapal::ctl::RunExportImage(client, export_image, archive_file,
                                        archive_file == "-" ? std::cerr : std::cout);
    };
  });
  CLI::App* fsinfo = app.add_subcommand("imagefsinfo", "Show the space images and containers use");
  output_option(fsinfo, "json", "json, yaml or table");

  CLI11_PARSE(app, argc, argv);

  if (version->parsed()) {
    action.run = [](CriClient& client, OutputFormat format) {
      return kapal::ctl::RunVersion(client, format, std::cout);
    };
  } else if (info->parsed()) {
    action.run = [](CriClient& client, OutputFormat format) {
      return kapal::ctl::RunInfo(client, format, std::cout);
    };
  } else if (fsinfo->parsed()) {
    action.run = [](CriClient& client, OutputFormat format) {
      return kapal::ctl::RunImageFsInfo(client, format, std::cout);
    };
  }
  if (!action.run) return Fail(absl::InvalidArgumentError("no command given"));

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

  absl::StatusOr<OutputFormat> format = kapal::ctl::ParseOutputFormat(action.output_format);
  if (!format.ok()) return Fail(format.status());
  absl::StatusOr<std::unique_ptr<CriClient>> client = CriClient::Connect(*config);
  if (!client.ok()) return Fail(client.status());
  absl::Status result = action.run(**client, *format);
  return result.ok() ? 0 : Fail(result);
}
