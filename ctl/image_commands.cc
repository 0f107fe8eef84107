#include "ctl/image_commands.h"

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace kapal::ctl {

namespace {

// IMAGE and TAG columns of a repo tag "host/name:tag".
std::pair<std::string, std::string> SplitTag(const std::string& repo_tag) {
  size_t colon = repo_tag.rfind(':');
  size_t slash = repo_tag.rfind('/');
  if (colon == std::string::npos || (slash != std::string::npos && colon < slash)) {
    return {repo_tag, "<none>"};
  }
  return {repo_tag.substr(0, colon), repo_tag.substr(colon + 1)};
}

std::string ShortDigest(const std::string& digest) { return ShortId(digest); }

absl::StatusOr<runtime::v1::Image> Status(CriClient& client, const std::string& image, bool verbose,
                                          std::string* info) {
  runtime::v1::ImageStatusRequest request;
  request.mutable_image()->set_image(image);
  request.set_verbose(verbose);
  runtime::v1::ImageStatusResponse response;
  grpc::Status status = client.Images().ImageStatus(client.NewContext().get(), request, &response);
  if (!status.ok()) return RpcError("ImageStatus", status);
  if (!response.has_image())
    return absl::NotFoundError(absl::StrCat("no such image \"", image, "\""));
  if (info != nullptr && response.info().contains("info")) *info = response.info().at("info");
  return response.image();
}

// --creds USER[:PASSWORD] and --auth, into a Pull or Push request.
template <typename Request>
void SetImageAndCredentials(const PullCommand& command, Request& request) {
  request.set_image(command.image);
  if (!command.creds.empty()) {
    size_t colon = command.creds.find(':');
    request.set_username(command.creds.substr(0, colon));
    if (colon != std::string::npos) request.set_password(command.creds.substr(colon + 1));
  }
  request.set_auth(command.auth);
}

}  // namespace

std::string HumanSize(double bytes) {
  static const char* const kUnits[] = {"B", "kB", "MB", "GB", "TB", "PB"};
  size_t unit = 0;
  while (bytes >= 1000 && unit + 1 < std::size(kUnits)) {
    bytes /= 1000;
    ++unit;
  }
  return absl::StrFormat("%.3g%s", bytes, kUnits[unit]);
}

absl::Status RunPull(CriClient& client, const PullCommand& command, std::ostream& out) {
  kapal::v1::PullRequest request;
  SetImageAndCredentials(command, request);

  struct Layer {
    int64_t done = 0, total = 0;
    bool cached = false, reported = false;
  };
  std::map<std::string, Layer> layers;  // ordered by digest: a stable display
  auto started = std::chrono::steady_clock::now();
  size_t drawn_lines = 0;
  auto seconds = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  };
  auto redraw = [&] {
    // Move back over the previous drawing and write every layer's line again.
    if (drawn_lines > 0) out << "\x1b[" << drawn_lines << "F";
    int64_t done = 0, total = 0;
    for (const auto& [digest, layer] : layers) {
      done += layer.cached ? 0 : layer.done;
      total += layer.cached ? 0 : layer.total;
      std::string state = layer.cached ? "already present"
                          : layer.done >= layer.total
                              ? absl::StrCat("done ", HumanSize(static_cast<double>(layer.total)))
                              : absl::StrCat(HumanSize(static_cast<double>(layer.done)), " / ",
                                             HumanSize(static_cast<double>(layer.total)));
      out << "\x1b[2K" << ShortDigest(digest) << "  " << state << "\n";
    }
    out << "\x1b[2K"
        << "downloaded " << HumanSize(static_cast<double>(done)) << " of "
        << HumanSize(static_cast<double>(total)) << ", "
        << HumanSize(static_cast<double>(done) / std::max(seconds(), 0.001)) << "/s\n";
    drawn_lines = layers.size() + 1;
    out.flush();
  };

  kapal::v1::PullEvent event;
  std::string image_id;
  auto context = client.LongContext();
  auto reader = client.KapalImages().Pull(context.get(), request);
  while (reader->Read(&event)) {
    if (event.has_layer()) {
      Layer& layer = layers[event.layer().digest()];
      layer.done = event.layer().done();
      layer.total = event.layer().total();
      layer.cached = event.layer().cached();
      if (command.terminal) {
        redraw();
      } else if (!layer.reported && (layer.cached || layer.done >= layer.total)) {
        layer.reported = true;
        out << ShortDigest(event.layer().digest()) << "  "
            << (layer.cached ? "already present"
                             : absl::StrCat("done ", HumanSize(static_cast<double>(layer.total))))
            << "\n";
      }
    } else if (!event.image_id().empty()) {
      image_id = event.image_id();
    }
  }
  grpc::Status status = reader->Finish();
  if (status.error_code() == grpc::StatusCode::UNIMPLEMENTED) {
    // Not kapald (containerd, CRI-O): plain CRI, without progress.
    runtime::v1::PullImageRequest cri_request;
    cri_request.mutable_image()->set_image(command.image);
    cri_request.mutable_auth()->set_username(request.username());
    cri_request.mutable_auth()->set_password(request.password());
    cri_request.mutable_auth()->set_auth(request.auth());
    runtime::v1::PullImageResponse cri_response;
    status = client.Images().PullImage(client.LongContext().get(), cri_request, &cri_response);
    if (!status.ok()) return RpcError("PullImage", status);
    image_id = cri_response.image_ref();
  } else if (!status.ok()) {
    return RpcError("Pull", status);
  }
  out << "Image is up to date for " << image_id << "\n";
  return absl::OkStatus();
}

