#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "ctl/commands.h"
#include "ctl/output.h"

namespace kapal::ctl {

struct PullCommand {
  std::string image;
  std::string creds;      // user[:password]
  std::string auth;       // base64 user:password
  bool terminal = false;  // live progress when stdout is a terminal, else plain lines
};
absl::Status RunPull(CriClient& client, const PullCommand& command, std::ostream& out);

// Docker-style push (a line per blob as it is settled, then the manifest digest) and tag, over
// kapal.v1 (kapald only). PullCommand's fields: the image and its credentials.
absl::Status RunPush(CriClient& client, const PullCommand& command, std::ostream& out);
absl::Status RunTag(CriClient& client, const std::string& source, const std::string& target,
                    std::ostream& out);

struct ImagesCommand {
  std::string filter;
  bool quiet = false;
  bool digests = false;
  OutputFormat format = OutputFormat::kTable;
};
absl::Status RunImages(CriClient& client, const ImagesCommand& command, std::ostream& out);

// NOT_FOUND ("no such image") for an image the runtime does not have.
absl::Status RunInspectImages(CriClient& client, const std::vector<std::string>& images,
                              OutputFormat format, std::ostream& out);
absl::Status RunRemoveImages(CriClient& client, const std::vector<std::string>& images,
                             std::ostream& out);
// `kapalctl image import FILE`: an OCI image layout tar or a docker save tar.
absl::Status RunImportImage(CriClient& client, const std::string& file, std::ostream& out);
// `kapalctl image export IMAGE FILE`: an OCI image layout tar ("-" for stdout).
absl::Status RunExportImage(CriClient& client, const std::string& image, const std::string& file,
                            std::ostream& out);
absl::Status RunImageFsInfo(CriClient& client, OutputFormat format, std::ostream& out);

// Decimal units with three significant digits, as crictl and docker print sizes ("4.55MB").
std::string HumanSize(double bytes);

}  // namespace kapal::ctl
