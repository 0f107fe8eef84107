#!/usr/bin/env bash
# Pull time of kapald, containerd 1.6 (Debian bookworm's package) and containerd 2.1 (Debian
# sid's package, fetched with apt-get download and unpacked with dpkg-deb -x, never installed),
# in one run, each on its own root, state and socket under a temporary directory, pulling the
# same images from a docker-registry on 127.0.0.1:
#   - realistic: 7 gzip -6 layers of this machine's /usr files (bench/usr_image.py), where
#     inflate is most of the work;
#   - random: 3 gzip layers of random bytes (gzip stores them), where hashing and copying are.
# kapald pulls twice: as configured by default (a layer's files are synced in the background
# after its commit; its blob is fsynced before) and with `sync_layers_at_commit = true` (one
# syncfs before each layer's commit), each on its own root; containerd 2.1 too: as configured by
# default (no unpacked layer synced) and with `image_pull_with_sync_fs = true` (one syncfs after
# each layer's apply).
# Prints each one's median seconds, range and MB/s, the ratios, kapald's own split of its time
# (from its log, with its last realistic pull's layer timeline), the machine's floor for the
# realistic image (its 7 layers inflated with igzip and unpacked with GNU tar, all at once,
# from local disk) and the disk floor for the random one (each blob written and synced, once
# and twice).
#
#   bench/pull-bench.sh [ROUNDS]        (as root, after deploy/kapal.sh build)
#
# KAPALD_BEFORE=DIR (the folder of an earlier commit's kapald and kapal-shim) pulls with that
# kapald too. USR_IMAGE=DIR keeps the realistic image's OCI layout there between runs.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
rounds=${1:-3}

containerd21=$(sid_containerd)
start_registry
KAPALD_LOG_LEVEL=debug start_kapald  # debug: each pull's layer timeline
endpoints=("unix://$work/kapal/kapal.sock")
launch_kapald kapal-synced "$build/daemon" \
  "$(printf '[metrics]\naddress = ""\n[docker]\naddress = ""\n[images]\nsync_layers_at_commit = true')"
endpoints+=("unix://$work/kapal-synced/kapal.sock")
if [ -n "${KAPALD_BEFORE:-}" ]; then
  start_kapald_before "$KAPALD_BEFORE"
  endpoints+=("unix://$work/kapal-before/kapal.sock")
fi
start_containerd
endpoints+=("unix://$work/containerd/containerd.sock")
start_containerd_named containerd21 "$containerd21"
endpoints+=("unix://$work/containerd21/containerd.sock")
# containerd 2.1 told to sync each unpacked layer (one syncfs after each layer's apply; off by
# default): the like of kapald's sync_layers_at_commit.
start_containerd_named containerd21-synced "$containerd21" \
  "$(printf '[plugins."io.containerd.grpc.v1.cri"]\n  image_pull_with_sync_fs = true')"
endpoints+=("unix://$work/containerd21-synced/containerd.sock")

usr_image=${USR_IMAGE:-$work/usr-image}
if [ ! -f "$usr_image/index.json" ]; then
  rm -rf "$usr_image"
  python3 "$repo/bench/usr_image.py" "$usr_image" >"$work/usr-image.shape"
else
  echo "(reused $usr_image)" >"$work/usr-image.shape"
