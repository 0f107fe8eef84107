#!/usr/bin/env python3
"""Builds a realistic image from this machine's /usr as an OCI image layout, for pull-bench.sh.

  bench/usr_image.py OUT_DIR [--total-mb 1000]

Real images are binaries, libraries and text that gzip about 3:1, and for them inflate is most
of a pull's work; random data (the other bench image) is stored by gzip, not compressed. The
regular files and symlinks of /usr (without /usr/local), in path order, are cut into 7 layers
of 35/20/15/10/10/6/4 % of TOTAL_MB uncompressed, each a tar compressed with gzip -6 (the
default of docker and containerd), built two at a time. Prints the image's shape.
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

SHARES = [35, 20, 15, 10, 10, 6, 4]


def pick_files(total_bytes):
    """The first TOTAL_BYTES of /usr's files in path order, cut into len(SHARES) lists."""
    budgets = [total_bytes * share // 100 for share in SHARES]
    layers, current, used = [[] for _ in SHARES], 0, 0
    for directory, dirs, files in os.walk("/usr"):
        dirs.sort()
        if directory == "/usr" and "local" in dirs:
            dirs.remove("local")
        for name in sorted(files):
            path = os.path.join(directory, name)
            try:
                info = os.lstat(path)
            except OSError:
                continue
            if not (os.path.isfile(path) or os.path.islink(path)) or not os.access(path, os.R_OK):
                continue
            size = 0 if os.path.islink(path) else info.st_size
            layers[current].append(path.lstrip("/"))
            used += size
            if used >= budgets[current]:
                current, used = current + 1, 0
                if current == len(SHARES):
                    return layers
    return layers


def build_layer(index, paths, out):
    """Writes the gzip -6 tar of PATHS to OUT/blobs and returns its descriptor and diff id."""
    list_path = os.path.join(out, f"files{index}")
    with open(list_path, "w") as listing:
        listing.write("\n".join(paths) + "\n")
    staged = os.path.join(out, f"layer{index}.tar.gz")
    tar = subprocess.Popen(["tar", "-C", "/", "--no-recursion", "-cf", "-", "-T", list_path],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    gzip = subprocess.Popen(["gzip", "-6", "-n"], stdin=subprocess.PIPE,
                            stdout=open(staged, "wb"))
    diff = hashlib.sha256()
    uncompressed = 0
    while chunk := tar.stdout.read(1 << 20):
        diff.update(chunk)
        uncompressed += len(chunk)
        gzip.stdin.write(chunk)
    gzip.stdin.close()
    if gzip.wait() != 0 or tar.wait() not in (0, 1):  # 1: a file changed while read
        sys.exit(f"usr_image: building layer {index} failed")
    blob = hashlib.sha256()
    with open(staged, "rb") as data:
        while chunk := data.read(1 << 20):
            blob.update(chunk)
    digest = blob.hexdigest()
    os.rename(staged, os.path.join(out, "blobs", "sha256", digest))
    os.remove(list_path)
    return {
        "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
        "digest": "sha256:" + digest,
        "size": os.path.getsize(os.path.join(out, "blobs", "sha256", digest)),
    }, "sha256:" + diff.hexdigest(), uncompressed


def write_blob(out, data):
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(out, "blobs", "sha256", digest), "wb") as blob:
        blob.write(data)
    return "sha256:" + digest, len(data)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--total-mb", type=int, default=1000)
    args = parser.parse_args()
    os.makedirs(os.path.join(args.out, "blobs", "sha256"), exist_ok=True)
    groups = pick_files(args.total_mb << 20)
    with ThreadPoolExecutor(max_workers=2) as pool:
        built = list(pool.map(lambda item: build_layer(item[0], item[1], args.out),
                              enumerate(groups)))
    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/usr/bin/true"]},
        "rootfs": {"type": "layers", "diff_ids": [diff for _, diff, _ in built]},
    }).encode()
    config_digest, config_size = write_blob(args.out, config)
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config_size},
        "layers": [descriptor for descriptor, _, _ in built],
    }).encode()
    manifest_digest, manifest_size = write_blob(args.out, manifest)
    with open(os.path.join(args.out, "index.json"), "w") as index:
        json.dump({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest, "size": manifest_size,
            "annotations": {"org.opencontainers.image.ref.name": "usr"}}]}, index)
    with open(os.path.join(args.out, "oci-layout"), "w") as layout:
        json.dump({"imageLayoutVersion": "1.0.0"}, layout)
    compressed = sum(descriptor["size"] for descriptor, _, _ in built)
    unpacked = sum(size for _, _, size in built)
    largest = max(descriptor["size"] for descriptor, _, _ in built)
    print(f"{len(built)} gzip -6 layers of /usr files, {compressed / 1e6:.0f} MB compressed, "
          f"{unpacked / 1e6:.0f} MB unpacked, largest layer {largest / 1e6:.0f} MB compressed")


if __name__ == "__main__":
    main()
