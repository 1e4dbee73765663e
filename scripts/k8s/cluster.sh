#!/usr/bin/env bash
# A real one-node Kubernetes cluster on loopback, started and stopped by the project:
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, containerd + runc, kubelet.
# Kubernetes binaries: built from the k8s.io/kubernetes Go module (build_kubernetes.sh, cached);
# etcd / containerd / runc / CNI plugins: Debian packages. Certificates: openssl. RBAC on.
# The node advertises a fake `nvidia.com/gpu: 1` and carries the chart's default GPU taint
# (deploy/helm/.../values.yaml placement.toleration), so the real scheduler decides GPU placement.
# Every listener binds 127.0.0.1; pods must use hostNetwork (the only CNI plugin is loopback).
# DMC_K8S_CPU_NODE=1 adds a second, untainted node without GPUs (its own containerd + kubelet, pod
# cgroups outside the first kubelet's): CPU pods (run pod, CPU steps) land there, so a GPU step
# reaches the GPU node only through its GPU request and toleration, as on a real cluster.
#
#   scripts/k8s/cluster.sh start        # prints the admin kubeconfig path
#   scripts/k8s/cluster.sh stop         # stops everything it started, removes pod containers
#   scripts/k8s/cluster.sh status       # exit 0 when the node is Ready
#   scripts/k8s/cluster.sh import TAR   # ctr import an image archive into every node's containerd
#   scripts/k8s/cluster.sh import-docker NAME:TAG   # the same, streamed from $DOCKER_HOST
#   scripts/k8s/cluster.sh clean        # stop + delete the state dir
#
# Env: DMC_K8S_STATE_DIR (default /tmp/dmc-k8s-$UID), DMC_K8S_NODE (default dmc-node),
#      DMC_K8S_GPU_TAINT (default: from the chart's values), DMC_K8S_VERSION,
#      DMC_K8S_CPU_NODE (1: also a CPU node, DMC_K8S_CPU_NODE_NAME, default dmc-cpu).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT_DIR="$(cd "$HERE/../.." && pwd)"
STATE="${DMC_K8S_STATE_DIR:-/tmp/dmc-k8s-$(id -u)}"
NODE="${DMC_K8S_NODE:-dmc-node}"
PKI="$STATE/pki"
CTRD_SOCK="$STATE/run/containerd/containerd.sock"
CPU_NODE="${DMC_K8S_CPU_NODE_NAME:-dmc-cpu}"
CPU_STATE="$STATE/nodes/$CPU_NODE"
CPU_CTRD_SOCK="$CPU_STATE/run/containerd/containerd.sock"
KUBECONFIG_ADMIN="$STATE/admin.kubeconfig"
PAUSE_REF="registry.k8s.io/pause:3.10"
COMPONENTS=(etcd kube-apiserver containerd kube-controller-manager kube-scheduler kubelet containerd-cpu kubelet-cpu)

