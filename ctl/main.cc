// kapalctl: a crictl-compatible client for kapald. Global flags and /etc/crictl.yaml work as in
// crictl; the commands live in the kapal_ctl library.
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <functional>
#include <iostream>
#include <set>

#include "CLI/CLI.hpp"
#include "ctl/build_commands.h"
#include "ctl/client_config.h"
#include "ctl/commands.h"
#include "ctl/container_commands.h"
#include "ctl/docker_objects.h"
#include "ctl/image_commands.h"
#include "ctl/output.h"
#include "ctl/pod_commands.h"
#include "ctl/stats_commands.h"

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
  // What kapalctl exits with after a successful run (exec, run), or after a failed build (its
  // RUN's code).
  int exit_code = 0;
};

// `exec ID CMD...` and `run IMAGE CMD...` end with a command of their own whose flags ("sh -c")
// are not kapalctl's: everything after the first POSITIONALS positional arguments of those
// subcommands is cut off before CLI11 parses and returned as the trailing command.
std::vector<std::string> CutTrailingCommand(std::vector<std::string>& args) {
  const std::set<std::string> global_with_value = {
      "-c", "--config", "-r", "--runtime-endpoint", "-i", "--image-endpoint", "-t", "--timeout"};
  size_t i = 1;
  while (i < args.size() && args[i].size() > 1 && args[i][0] == '-') {
    bool has_value = global_with_value.count(args[i]) > 0;
    i += has_value ? 2 : 1;
  }
  if (i >= args.size()) return {};
  std::set<std::string> with_value;
  if (args[i] == "exec") {
    with_value = {"--timeout", "-u", "--user", "-e", "--env", "-w", "--workdir"};
  } else if (args[i] == "run") {
    with_value = {"-e", "--env", "-v", "--volume", "-p", "--publish", "--name", "--runtime"};
  } else {
    return {};
  }
  for (++i; i < args.size(); ++i) {
    if (args[i] == "--") {
      args.erase(args.begin() + static_cast<long>(i));
      break;
    }
    if (args[i].size() > 1 && args[i][0] == '-') {
      if (with_value.count(args[i]) > 0) ++i;
      continue;
    }
    ++i;  // the ID or IMAGE
    break;
  }
  if (i >= args.size()) return {};
  std::vector<std::string> trailing(args.begin() + static_cast<long>(i), args.end());
  args.resize(i);
  return trailing;
}

}  // namespace

