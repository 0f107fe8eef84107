#!/usr/bin/env bash
# kapal's one set-up script: installs what kapal needs from Debian (apt only), builds it, and
# runs the demo or the test suite. Safe to run again: every step is idempotent.
#
#   deploy/kapal.sh deps    install Debian packages (build, runtime and test dependencies)
#   deploy/kapal.sh build   deps + CMake build of everything in ./build (warnings are errors)
#   deploy/kapal.sh demo    build kapald, kapal-shim, kapalctl; install them to /usr/local/bin,
#                           start kapald, show it answering
#   deploy/kapal.sh test    build + the whole test suite (ctest); what CI runs
#   deploy/kapal.sh stop    stop a kapald started by `demo`
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${KAPAL_BUILD_DIR:-$repo/build}
jobs=$(nproc)

# Build tools and libraries. libisal-dev: ISA-L's inflate, about 3x zlib's on real layers,
# where inflating is most of a pull.
build_packages=(
  cmake g++ make pkg-config git clang-format
  libgrpc++-dev protobuf-compiler protobuf-compiler-grpc libprotobuf-dev libabsl-dev
  libsqlitecpp-dev libsqlite3-dev prometheus-cpp-dev libcpp-httplib-dev libcurl4-openssl-dev libssl-dev
  libtomlplusplus-dev nlohmann-json3-dev libcli11-dev libyaml-cpp-dev
  libarchive-dev libzstd-dev zlib1g-dev
  libisal-dev
  libgtest-dev libgmock-dev
  python3 python3-protobuf
)
# What kapald runs: OCI runtimes and CNI plugins.
# criu: CheckpointContainer asks it whether this kernel can be checkpointed.
# procps: `docker top` runs the host's ps, as dockerd does.
runtime_packages=(runc crun containernetworking-plugins iproute2 iptables criu procps)
# What the tests use: a real registry and images built from busybox; curl for host ports;
# pgrep (procps) for the leftover check; a WebSocket client that is not ours (python3-websocket,
# for Debian's /usr/bin/python3) for the streaming server.
test_packages=(docker-registry busybox-static skopeo umoci curl openssl procps python3-websocket)

need_root() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "kapal.sh: $1 needs root (run it as root, or with sudo)" >&2
    exit 1
  fi
}