fi
skopeo copy -q --dest-tls-verify=false "oci:$usr_image:usr" "docker://127.0.0.1:$port/bench/usr:1"
usr_bytes=$(python3 -c "
import json,sys; d='$usr_image'; idx=json.load(open(d+'/index.json'))
m=json.load(open(d+'/blobs/'+idx['manifests'][0]['digest'].replace(':','/')))
print(sum(l['size'] for l in m['layers']))")
usr_shape=$(python3 -c "
import json; d='$usr_image'; idx=json.load(open(d+'/index.json'))
m=json.load(open(d+'/blobs/'+idx['manifests'][0]['digest'].replace(':','/')))
s=sorted((l['size'] for l in m['layers']), reverse=True)
print(f\"{len(s)} gzip -6 layers of /usr files (largest {s[0]/1e6:.0f} MB)\")")

# The random image's disk floor: the bytes kapald must have on disk when its pull returns, written
# at once from memory (the registry's files, in the page cache) by dd, then one sync; no network,
# no hashing, no inflate. COPIES "blob": each blob once (the content store's copy: kapald's
# default, whose unpacked files are synced after the pull); "blob file": twice, the unpacked
# file too (layers synced at commit). Median of ROUNDS, in seconds.
disk_floor() {  # disk_floor REPOSITORY TAG ROUNDS COPIES
  local repository=$1 tag=$2 rounds=$3 copies=$4 round digest copy times=() jobs=()
  local digests
  digests=$(curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json' \
    "http://127.0.0.1:$port/v2/$repository/manifests/$tag" |
    python3 -c 'import json,sys; print(" ".join(l["digest"] for l in json.load(sys.stdin)["layers"]))')
  for round in $(seq 1 "$rounds"); do
    rm -rf "$work/floor"
    mkdir -p "$work/floor"
    sync
    local start
    start=$(date +%s.%N)
    jobs=()
    for digest in $digests; do
      local hex=${digest#sha256:}
      for copy in $copies; do
        dd if="$work/registry/docker/registry/v2/blobs/sha256/${hex:0:2}/$hex/data" \
          of="$work/floor/$hex.$copy" bs=1M status=none &
        jobs+=($!)
      done
    done
    wait "${jobs[@]}"  # not a bare wait: the daemons are this shell's children too
    sync -f "$work/floor"
    times+=("$(python3 -c "print($(date +%s.%N) - $start)")")
  done
  rm -rf "$work/floor"
  printf '%s\n' "${times[@]}" | sort -n |
    awk '{a[NR]=$1} END {printf "%.2f s (%.2f-%.2f)", a[int((NR+1)/2)], a[1], a[NR]}'
}

echo "kapald $("$build/daemon/kapald" --version | awk '{print $2}'), containerd $(containerd --version | awk '{print $3}') (bookworm) and $("$containerd21/containerd" --version | awk '{print $3}') (sid), $(nproc) cores"

ratios() {  # ratios RESULT_FILE
  python3 - "$1" <<'PY'
import sys
rows = {}
for line in open(sys.argv[1]):
    fields = line.split()
    if len(fields) >= 2 and fields[0].startswith("unix://"):
        rows[fields[0].split("/")[-2]] = float(fields[1])
kapal = rows["kapal"]
for name, label in (("containerd", "containerd 1.6"), ("containerd21", "containerd 2.1"),
                    ("kapal-before", "kapald (before)")):
    if name in rows:
        print(f"  {label} / kapald time: {rows[name] / kapal:.2f}x")
if "kapal-synced" in rows and "containerd21" in rows:
    print(f"  containerd 2.1 / kapald with layers synced at commit: "
          f"{rows['containerd21'] / rows['kapal-synced']:.2f}x")
if "kapal-synced" in rows and "containerd21-synced" in rows:
    print(f"  both syncing each layer (containerd 2.1 image_pull_with_sync_fs / kapald "
          f"sync_layers_at_commit): {rows['containerd21-synced'] / rows['kapal-synced']:.2f}x")
PY
}

echo
kapald_cpu_before=$(cpu_seconds "$kapald_pid")
registry_cpu_before=$(cpu_seconds "$registry_pid")
"$build/bench/kapal-pull-bench" --registry-port "$port" --rounds "$rounds" \
  --image "127.0.0.1:$port/bench/usr:1" --image-bytes "$usr_bytes" --describe "$usr_shape" \
  "${endpoints[@]}" | tee "$work/result-usr"
ratios "$work/result-usr"
python3 -c "print(f'CPU per realistic pull: kapald {($(cpu_seconds "$kapald_pid") - $kapald_cpu_before) / $rounds:.2f} core-s (removal included), the registry {($(cpu_seconds "$registry_pid") - $registry_cpu_before) / ($rounds * ${#endpoints[@]}):.2f} core-s, on $(nproc) cores')"
echo "kapald's split of its last realistic pull (download: wall seconds summed over parallel layers; unpack: CPU seconds of the unpack threads):"
grep -o 'pulled 127.0.0.1:[0-9]*/bench/usr:1.*' "$work/kapald.log" | tail -1 | sed 's/^/  /'
echo "and when each of its layers downloaded and was staged (seconds since the pull began):"
grep -o 'pull 127.0.0.1:[0-9]*/bench/usr:1, layers by start: .*' "$work/kapald.log" | tail -1 |
  sed 's/^.*layers by start: //; s/; /\n/g' | sed 's/^/  /'

echo "kapald's peak resident memory so far (VmHWM, all pulls included): $(awk '/VmHWM/ {printf "%.1f MiB", $2 / 1024}' "/proc/$kapald_pid/status")"

# The floor: the same layers from local disk, inflated by igzip and unpacked by GNU tar, all at
# once (what this machine's cores and disk allow without any network or hashing).
mkdir -p "$work/floor"
sync
floor_start=$(date +%s.%N)
i=0
floor_jobs=()
for blob in $(python3 -c "
import json; d='$usr_image'; idx=json.load(open(d+'/index.json'))
m=json.load(open(d+'/blobs/'+idx['manifests'][0]['digest'].replace(':','/')))
print(' '.join(d+'/blobs/'+l['digest'].replace(':','/') for l in m['layers']))"); do
  mkdir -p "$work/floor/$i"
  (igzip -dc "$blob" | tar -x -C "$work/floor/$i") &
  floor_jobs+=($!)
  i=$((i + 1))
done
wait "${floor_jobs[@]}"  # not a bare wait: the daemons are this shell's children too
floor_end=$(date +%s.%N)
sync
synced_end=$(date +%s.%N)
python3 -c "print(f'floor (parallel igzip | tar -x of the {$i} layers from local disk): {$floor_end - $floor_start:.2f} s, then {$synced_end - $floor_end:.2f} s to sync them')"
rm -rf "$work/floor"

echo
"$build/bench/kapal-pull-bench" --registry-port "$port" --rounds "$rounds" "${endpoints[@]}" |
  tee "$work/result-random"
ratios "$work/result-random"
echo "disk floor (all at once from memory, then sync), each blob written once: $(disk_floor bench/pull 3x50mb "$rounds" blob); twice, as blob and as file: $(disk_floor bench/pull 3x50mb "$rounds" "blob file")"