log() { echo "[k8s] $*" >&2; }
die() { log "$*"; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pidfile() { echo "$STATE/run/$1.pid"; }
alive() { local f; f=$(pidfile "$1"); [[ -f "$f" ]] && kill -0 "$(cat "$f")" 2>/dev/null; }
kubectl_() { kubectl --kubeconfig "$KUBECONFIG_ADMIN" "$@"; }

ensure_packages() {
  local missing=()
  command -v etcd >/dev/null || missing+=(etcd-server)
  command -v containerd >/dev/null || missing+=(containerd)
  command -v runc >/dev/null || missing+=(runc)
  [[ -x /usr/lib/cni/loopback ]] || missing+=(containernetworking-plugins)
  command -v kubectl >/dev/null || die "kubectl not found"
  command -v openssl >/dev/null || missing+=(openssl)
  if ((${#missing[@]})); then
    [[ $(id -u) -eq 0 ]] || die "needs root to install ${missing[*]}"
    log "installing ${missing[*]} (Debian)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2
  fi
}

# mkcert NAME SUBJECT [SANS]: key + certificate signed by the cluster CA.
mkcert() {
  local name="$1" subj="$2" sans="${3:-}" ext="$PKI/$1.ext"
  openssl genrsa -out "$PKI/$name.key" 2048 2>/dev/null
  openssl req -new -key "$PKI/$name.key" -subj "$subj" -out "$PKI/$name.csr" 2>/dev/null
  { echo "basicConstraints=CA:FALSE"; echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=serverAuth,clientAuth"; [[ -n "$sans" ]] && echo "subjectAltName=$sans"; } > "$ext"
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
    -days 30 -extfile "$ext" -out "$PKI/$name.crt" 2>/dev/null
  rm -f "$PKI/$name.csr" "$ext"
}

make_pki() {
  [[ -f "$PKI/done" ]] && return 0
  log "certificates (openssl)"
  rm -rf "$PKI"; mkdir -p "$PKI"; chmod 700 "$PKI"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$PKI/ca.key" -out "$PKI/ca.crt" -days 30 \
    -subj "/CN=dmc-local-ca" 2>/dev/null
  mkcert apiserver "/CN=kube-apiserver" \
    "IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  mkcert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"
  mkcert admin "/O=system:masters/CN=dmc-admin"
  mkcert controller-manager "/CN=system:kube-controller-manager"
  mkcert scheduler "/CN=system:kube-scheduler"
  mkcert kubelet "/O=system:nodes/CN=system:node:$NODE" "IP:127.0.0.1,DNS:$NODE,DNS:localhost"
  mkcert kubelet-cpu "/O=system:nodes/CN=system:node:$CPU_NODE" "IP:127.0.0.1,DNS:$CPU_NODE,DNS:localhost"
  openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
  openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
  touch "$PKI/done"
}

kubeconfig() {  # kubeconfig OUT CERTNAME
  local out="$1" cert="$2" server="https://127.0.0.1:$(cat "$STATE/apiserver_port")"
  kubectl config --kubeconfig "$out" set-cluster dmc --server "$server" --certificate-authority "$PKI/ca.crt" --embed-certs >/dev/null
  kubectl config --kubeconfig "$out" set-credentials "$cert" --client-certificate "$PKI/$cert.crt" --client-key "$PKI/$cert.key" --embed-certs >/dev/null
  kubectl config --kubeconfig "$out" set-context dmc --cluster dmc --user "$cert" >/dev/null
  kubectl config --kubeconfig "$out" use-context dmc >/dev/null
}

spawn() {  # spawn NAME CMD...: detached, logs to $STATE/log/NAME.log, pid in $STATE/run/NAME.pid
  local name="$1"; shift
  alive "$name" && return 0
  setsid "$@" >"$STATE/log/$name.log" 2>&1 </dev/null &
  echo $! > "$(pidfile "$name")"
}

wait_for() {  # wait_for WHAT SECONDS CMD...
  local what="$1" secs="$2"; shift 2
  local i
  for ((i = 0; i < secs * 2; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.5; done
  die "$what not ready after ${secs}s (logs: $STATE/log)"
}

gpu_taint() {
  if [[ -n "${DMC_K8S_GPU_TAINT:-}" ]]; then echo "$DMC_K8S_GPU_TAINT"; return; fi
  python3 - "$ROOT_DIR/deploy/helm/dagster-model-compression/values.yaml" <<'PY'
import sys, yaml
t = yaml.safe_load(open(sys.argv[1]))["placement"]["toleration"]
print(f"{t['key']}={t.get('value') or ''}:{t['effect']}" if t.get("key") else "")
PY
}

pause_image() {
  local cache="${DMC_CACHE_DIR:-$HOME/.cache/dmc}/k8s-pause" tar
  tar="$cache/pause-$(sha256sum "$HERE/pause/main.go" | cut -c1-12).tar"
  if [[ ! -f "$tar" ]]; then
    mkdir -p "$cache"
    local tmp; tmp=$(mktemp -d)
    (cd "$HERE/pause" && CGO_ENABLED=0 GOFLAGS=-buildvcs=false go build -ldflags "-s -w" -o "$tmp/pause" .)
    python3 "$HERE/oci_image.py" "$tmp/pause.tar" "$PAUSE_REF" /pause "$tmp/pause=/pause"
    mv "$tmp/pause.tar" "$tar"; rm -rf "$tmp"
  fi
  echo "$tar"
}

import_into() { ctr --address "$1" -n k8s.io images import --no-unpack=false "$2" >&2; }

# import_docker IMAGE: `docker save` streamed into the first node's containerd (no archive on disk).
# Disk: the layer blobs are hard-linked into the next node's store and that node imports the
# first one's OCI export (digests known up front, so containerd writes no blob twice); blobs are
# dropped once unpacked, so each node keeps one copy of the image: its snapshots.
import_docker() {
  local image="$1" prev="" prev_sock="" sock dir blobs
  for sock in "$CTRD_SOCK" "$CPU_CTRD_SOCK"; do
    [[ -S "$sock" ]] || continue
    dir="${sock%/run/containerd/containerd.sock}"
    blobs="$dir/containerd/root/io.containerd.content.v1.content/blobs/sha256"
    mkdir -p "$blobs"
    if [[ -z "$prev" ]]; then
      /usr/bin/docker save "$image" | import_into "$sock" -
    else
      for f in "$prev"/*; do [[ -e "$blobs/${f##*/}" ]] || ln "$f" "$blobs/"; done
      ctr --address "$prev_sock" -n k8s.io images export - "docker.io/library/$image" | import_into "$sock" -
    fi
    prev="$blobs" prev_sock="$sock"
  done
  for sock in "$CTRD_SOCK" "$CPU_CTRD_SOCK"; do
    [[ -S "$sock" ]] || continue
    local manifest
    manifest=$(ctr --address "$sock" -n k8s.io images ls | awk -v i="docker.io/library/$image" '$1 == i {print $3}')
    [[ -n "$manifest" ]] || die "image $image not found in $sock after import"
    python3 - "$sock" "$manifest" <<'PY' | xargs -r ctr --address "$sock" -n k8s.io content rm >/dev/null
import json, subprocess, sys
sock, todo = sys.argv[1], [sys.argv[2]]
while todo:  # an index names manifests, a manifest names layers
    doc = json.loads(subprocess.run(["ctr", "--address", sock, "-n", "k8s.io", "content", "get", todo.pop()],
                                    check=True, capture_output=True).stdout)
    todo += [m["digest"] for m in doc.get("manifests", [])]
    for layer in doc.get("layers", []):
        print(layer["digest"])
PY
  done
}
# Every node's containerd, in parallel.
import_image() {
  local pids=() sock
  for sock in "$CTRD_SOCK" "$CPU_CTRD_SOCK"; do
    [[ -S "$sock" ]] || continue
    import_into "$sock" "$1" & pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
}

# node_up NODE DIR SUFFIX CERT EXTRA_KUBELET_YAML: a containerd + kubelet pair with its state under DIR.
node_up() {
  local node="$1" dir="$2" sfx="$3" cert="$4" extra="$5"
  local sock="$dir/run/containerd/containerd.sock" p
  mkdir -p "$dir"/{kubelet,pod-logs,containerd/root,run/containerd,cni/net.d}
  for p in kubelet_port kubelet_healthz_port; do [[ -f "$dir/$p" ]] || free_port > "$dir/$p"; done
  kubeconfig "$STATE/$cert.kubeconfig" "$cert"
  # containerd (its own instance, socket and state under $STATE; never the host's).
  cat > "$dir/cni/net.d/10-loopback.conflist" <<JSON
{"cniVersion": "0.4.0", "name": "dmc-loopback", "plugins": [{"type": "loopback"}]}
JSON
  cat > "$dir/containerd.toml" <<TOML
version = 2
root = "$dir/containerd/root"
state = "$dir/run/containerd/state"
[grpc]
  address = "$sock"
[ttrpc]
  address = "$dir/run/containerd/ttrpc.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_REF"
  # No CAP_SYS_RESOURCE here: runc must not lower oom_score_adj below the parent's.
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$dir/cni/net.d"
TOML
  spawn "containerd$sfx" containerd --config "$dir/containerd.toml"
  wait_for "containerd$sfx" 60 ctr --address "$sock" version
  ctr --address "$sock" -n k8s.io images ls -q | grep -qx "$PAUSE_REF" || import_into "$sock" "$(pause_image)"

  cat > "$dir/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: $(cat "$dir/kubelet_port")
healthzBindAddress: 127.0.0.1
healthzPort: $(cat "$dir/kubelet_healthz_port")
readOnlyPort: 0
containerRuntimeEndpoint: unix://$sock
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
tlsCertFile: $PKI/$cert.crt
tlsPrivateKeyFile: $PKI/$cert.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
podLogsDir: $dir/pod-logs
# The host disk is shared with other work: never evict pods or delete images because it is
# nearly full (a 1% threshold on a big disk made the kubelet delete a just-imported image).
evictionHard: {memory.available: "100Mi", nodefs.available: "1Mi", imagefs.available: "1Mi"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
clusterDomain: cluster.local
$extra
YAML
  spawn "kubelet$sfx" "$bin/kubelet" --config "$dir/kubelet.yaml" --kubeconfig "$STATE/$cert.kubeconfig" \
    --hostname-override "$node" --node-ip 127.0.0.1 --root-dir "$dir/kubelet" --cert-dir "$dir/kubelet/pki"
  wait_for "node $node" 180 bash -c "kubectl --kubeconfig '$KUBECONFIG_ADMIN' get node '$node' -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -qx True"
  # The kubelet refuses a loopback node IP and so leaves the node without addresses; the
  # apiserver then cannot reach it for `kubectl logs`/exec. 127.0.0.1 is where it listens.
  kubectl_ patch node "$node" --subresource=status --type=merge -p \
    "{\"status\":{\"addresses\":[{\"type\":\"InternalIP\",\"address\":\"127.0.0.1\"},{\"type\":\"Hostname\",\"address\":\"$node\"}]}}" >/dev/null
}

start() {
  ensure_packages
  command -v go >/dev/null || export PATH=/usr/local/go/bin:$PATH
  local bin; bin="$(bash "$HERE/build_kubernetes.sh")"
  mkdir -p "$STATE"/{run,log,etcd}
  make_pki
  [[ -f "$STATE/apiserver_port" ]] || free_port > "$STATE/apiserver_port"
  local api_port etcd_port peer_port
  api_port=$(cat "$STATE/apiserver_port")
  for p in etcd_port etcd_peer_port cm_port sched_port; do
    [[ -f "$STATE/$p" ]] || free_port > "$STATE/$p"
  done
  etcd_port=$(cat "$STATE/etcd_port"); peer_port=$(cat "$STATE/etcd_peer_port")
  kubeconfig "$KUBECONFIG_ADMIN" admin
  kubeconfig "$STATE/controller-manager.kubeconfig" controller-manager
  kubeconfig "$STATE/scheduler.kubeconfig" scheduler

  spawn etcd etcd --name dmc --data-dir "$STATE/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "dmc=http://127.0.0.1:$peer_port" --quota-backend-bytes 1073741824
  spawn kube-apiserver "$bin/kube-apiserver" --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$api_port" \
    --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
    --client-ca-file "$PKI/ca.crt" --authorization-mode Node,RBAC --allow-privileged=true \
    --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-cluster-ip-range 10.96.0.0/24 --enable-priority-and-fairness=false \
    --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" \
    --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority "$PKI/ca.crt" --kubelet-preferred-address-types InternalIP,Hostname
  wait_for kube-apiserver 120 kubectl_ get --raw /readyz

  spawn kube-controller-manager "$bin/kube-controller-manager" --kubeconfig "$STATE/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$STATE/controller-manager.kubeconfig" --authorization-kubeconfig "$STATE/controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$(cat "$STATE/cm_port")" --leader-elect=false \
    --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
    --use-service-account-credentials=true --controllers '*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller'
  spawn kube-scheduler "$bin/kube-scheduler" --kubeconfig "$STATE/scheduler.kubeconfig" \
    --authentication-kubeconfig "$STATE/scheduler.kubeconfig" --authorization-kubeconfig "$STATE/scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$(cat "$STATE/sched_port")" --leader-elect=false

  node_up "$NODE" "$STATE" "" kubelet ""
  if [[ "${DMC_K8S_CPU_NODE:-0}" == 1 ]]; then
    [[ -f "$PKI/kubelet-cpu.crt" ]] || mkcert kubelet-cpu "/O=system:nodes/CN=system:node:$CPU_NODE" "IP:127.0.0.1,DNS:$CPU_NODE,DNS:localhost"
    # Pod cgroups are left to containerd (/k8s.io/<id>): the GPU node's kubelet removes any pod
    # cgroup under its /kubepods that it does not know, so this kubelet must not use it.
    node_up "$CPU_NODE" "$CPU_STATE" -cpu kubelet-cpu $'cgroupsPerQOS: false\nenforceNodeAllocatable: []'
  fi
  # Fake GPU + the chart's GPU taint: the real scheduler decides GPU placement.
  kubectl_ patch node "$NODE" --subresource=status --type=json \
    -p '[{"op":"add","path":"/status/capacity/nvidia.com~1gpu","value":"1"},{"op":"add","path":"/status/allocatable/nvidia.com~1gpu","value":"1"}]' >/dev/null
  local taint; taint="$(gpu_taint)"
  [[ -n "$taint" ]] && kubectl_ taint node "$NODE" "$taint" --overwrite >/dev/null
  wait_for "service account default" 60 kubectl_ -n default get serviceaccount default
  echo "$KUBECONFIG_ADMIN"
}

stop() {
  local pid
  # Pod containers first (kubelet would restart them), through containerd itself.
  local sfx sock t
  for sfx in "" -cpu; do
    if alive "kubelet$sfx"; then kill "$(cat "$(pidfile "kubelet$sfx")")" 2>/dev/null || true; fi
  done
  for sfx in "" -cpu; do
    alive "containerd$sfx" || continue
    sock="$CTRD_SOCK"; [[ -n "$sfx" ]] && sock="$CPU_CTRD_SOCK"
    for t in $(ctr --address "$sock" -n k8s.io tasks ls -q 2>/dev/null); do
      ctr --address "$sock" -n k8s.io tasks kill -s SIGKILL "$t" >/dev/null 2>&1 || true
    done
    sleep 1
    for t in $(ctr --address "$sock" -n k8s.io tasks ls -q 2>/dev/null); do
      ctr --address "$sock" -n k8s.io tasks delete -f "$t" >/dev/null 2>&1 || true
    done
  done
  local c
  for ((c = ${#COMPONENTS[@]} - 1; c >= 0; c--)); do
    local name="${COMPONENTS[$c]}"
    if alive "$name"; then
      pid=$(cat "$(pidfile "$name")"); kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
      kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$(pidfile "$name")"
  done
  # Shims of this containerd only (matched by its unique socket path), then its mounts.
  for pid in $(ps -eo pid=,args= | awk -v s="$STATE/" 'index($0, "containerd-shim") && index($0, s) {print $1}'); do
    kill -9 "$pid" 2>/dev/null || true
  done
  awk -v s="$STATE/" 'index($2, s) == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
}

status() { kubectl_ get node "$NODE" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null | grep -qx True; }

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  import) import_image "${2:?image archive}" ;;
  import-docker) import_docker "${2:?image name:tag (DOCKER_HOST: the daemon that has it)}" ;;
  kubeconfig) echo "$KUBECONFIG_ADMIN" ;;
  clean) stop; rm -rf --one-file-system "$STATE" ;;
  *) echo "usage: $0 start|stop|status|import TAR|import-docker NAME:TAG|kubeconfig|clean" >&2; exit 2 ;;
esac
