// kapald: the CRI v1 server. Wires config, logger and the daemon together; the work is in the
// daemon, runtime and cri libraries.
#include <malloc.h>
#include <signal.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "CLI/CLI.hpp"
#include "base/build_info.h"
#include "base/child_process.h"
#include "base/logger.h"
#include "daemon/config.h"
#include "daemon/daemon.h"

int main(int argc, char** argv) {
  // Nothing kapald was given beyond stdin, stdout and stderr goes on to runc, CNI plugins or the
  // shims (which outlive kapald): containerd's children get only what it passes on purpose too.
  kapal::base::MarkInheritedDescriptorsCloseOnExec();
  // glibc gives each busy thread its own malloc arena (up to 8 per core); kapald's threads
  // (gRPC, streaming, pulls) left a few MiB in them for no measurable speed: with two arenas
  // the daemon holds 28-29 MiB with 50 pods instead of 31. MALLOC_ARENA_MAX, when set, decides.
  if (std::getenv("MALLOC_ARENA_MAX") == nullptr) mallopt(M_ARENA_MAX, 2);
  // Block the shutdown signals before any thread starts, so every thread inherits the mask and
  // they reach only the sigwait below: no handler, no global flag.
  sigset_t shutdown_signals;
  sigemptyset(&shutdown_signals);
  sigaddset(&shutdown_signals, SIGTERM);
  sigaddset(&shutdown_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &shutdown_signals, nullptr);
  // A client that hangs up mid-write must not kill the daemon.
  signal(SIGPIPE, SIG_IGN);
  // Files the daemon creates are its own unless it opens them up on purpose (the socket).
  umask(0077);

  CLI::App app{"kapald: a container runtime for Kubernetes nodes (CRI v1)"};
  std::string config_path = kapal::daemon::kDefaultConfigPath;
  std::string log_level;
  bool print_default_config = false;
  bool show_version = false;
  CLI::Option* config_option =
      app.add_option("-c,--config", config_path, "Configuration file (TOML)");
  app.add_option("--log-level", log_level, "debug, info, warn or error (overrides log_level)");
  app.add_flag("--print-default-config", print_default_config,
               "Print the default configuration file, with every key documented, and exit");
  app.add_flag("-v,--version", show_version, "Print the version and exit");
  CLI11_PARSE(app, argc, argv);

  if (show_version) {
    std::cout << "kapald " << kapal::base::kVersion << " (" << kapal::base::kGitCommit << ")\n";
    return 0;
  }
  if (print_default_config) {
    std::cout << kapal::daemon::RenderConfig(kapal::daemon::Config{});
    return 0;
  }

  kapal::base::Logger logger;
  absl::StatusOr<kapal::daemon::Config> config =
      kapal::daemon::LoadConfig(config_path, /*must_exist=*/config_option->count() > 0);
  if (!config.ok()) {
    logger.Error(config.status().message());
    return 2;
  }
  if (!log_level.empty()) config->log_level = log_level;
  absl::StatusOr<kapal::base::LogLevel> level = kapal::base::ParseLogLevel(config->log_level);
  if (!level.ok()) {
    logger.Error("--log-level: ", level.status().message());
    return 2;
  }
  logger.SetLevel(*level);

  absl::StatusOr<std::unique_ptr<kapal::daemon::Daemon>> daemon =
      kapal::daemon::Daemon::Start(*config, logger);
  if (!daemon.ok()) {
    logger.Error("cannot start: ", daemon.status().message());
    return 1;
  }

  int signal_number = 0;
  sigwait(&shutdown_signals, &signal_number);
  logger.Info("received ", signal_number == SIGTERM ? "SIGTERM" : "SIGINT",
              ", shutting down: calls in flight get up to 30s to finish");
  (*daemon)->Shutdown(std::chrono::seconds(30));
  logger.Info("stopped");
  return 0;
}