absl::Status RunPush(CriClient& client, const PullCommand& command, std::ostream& out) {
  kapal::v1::PushRequest request;
  SetImageAndCredentials(command, request);
  auto context = client.LongContext();
  auto reader = client.KapalImages().Push(context.get(), request);
  kapal::v1::PushEvent event;
  std::string digest;
  while (reader->Read(&event)) {
    if (event.has_blob()) {
      const std::string& phase = event.blob().phase();
      if (phase == "pushing" || phase == "preparing") continue;
      out << ShortDigest(event.blob().digest()) << "  "
          << (phase == "exists" ? "already there"
              : phase == "mounted"
                  ? "mounted from another repository"
                  : absl::StrCat("pushed ", HumanSize(static_cast<double>(event.blob().total()))))
          << "\n";
    } else if (!event.manifest_digest().empty()) {
      digest = event.manifest_digest();
    }
  }
  grpc::Status status = reader->Finish();
  if (!status.ok()) return RpcError("Push", status);
  out << command.image << ": digest " << digest << "\n";
  return absl::OkStatus();
}

absl::Status RunTag(CriClient& client, const std::string& source, const std::string& target,
                    std::ostream& out) {
  kapal::v1::TagRequest request;
  request.set_source(source);
  request.set_target(target);
  kapal::v1::TagResponse response;
  grpc::Status status = client.KapalImages().Tag(client.NewContext().get(), request, &response);
  if (!status.ok()) return RpcError("Tag", status);
  out << target << " -> " << response.image_id() << "\n";
  return absl::OkStatus();
}

absl::Status RunImages(CriClient& client, const ImagesCommand& command, std::ostream& out) {
  runtime::v1::ListImagesRequest request;
  if (!command.filter.empty()) request.mutable_filter()->mutable_image()->set_image(command.filter);
  runtime::v1::ListImagesResponse response;
  grpc::Status status = client.Images().ListImages(client.NewContext().get(), request, &response);
  if (!status.ok()) return RpcError("ListImages", status);
  if (command.quiet) {
    for (const auto& image : response.images()) out << image.id() << "\n";
    return absl::OkStatus();
  }
  if (command.format != OutputFormat::kTable) {
    PrintDocument(MessageToJson(response), command.format, out);
    return absl::OkStatus();
  }
  std::vector<std::string> header = {"IMAGE", "TAG"};
  if (command.digests) header.push_back("DIGEST");
  header.insert(header.end(), {"IMAGE ID", "SIZE"});
  Table table(header);
  for (const auto& image : response.images()) {
    std::string digest = image.repo_digests().empty() ? "<none>" : image.repo_digests(0);
    digest = digest.substr(digest.find('@') + 1);
    std::vector<std::string> tags(image.repo_tags().begin(), image.repo_tags().end());
    if (tags.empty()) {
      std::string name = image.repo_digests().empty() ? "<none>" : image.repo_digests(0);
      tags.push_back(name.substr(0, name.find('@')));
    }
    for (const std::string& tag : tags) {
      auto [name, tag_name] = SplitTag(tag);
      std::vector<std::string> row = {name, tag_name};
      if (command.digests) row.push_back(digest == "<none>" ? digest : ShortDigest(digest));
      row.insert(row.end(), {ShortId(image.id()), HumanSize(static_cast<double>(image.size()))});
      table.AddRow(row);
    }
  }
  table.Print(out);
  return absl::OkStatus();
}

absl::Status RunInspectImages(CriClient& client, const std::vector<std::string>& images,
                              OutputFormat format, std::ostream& out) {
  nlohmann::json documents = nlohmann::json::array();
  for (const std::string& image : images) {
    std::string info;
    absl::StatusOr<runtime::v1::Image> status = Status(client, image, true, &info);
    if (!status.ok()) return status.status();
    nlohmann::json document = {{"status", MessageToJson(*status)}};
    nlohmann::json parsed = nlohmann::json::parse(info, nullptr, false);
    if (!info.empty() && !parsed.is_discarded()) document["info"] = parsed;
    documents.push_back(document);
  }
  // One image prints as an object, several as a list, as crictl does.
  PrintDocument(documents.size() == 1 ? documents[0] : documents,
                format == OutputFormat::kTable ? OutputFormat::kJson : format, out);
  return absl::OkStatus();
}