deps() {
  need_root "installing packages"
  local wanted=("${build_packages[@]}" "${runtime_packages[@]}" "${test_packages[@]}")
  local missing=()
  for package in "${wanted[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$package")
    fi
  done
  if [ ${#missing[@]} -eq 0 ]; then
    echo "kapal.sh: all ${#wanted[@]} Debian packages are installed"
    return
  fi
  echo "kapal.sh: installing ${#missing[@]} Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
}

# The Docker CLI, without Docker: only usr/bin/docker of Debian's docker.io package (downloaded
# with apt, unpacked with dpkg-deb), so that no dockerd is ever installed or started. kapald's
# Docker API is what it talks to (DOCKER_HOST=unix:///run/kapal/docker.sock).
docker_cli=/usr/local/libexec/kapal/docker
docker_client() {
  need_root "installing the Docker CLI"
  if [ -x "$docker_cli" ]; then
    return
  fi
  local work
  work=$(mktemp -d)
  (
    cd "$work"
    if ! apt-get download docker.io >/dev/null 2>&1; then
      apt-get update -qq
      apt-get download docker.io >/dev/null
    fi
    dpkg-deb -x docker.io_*.deb unpacked
    install -D -m 0755 unpacked/usr/bin/docker "$docker_cli"
  )
  rm -rf "$work"
  echo "kapal.sh: installed the Docker CLI (client only) as $docker_cli"
}

# With target names, only those (and what they need) are built: the demo needs the three
# programs, not the tests and benchmarks.
build() {
  deps
  cmake -S "$repo" -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKAPAL_WERROR=ON
  if [ $# -gt 0 ]; then
    cmake --build "$build_dir" -j "$jobs" --target "$@"
  else
    cmake --build "$build_dir" -j "$jobs"
  fi
}

demo() {
  build kapald kapal-shim kapalctl
  install -m 0755 "$build_dir/daemon/kapald" /usr/local/bin/kapald
  install -m 0755 "$build_dir/ctl/kapalctl" /usr/local/bin/kapalctl
  # kapald starts one kapal-shim per container and finds it next to itself.
  install -m 0755 "$build_dir/daemon/kapal-shim" /usr/local/bin/kapal-shim
  # Pod networking: kapal's bridge network, unless the node has a CNI config already.
  mkdir -p /etc/cni/net.d
  if ! ls /etc/cni/net.d/*.conf /etc/cni/net.d/*.conflist /etc/cni/net.d/*.json >/dev/null 2>&1; then
    install -m 0644 "$repo/deploy/cni/10-kapal.conflist" /etc/cni/net.d/10-kapal.conflist
  fi
  if [ -d /run/systemd/system ]; then
    install -m 0644 "$repo/deploy/kapal.service" /etc/systemd/system/kapal.service
    systemctl daemon-reload
    systemctl restart kapal.service
  else
    # No systemd here: run it in the background with its embedded defaults.
    stop_background
    mkdir -p /var/log
    nohup /usr/local/bin/kapald >>/var/log/kapald.log 2>&1 </dev/null &
    echo $! >/run/kapald-demo.pid
  fi
  for _ in $(seq 1 100); do
    [ -S /run/kapal/kapal.sock ] && break
    sleep 0.1
  done
  echo
  echo "$ kapalctl version"
  kapalctl version
  echo
  echo "$ kapalctl info -o table"
  kapalctl info -o table
  echo
  demo_image
  echo "$ kapalctl pull $demo_ref"
  kapalctl pull "$demo_ref"
  echo
  echo "$ kapalctl images"
  kapalctl images
  echo
  echo "$ kapalctl run --rm --name demo-hello $demo_ref sh -c 'echo hello from pod \$(hostname)'"
  kapalctl run --rm --name demo-hello "$demo_ref" sh -c 'echo hello from pod $(hostname)'
  echo
  echo "$ kapalctl run -d --name demo-sleeper $demo_ref sleep 3600"
  kapalctl run -d --name demo-sleeper "$demo_ref" sleep 3600
  echo
  echo "$ kapalctl pods"
  kapalctl pods
  echo
  echo "$ kapalctl ps"
  kapalctl ps
  echo
  echo "$ kapalctl exec \$(kapalctl ps -q --name demo-sleeper) ls /"
  kapalctl exec "$(kapalctl ps -q --name demo-sleeper)" ls /
  echo
  echo "A shell in it: kapalctl exec -it \$(kapalctl ps -q --name demo-sleeper) sh   (or crictl exec -it)"
  echo
  docker_client
  echo "$ docker run --rm $demo_ref echo hello from the docker CLI   (DOCKER_HOST=unix:///run/kapal/docker.sock)"
  DOCKER_HOST=unix:///run/kapal/docker.sock "$docker_cli" run --rm "$demo_ref" echo hello from the docker CLI
  echo
  echo "$ docker ps -a"
  DOCKER_HOST=unix:///run/kapal/docker.sock "$docker_cli" ps -a
  echo
  echo "kapald is running with its default configuration (kapald --print-default-config shows it)."
  echo "Socket: unix:///run/kapal/kapal.sock   Metrics: http://127.0.0.1:9754/metrics"
  echo "Docker API: DOCKER_HOST=unix:///run/kapal/docker.sock $docker_cli ps"
  if [ -d /run/systemd/system ]; then
    echo "Logs: journalctl -u kapal   Stop: systemctl stop kapal"
  else
    echo "Logs: /var/log/kapald.log   Stop: deploy/kapal.sh stop"
  fi
}

# A registry on loopback with a busybox image built here (umoci from /bin/busybox, pushed with
# skopeo): the demo pulls without reaching any outside registry.
demo_registry_dir=/var/lib/kapal-demo-registry
demo_ref=127.0.0.1:5055/demo/busybox:latest
demo_image() {
  mkdir -p "$demo_registry_dir"
  cat >"$demo_registry_dir/config.yml" <<CONFIG
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $demo_registry_dir/storage}, delete: {enabled: true}}
http: {addr: 127.0.0.1:5055}
CONFIG
  if ! curl -sf http://127.0.0.1:5055/v2/ >/dev/null; then
    nohup docker-registry serve "$demo_registry_dir/config.yml" >>/var/log/kapal-demo-registry.log 2>&1 </dev/null &
    echo $! >/run/kapal-demo-registry.pid
    for _ in $(seq 1 100); do curl -sf http://127.0.0.1:5055/v2/ >/dev/null && break; sleep 0.1; done
  fi
  local work
  work=$(mktemp -d)
  (
    cd "$work"
    umoci init --layout oci >/dev/null
    umoci new --image oci:busybox >/dev/null
    umoci unpack --image oci:busybox bundle >/dev/null
    mkdir -p bundle/rootfs/bin
    cp /bin/busybox bundle/rootfs/bin/busybox
    for applet in sh echo ls cat sleep env hostname; do ln -sf busybox "bundle/rootfs/bin/$applet"; done
    umoci repack --image oci:busybox bundle >/dev/null
    umoci config --image oci:busybox --config.cmd /bin/sh >/dev/null
    skopeo copy -q --dest-tls-verify=false oci:oci:busybox "docker://$demo_ref"
  )
  rm -rf "$work"
  echo "Built $demo_ref from /bin/busybox and pushed it to a registry on 127.0.0.1:5055."
  echo
}

stop_background() {
  if [ -f /run/kapald-demo.pid ]; then
    local pid
    pid=$(cat /run/kapald-demo.pid)
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid"
      for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
    fi
    rm -f /run/kapald-demo.pid
  fi
}

stop() {
  # Pods outlive kapald by design; the demo's go with it.
  if [ -S /run/kapal/kapal.sock ] && command -v kapalctl >/dev/null; then
    kapalctl rmp --all >/dev/null || true
  fi
  if [ -d /run/systemd/system ] && systemctl is-active --quiet kapal.service 2>/dev/null; then
    systemctl stop kapal.service
  fi
  stop_background
  if [ -f /run/kapal-demo-registry.pid ]; then
    kill "$(cat /run/kapal-demo-registry.pid)" 2>/dev/null || true
    rm -f /run/kapal-demo-registry.pid
  fi
}

test_suite() {
  need_root "the test suite (it mounts, makes namespaces and runs containers)"
  build
  cd "$build_dir"
  # Each test has its own temporary root, socket and ports, so they may run in parallel.
  docker_client
  ctest -j "$jobs" --output-on-failure --timeout 900
}

case "${1:-}" in
  deps) deps ;;
  build) build ;;
  demo) demo ;;
  test) test_suite ;;
  stop) stop ;;
  *)
    sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