int main(int argc, char** argv) {
  // Window size changes are read from a signalfd by interactive sessions; blocked before gRPC
  // starts threads, so that no thread takes (and, by default, drops) the signal.
  sigset_t winch;
  sigemptyset(&winch);
  sigaddset(&winch, SIGWINCH);
  ::pthread_sigmask(SIG_BLOCK, &winch, nullptr);
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
  auto add_push = [&](CLI::App* parent, const char* name) {
    CLI::App* command = parent->add_subcommand(name, "Push an image (NAME:TAG) to its registry");
    command->add_option("image", pull.image, "Image reference (host:5000/a/b:tag)")->required();
    command->add_option("--creds", pull.creds, "Registry credentials, USER[:PASSWORD]");
    command->add_option("--auth", pull.auth, "Registry credentials, base64 of USER:PASSWORD");
    command->callback([&] {
      action.run = [&](CriClient& client, OutputFormat) {
        return kapal::ctl::RunPush(client, pull, std::cout);
      };
    });
  };
  std::string tag_source, tag_target;
  auto add_tag = [&](CLI::App* parent, const char* name) {
    CLI::App* command = parent->add_subcommand(name, "Give an image another name (NAME[:TAG])");
    command->add_option("source", tag_source, "Image reference or id")->required();
    command->add_option("target", tag_target, "New reference")->required();
    command->callback([&] {
      action.run = [&](CriClient& client, OutputFormat) {
        return kapal::ctl::RunTag(client, tag_source, tag_target, std::cout);
      };
    });
  };
  kapal::ctl::BuildCommand build_command;
  auto add_build = [&](CLI::App* parent, const char* name) {
    CLI::App* command = parent->add_subcommand(name, "Build an image from a Dockerfile");
    command->add_option("directory", build_command.directory, "The build context")->required();
    // One value per flag (repeat the flag for more), so DIRECTORY is never taken as a tag.
    command->add_option("-t,--tag", build_command.tags, "Name the image NAME[:TAG]")
        ->allow_extra_args(false);
    command->add_option("-f,--file", build_command.dockerfile,
                        "The Dockerfile (default: DIRECTORY/Dockerfile)");
    command->add_option("--build-arg", build_command.build_args, "A build argument NAME[=VALUE]")
        ->allow_extra_args(false);
    command->add_option("--label", build_command.labels, "A label NAME=VALUE on the image")
        ->allow_extra_args(false);
    command->add_option("--target", build_command.target, "Build up to this stage");
    command->add_flag("--no-cache", build_command.no_cache, "Build every step again");
    command->add_flag("--pull", build_command.pull, "Pull a newer version of FROM images");
    command->add_option("--network", build_command.network, "RUN's network: default, host, none");
    command->add_flag("-q,--quiet", build_command.quiet, "Print only the image id");
    command->callback([&] {
      action.run = [&](CriClient& client, OutputFormat) {
        return kapal::ctl::RunBuild(client, build_command, std::cout, &action.exit_code);
      };
    });
  };
  add_build(&app, "build");
  add_pull(&app, "pull");
  add_push(&app, "push");
  add_tag(&app, "tag");
  add_images(&app, "images");
  add_inspect(&app, "inspecti");
  add_remove(&app, "rmi");
  CLI::App* image = app.add_subcommand(
      "image",
      "Docker-style image commands: ls, build, pull, push, tag, rm, inspect, import, export");
  image->require_subcommand(1);
  add_images(image, "ls");
  add_build(image, "build");
  add_pull(image, "pull");
  add_push(image, "push");
  add_tag(image, "tag");
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
  // Volumes and networks: objects of kapald's Docker API, as `docker volume/network` has them.
  kapal::ctl::EventsCommand events_command;
  CLI::App* events = app.add_subcommand(
      "events", "The node's events (containers, images, volumes, networks), as docker events");
  events->add_option("--since", events_command.since, "From this time (Unix seconds, or 10m ago)");
  events->add_option("--until", events_command.until, "Up to this time, then end");
  events
      ->add_option("-f,--filter", events_command.filters,
                   "KEY=VALUE (type, event, container, "
                   "image, label, volume, network)")
      ->allow_extra_args(false);
  output_option(events, "table", "table (docker events' lines) or json (one object a line)");
  events->callback([&] {
    action.run = [&](CriClient& client, OutputFormat format) {
      events_command.format = format;
      return kapal::ctl::RunEvents(client, events_command, std::cout);
    };
  });
  kapal::ctl::DockerObjectCommand docker_object;
  for (const char* kind : {"volume", "network"}) {
    bool is_volume = std::string(kind) == "volume";
    CLI::App* group =
        app.add_subcommand(kind, is_volume ? "Named volumes: create, ls, inspect, rm"
                                           : "Networks (CNI configs): create, ls, inspect, rm");
    group->require_subcommand(1);
    auto add = [&, kind](const char* verb_name, const char* help) {
      CLI::App* command = group->add_subcommand(verb_name, help);
      std::string verb = verb_name;
      if (verb == "create") {
        command->add_option("name", docker_object.names, "Its name")->required()->expected(1);
        command->add_option("--label", docker_object.labels, "KEY=VALUE (repeatable)");
        if (!is_volume) command->add_option("--subnet", docker_object.subnet, "IPv4 CIDR");
      } else if (verb == "ls") {
        command->add_flag("-q,--quiet", docker_object.quiet, "Only names");
        command->add_option("-o,--output", action.output_format, "table, json or yaml");
      } else {
        command->add_option("names", docker_object.names, "Names")->required();
        if (verb == "inspect") {
          command->add_option("-o,--output", action.output_format, "json or yaml");
        }
      }
      command->callback([&, kind, verb] {
        docker_object.kind = kind;
        docker_object.action = verb;
        action.run = [&](CriClient& client, OutputFormat format) {
          docker_object.format = format;
          return kapal::ctl::RunDockerObject(client, docker_object, std::cout);
        };
      });
    };
    add("create", is_volume ? "Create a named volume" : "Create a bridge network");
    add("ls", "List them");
    add("inspect", "Show them as JSON or YAML");
    add("rm", "Remove them (refused while a container uses one)");
  }

  // Docker's node-wide verbs, through kapald's Docker API socket as volume and network.
  std::string rename_container, rename_to;
  CLI::App* rename = app.add_subcommand("rename", "Rename a Docker API container");
  rename->add_option("container", rename_container, "Its name or id")->required();
  rename->add_option("name", rename_to, "The new name")->required();
  rename->callback([&] {
    action.run = [&](CriClient& client, OutputFormat) {
      return kapal::ctl::RunRename(client, rename_container, rename_to, std::cout);
    };
  });
  std::string prune_what;
  bool prune_all = false;
  CLI::App* prune = app.add_subcommand(
      "prune", "Remove stopped Docker API containers, unused networks or volumes, dangling images");
  prune->add_option("what", prune_what, "containers, images, volumes, networks or system")
      ->required();
  prune->add_flag("-a,--all", prune_all, "Images: every unused one, not only dangling ones");
  prune->callback([&] {
    action.run = [&](CriClient& client, OutputFormat) {
      return kapal::ctl::RunPrune(client, prune_what, prune_all, std::cout);
    };
  });
  CLI::App* system = app.add_subcommand("system", "Node-wide: df");
  system->require_subcommand(1);
  CLI::App* df = system->add_subcommand("df",
                                        "Show the space images, containers, volumes and "
                                        "the build cache use");
  output_option(df, "table", "table, json or yaml");
  df->callback([&] {
    action.run = [&](CriClient& client, OutputFormat format) {
      return kapal::ctl::RunSystemDf(client, format, std::cout);
    };
  });

  CLI::App* fsinfo = app.add_subcommand("imagefsinfo", "Show the space images and containers use");
  output_option(fsinfo, "json", "json, yaml or table");

  // Pods and containers, as crictl names them.
  std::string runtime_handler, pod_id, container_file, pod_file;
  std::vector<std::string> ids;
  bool all = false, force = false, no_pull = false;
  CLI::App* runp = app.add_subcommand("runp", "Run a pod from a pod config file (JSON or YAML)");
  runp->add_option("config", pod_file, "Pod sandbox config file")->required();
  runp->add_option("--runtime", runtime_handler, "Runtime handler (RuntimeClass) to use");
  runp->callback([&] {
    action.run = [&](CriClient& client, OutputFormat) {
      return kapal::ctl::RunRunPod(client, pod_file, runtime_handler, std::cout);
    };
  });
  CLI::App* stopp = app.add_subcommand("stopp", "Stop pods (their containers and network)");
  stopp->add_option("ids", ids, "Pod ids (or unique prefixes)")->required();
  stopp->callback([&] {
    action.run = [&](CriClient& client, OutputFormat) {
      return kapal::ctl::RunStopPods(client, ids, std::cout);
    };
  });
  CLI::App* rmp = app.add_subcommand("rmp", "Remove pods and their containers");
  rmp->add_option("ids", ids, "Pod ids (or unique prefixes)");
  rmp->add_flag("-a,--all", all, "Remove every pod");
  rmp->add_flag("-f,--force", force, "Stop running pods first (kapal always does)");
  rmp->callback([&] {
    action.run = [&](CriClient& client, OutputFormat) {
      return kapal::ctl::RunRemovePods(client, ids, all, std::cout);
    };
  });
  kapal::ctl::PodsCommand pods_command;
  CLI::App* pods = app.add_subcommand("pods", "List pods");
  pods->add_option("--id", pods_command.id, "Only pods whose id starts with this");
  pods->add_option("--name", pods_command.name, "Only pods whose name contains this");
  pods->add_option("--namespace", pods_command.pod_namespace, "Only pods of this namespace");
  pods->add_option("-s,--state", pods_command.state, "Only ready or notready pods");
  pods->add_option("--label", pods_command.labels, "Only pods with this label (KEY=VALUE)");
  pods->add_flag("-q,--quiet", pods_command.quiet, "Only pod ids");
  output_option(pods, "table", "table, json or yaml");
  CLI::App* inspectp = app.add_subcommand("inspectp", "Show the status of pods");
  inspectp->add_option("ids", ids, "Pod ids (or unique prefixes)")->required();
  output_option(inspectp, "json", "json, yaml or table");

  CLI::App* create = app.add_subcommand("create", "Create a container in a pod");
  create->add_option("pod", pod_id, "Pod id")->required();
  create->add_option("container-config", container_file, "Container config file")->required();
  create->add_option("pod-config", pod_file, "Pod sandbox config file")->required();
  create->add_flag("--no-pull", no_pull, "Do not pull the image when it is missing");
  create->callback([&] {
    action.run = [&](CriClient& client, OutputFormat) {
      return kapal::ctl::RunCreateContainer(client, pod_id, container_file, pod_file, no_pull,
                                            std::cout);
    };
  });
  CLI::App* start = app.add_subcommand("start", "Start created containers");
  start->add_option("ids", ids, "Container ids (or unique prefixes)")->required();
  start->callback([&] {
    action.run = [&](CriClient& client, OutputFormat) {
      return kapal::ctl::RunStartContainers(client, ids, std::cout);
    };
  });
  // Docker-style container verbs over kapal.v1.Containers (any container of the node).
  for (bool freeze : {true, false}) {
    CLI::App* verb = app.add_subcommand(
        freeze ? "pause" : "unpause",
        freeze ? "Freeze running containers' processes" : "Thaw paused containers");
    verb->add_option("ids", ids, "Container ids (or unique prefixes)")->required();
    verb->callback([&ids, &action, freeze] {
      action.run = [&ids, freeze](CriClient& client, OutputFormat) {
        return kapal::ctl::RunPause(client, ids, freeze, std::cout);
      };
    });
  }
  std::string top_id;
  CLI::App* top = app.add_subcommand("top", "List a running container's processes");
  top->add_option("id", top_id, "Container id (or unique prefix)")->required();
  top->callback([&] {
    action.run = [&](CriClient& client, OutputFormat) {
      return kapal::ctl::RunTop(client, top_id, std::cout);
    };
  });
  std::string copy_source, copy_destination;
  bool copy_archive = false;
  CLI::App* copy = app.add_subcommand(
      "cp", "Copy files between a container and a local directory or a tar on stdin/stdout");
  copy->add_option("source", copy_source, "CONTAINER:PATH, a local path, or -")->required();
  copy->add_option("destination", copy_destination, "CONTAINER:DIR, a local directory, or -")
      ->required();
  copy->add_flag("-a,--archive", copy_archive, "The container's user owns what is copied in");
  copy->callback([&] {
    action.run = [&](CriClient& client, OutputFormat) {
      return kapal::ctl::RunCopy(client, copy_source, copy_destination, copy_archive, std::cout);
    };
  });
  std::string commit_container, commit_reference, commit_message, commit_author;
  std::vector<std::string> commit_changes;
  bool commit_pause = true;
  CLI::App* commit =
      app.add_subcommand("commit", "Create an image from a container's changes (docker commit)");
  commit->add_option("id", commit_container, "Container id (or unique prefix)")->required();
  commit->add_option("reference", commit_reference, "NAME[:TAG] for the image (default: none)");
  commit->add_option("-m,--message", commit_message, "The history entry's comment");
  commit->add_option("-a,--author", commit_author, "The image's author");
  commit->add_option("-p,--pause", commit_pause,
                     "Freeze the container during the commit (default true)");
  commit
      ->add_option("-c,--change", commit_changes,
                   "A Dockerfile instruction for the config (CMD, ENV, LABEL, ...)")
      ->allow_extra_args(false);
  commit->callback([&] {
    action.run = [&](CriClient& client, OutputFormat) {
      return kapal::ctl::RunCommit(client, commit_container, commit_reference, commit_message,
                                   commit_author, commit_changes, commit_pause, std::cout);
    };
  });
  std::string import_file, import_reference, import_message;
  std::vector<std::string> import_changes;
  CLI::App* import_rootfs = app.add_subcommand(
      "import",
      "Create an image from a root filesystem tar (docker import; see also image import)");
  import_rootfs->add_option("file", import_file, "The tar (plain, gzip or zstd), or -")->required();
  import_rootfs->add_option("reference", import_reference, "NAME[:TAG] (default: none)");
  import_rootfs->add_option("-m,--message", import_message, "The history entry's comment");
  import_rootfs
      ->add_option("-c,--change", import_changes,
                   "A Dockerfile instruction for the config (CMD, ENV, LABEL, ...)")
      ->allow_extra_args(false);
  import_rootfs->callback([&] {
    action.run = [&](CriClient& client, OutputFormat) {
      return kapal::ctl::RunImportRootfs(client, import_file, import_reference, import_message,
                                         import_changes, std::cout);
    };
  });
  std::string export_container, export_file = "-";
  CLI::App* export_root =
      app.add_subcommand("export", "Write a container's root filesystem as a tar");
  export_root->add_option("id", export_container, "Container id (or unique prefix)")->required();
  export_root->add_option("-o,--output", export_file, "The tar file (default: stdout)");
  export_root->callback([&] {
    action.run = [&](CriClient& client, OutputFormat) {
      return kapal::ctl::RunExportContainer(client, export_container, export_file,
                                            export_file == "-" ? std::cerr : std::cout);
    };
  });
  int64_t stop_timeout = 0;
  CLI::App* stop = app.add_subcommand("stop", "Stop containers (stop signal, then SIGKILL)");
  stop->add_option("ids", ids, "Container ids (or unique prefixes)")->required();
  stop->add_option("--timeout", stop_timeout, "Seconds between the stop signal and SIGKILL");
  stop->callback([&] {
    action.run = [&](CriClient& client, OutputFormat) {
      return kapal::ctl::RunStopContainers(client, ids, stop_timeout, std::cout);
    };
  });
  CLI::App* rm = app.add_subcommand("rm", "Remove containers");
  rm->add_option("ids", ids, "Container ids (or unique prefixes)");
  rm->add_flag("-f,--force", force, "Remove running containers too (they are stopped first)");
  rm->add_flag("-a,--all", all, "Remove every container");
  rm->callback([&] {
    action.run = [&](CriClient& client, OutputFormat) {
      return kapal::ctl::RunRemoveContainers(client, ids, force, all, std::cout);
    };
  });
  kapal::ctl::PsCommand ps_command;
  CLI::App* ps = app.add_subcommand("ps", "List containers (running ones unless -a)");
  ps->add_flag("-a,--all", ps_command.all, "Containers in every state");
  ps->add_flag("-q,--quiet", ps_command.quiet, "Only container ids");
  ps->add_flag("-l,--latest", ps_command.latest, "Only the newest container");
  ps->add_option("--id", ps_command.id, "Only containers whose id starts with this");
  ps->add_option("-p,--pod", ps_command.pod, "Only containers of this pod");
  ps->add_option("--name", ps_command.name, "Only containers whose name contains this");
  ps->add_option("-s,--state", ps_command.state, "created, running, exited or unknown");
  ps->add_option("--label", ps_command.labels, "Only containers with this label (KEY=VALUE)");
  output_option(ps, "table", "table, json or yaml");
  CLI::App* inspect = app.add_subcommand("inspect", "Show the status of containers");
  inspect->add_option("ids", ids, "Container ids (or unique prefixes)")->required();
  output_option(inspect, "json", "json, yaml or table");
  kapal::ctl::LogsCommand logs_command;
  CLI::App* logs = app.add_subcommand("logs", "Print a container's log");
  logs->add_option("id", logs_command.id, "Container id")->required();
  logs->add_flag("-f,--follow", logs_command.follow, "Keep printing until the container exits");
  logs->add_option("--tail", logs_command.tail, "Only the last N lines");
  logs->add_option("--since", logs_command.since, "Only since a duration ago (10s) or a time");
  logs->add_flag("-t,--timestamps", logs_command.timestamps, "Show each line's time");
  logs->callback([&] {
    action.run = [&](CriClient& client, OutputFormat) {
      return kapal::ctl::RunLogs(client, logs_command, std::cout, std::cerr);
    };
  });

  kapal::ctl::StatsCommand stats_command;
  CLI::App* stats = app.add_subcommand("stats", "Resource use of containers (CPU %, memory, disk)");
  stats->add_option("id", stats_command.id, "Only containers whose id starts with this");
  stats->add_option("-p,--pod", stats_command.pod, "Only containers of this pod");
  stats->add_option("--label", stats_command.labels, "Only containers with this label (KEY=VALUE)");
  output_option(stats, "table", "table, json or yaml");
  kapal::ctl::StatsCommand statsp_command;
  CLI::App* statsp = app.add_subcommand("statsp", "Resource use of pods (CPU %, memory)");
  statsp->add_option("id", statsp_command.id, "Only pods whose id starts with this");
  statsp->add_option("--label", statsp_command.labels, "Only pods with this label (KEY=VALUE)");
  output_option(statsp, "table", "table, json or yaml");
  kapal::ctl::UpdateCommand update_command;
  CLI::App* update = app.add_subcommand("update", "Change the resources of running containers");
  update->add_option("ids", update_command.ids, "Container ids (or unique prefixes)")->required();
  update->add_option("--cpu-period", update_command.cpu_period, "CPU CFS period (microseconds)");
  update->add_option("--cpu-quota", update_command.cpu_quota, "CPU CFS quota (microseconds)");
  update->add_option("--cpu-share", update_command.cpu_shares, "CPU shares (relative weight)");
  update->add_option("--cpuset-cpus", update_command.cpuset_cpus, "CPUs allowed (0-3, 0,1)");
  update->add_option("--cpuset-mems", update_command.cpuset_mems, "Memory nodes allowed");
  update->add_option("--memory", update_command.memory, "Memory limit in bytes");
  update->callback([&] {
    action.run = [&](CriClient& client, OutputFormat) {
      return kapal::ctl::RunUpdate(client, update_command, std::cout);
    };
  });

  std::vector<std::string> args(argv, argv + argc);
  std::vector<std::string> trailing = CutTrailingCommand(args);
  std::string exec_id;
  int64_t exec_timeout = 0;
  bool exec_sync = false;
  kapal::ctl::InteractiveOptions exec_stream;
  CLI::App* exec = app.add_subcommand("exec", "Run a command in a running container");
  exec->add_option("id", exec_id, "Container id")->required();
  exec->add_option("--timeout", exec_timeout, "Seconds before the command is killed (0: none)");
  exec->add_flag("-s,--sync", exec_sync, "Run synchronously, output at the end (the default)");
  exec->add_flag("-i,--interactive", exec_stream.stdin,
                 "Send stdin (through the streaming server)");
  exec->add_flag("-t,--tty", exec_stream.tty, "Allocate a terminal (through the streaming server)");
  kapal::ctl::ExecExtras exec_extras;
  exec->add_option("-u,--user", exec_extras.user, "USER[:GROUP] to run as (docker exec's)");
  exec->add_option("-e,--env", exec_extras.env, "NAME=VALUE for the command (docker exec's)")
      ->allow_extra_args(false);
  exec->add_option("-w,--workdir", exec_extras.working_dir, "Working dir (docker exec's)");
  exec->add_flag("--privileged", exec_extras.privileged,
                 "Every capability kapald holds (docker exec's)");
  exec->callback([&] {
    action.run = [&](CriClient& client, OutputFormat) {
      if (trailing.empty()) return absl::InvalidArgumentError("exec needs a command");
      if (exec_extras.Any()) {
        if (exec_stream.stdin || exec_stream.tty) {
          return absl::InvalidArgumentError(
              "-u, -e, -w and --privileged run the command to its end; without -i/-t (CRI's "
              "streaming exec has no such options)");
        }
        return kapal::ctl::RunExecWithExtras(client, exec_id, trailing, exec_extras, exec_timeout,
                                             std::cout, std::cerr, &action.exit_code);
      }
      if (exec_stream.stdin || exec_stream.tty) {
        return kapal::ctl::RunStreamingExec(client, exec_id, trailing, exec_stream,
                                            &action.exit_code);
      }
      return kapal::ctl::RunExec(client, exec_id, trailing, exec_timeout, std::cout, std::cerr,
                                 &action.exit_code);
    };
  });
  std::string attach_id;
  kapal::ctl::InteractiveOptions attach_stream;
  CLI::App* attach = app.add_subcommand("attach", "Attach to a running container's stdio");
  attach->add_option("id", attach_id, "Container id")->required();
  attach->add_flag("-i,--stdin", attach_stream.stdin, "Send stdin to the container");
  attach->add_flag("-t,--tty", attach_stream.tty, "The container has a terminal: make ours raw");
  attach->callback([&] {
    action.run = [&](CriClient& client, OutputFormat) {
      return kapal::ctl::RunAttach(client, attach_id, attach_stream, &action.exit_code);
    };
  });
  std::string forward_pod;
  std::vector<std::string> forward_ports;
  CLI::App* port_forward =
      app.add_subcommand("port-forward", "Forward local ports to a pod (until interrupted)");
  port_forward->add_option("pod", forward_pod, "Pod id")->required();
  port_forward->add_option("ports", forward_ports, "[LOCAL_PORT:]REMOTE_PORT (LOCAL 0: any free)")
      ->required();
  port_forward->callback([&] {
    action.run = [&](CriClient& client, OutputFormat) {
      return kapal::ctl::RunPortForward(client, forward_pod, forward_ports, std::cout);
    };
  });
  kapal::ctl::RunCommandLine run_command;
  CLI::App* run = app.add_subcommand(
      "run", "Docker-style: pull if missing, run IMAGE [CMD...] in a pod of its own");
  run->add_option("image", run_command.image, "Image reference")->required();
  run->add_flag("--rm", run_command.remove, "Remove the pod when the container exits");
  run->add_flag("-d,--detach", run_command.detach, "Print the container id and leave it running");
  run->add_option("-e,--env", run_command.env, "Environment variable KEY=VALUE");
  run->add_option("-v,--volume", run_command.volumes, "Bind mount HOST_PATH:CONTAINER_PATH[:ro]");
  run->add_option("-p,--publish", run_command.ports, "Host port [IP:]HOST:CONTAINER[/udp]");
  run->add_option("--name", run_command.name, "Name of the pod and container");
  run->add_option("--runtime", run_command.runtime_handler, "Runtime handler (runc, crun)");
  run->add_flag("-i,--interactive", run_command.interactive, "Keep stdin open and attach it");
  run->add_flag("-t,--tty", run_command.tty, "Give the container a terminal");
  run->callback([&] {
    action.run = [&](CriClient& client, OutputFormat) {
      run_command.args = trailing;
      run_command.terminal = ::isatty(STDERR_FILENO) != 0;
      return kapal::ctl::RunRun(client, run_command, std::cout, std::cerr, &action.exit_code);
    };
  });

  std::vector<char*> cut_argv;
  for (std::string& arg : args) cut_argv.push_back(arg.data());
  CLI11_PARSE(app, static_cast<int>(cut_argv.size()), cut_argv.data());

  if (version->parsed()) {
    action.run = [](CriClient& client, OutputFormat format) {
      return kapal::ctl::RunVersion(client, format, std::cout);
    };
  } else if (info->parsed()) {
    action.run = [](CriClient& client, OutputFormat format) {
      return kapal::ctl::RunInfo(client, format, std::cout);
    };
  } else if (pods->parsed()) {
    action.run = [&](CriClient& client, OutputFormat format) {
      pods_command.format = format;
      return kapal::ctl::RunPods(client, pods_command, std::cout);
    };
  } else if (inspectp->parsed()) {
    action.run = [&](CriClient& client, OutputFormat format) {
      return kapal::ctl::RunInspectPods(client, ids, format, std::cout);
    };
  } else if (ps->parsed()) {
    action.run = [&](CriClient& client, OutputFormat format) {
      ps_command.format = format;
      return kapal::ctl::RunPs(client, ps_command, std::cout);
    };
  } else if (inspect->parsed()) {
    action.run = [&](CriClient& client, OutputFormat format) {
      return kapal::ctl::RunInspectContainers(client, ids, format, std::cout);
    };
  } else if (stats->parsed()) {
    action.run = [&](CriClient& client, OutputFormat format) {
      stats_command.format = format;
      return kapal::ctl::RunContainerStats(client, stats_command, std::cout);
    };
  } else if (statsp->parsed()) {
    action.run = [&](CriClient& client, OutputFormat format) {
      statsp_command.format = format;
      return kapal::ctl::RunPodStats(client, statsp_command, std::cout);
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
  if (result.ok()) return action.exit_code;
  int failed = Fail(result);
  // A command that knows a better exit code for its failure (build: the failing RUN's) set it.
  return action.exit_code != 0 ? action.exit_code : failed;
}