absl::Status RunRemoveImages(CriClient& client, const std::vector<std::string>& images,
                             std::ostream& out) {
  absl::Status first_error;
  for (const std::string& image : images) {
    // RemoveImage succeeds for an unknown image (kubelet relies on that); a person typing rmi
    // wants to hear about a typo.
    absl::StatusOr<runtime::v1::Image> status = Status(client, image, false, nullptr);
    if (!status.ok()) {
      if (first_error.ok()) first_error = status.status();
      continue;
    }
    runtime::v1::RemoveImageRequest request;
    request.mutable_image()->set_image(image);
    runtime::v1::RemoveImageResponse response;
    grpc::Status removed =
        client.Images().RemoveImage(client.NewContext().get(), request, &response);
    if (!removed.ok()) {
      if (first_error.ok()) first_error = RpcError("RemoveImage", removed);
      continue;
    }
    out << "Deleted: " << image << "\n";
  }
  return first_error;
}

absl::Status RunImportImage(CriClient& client, const std::string& file, std::ostream& out) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", file));
  kapal::v1::ImportResponse response;
  auto context = client.LongContext();
  auto writer = client.KapalImages().Import(context.get(), &response);
  std::vector<char> buffer(1 << 20);
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    std::streamsize n = in.gcount();
    if (n <= 0) break;
    kapal::v1::ArchiveChunk chunk;
    chunk.set_data(buffer.data(), static_cast<size_t>(n));
    if (!writer->Write(chunk)) break;  // the server ended the call; Finish says why
  }
  writer->WritesDone();
  grpc::Status status = writer->Finish();
  if (!status.ok()) return RpcError("Import", status);
  for (const auto& image : response.images()) {
    out << "Imported " << (image.repo_tags().empty() ? image.id() : image.repo_tags(0)) << " ("
        << ShortId(image.id()) << ")\n";
  }
  return absl::OkStatus();
}

absl::Status RunExportImage(CriClient& client, const std::string& image, const std::string& file,
                            std::ostream& out) {
  bool to_stdout = file == "-";
  // Written next to its final name and renamed when complete: a failed export leaves no
  // half-written archive that looks whole.
  std::string temp = file + ".partial";
  std::ofstream archive;
  if (!to_stdout) {
    archive.open(temp, std::ios::binary | std::ios::trunc);
    if (!archive) return absl::PermissionDeniedError(absl::StrCat("cannot write ", temp));
  }
  std::ostream& sink = to_stdout ? std::cout : archive;
  kapal::v1::ExportRequest request;
  request.set_image(image);
  auto context = client.LongContext();
  auto reader = client.KapalImages().Export(context.get(), request);
  kapal::v1::ArchiveChunk chunk;
  int64_t bytes = 0;
  while (reader->Read(&chunk)) {
    sink.write(chunk.data().data(), static_cast<std::streamsize>(chunk.data().size()));
    bytes += static_cast<int64_t>(chunk.data().size());
  }
  grpc::Status status = reader->Finish();
  if (!to_stdout) {
    archive.close();
    if (!status.ok() || !archive) {
      std::remove(temp.c_str());
      if (status.ok()) return absl::DataLossError(absl::StrCat("cannot write ", temp));
      return RpcError("Export", status);
    }
    if (std::rename(temp.c_str(), file.c_str()) != 0) {
      return absl::PermissionDeniedError(absl::StrCat("cannot rename ", temp, " to ", file));
    }
    out << "Exported " << image << " to " << file << " (" << HumanSize(static_cast<double>(bytes))
        << ")\n";
  } else if (!status.ok()) {
    return RpcError("Export", status);
  }
  return absl::OkStatus();
}

absl::Status RunImageFsInfo(CriClient& client, OutputFormat format, std::ostream& out) {
  runtime::v1::ImageFsInfoResponse response;
  grpc::Status status = client.Images().ImageFsInfo(client.NewContext().get(), {}, &response);
  if (!status.ok()) return RpcError("ImageFsInfo", status);
  if (format != OutputFormat::kTable) {
    PrintDocument(MessageToJson(response), format, out);
    return absl::OkStatus();
  }
  Table table({"FILESYSTEM", "MOUNTPOINT", "USED", "INODES"});
  auto add = [&](const char* kind, const runtime::v1::FilesystemUsage& usage) {
    table.AddRow({kind, usage.fs_id().mountpoint(),
                  HumanSize(static_cast<double>(usage.used_bytes().value())),
                  std::to_string(usage.inodes_used().value())});
  };
  for (const auto& usage : response.image_filesystems()) add("images", usage);
  for (const auto& usage : response.container_filesystems()) add("containers", usage);
  table.Print(out);
  return absl::OkStatus();
}

}  // namespace kapal::ctl
