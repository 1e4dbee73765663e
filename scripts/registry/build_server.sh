#!/usr/bin/env bash
# Build the Kubeflow Model Registry server (Go) from the Go module proxy into a cache dir.
#
# Why the extra steps (all measured on this machine, see the registry report):
#  * The Go module proxy only serves some tags of github.com/kubeflow/model-registry
#    (v0.2.22, v0.3.0, v0.3.10, v0.3.12, v0.3.14 answered; the rest 403). v0.3.14 is the newest.
#  * sum.golang.org has no entry for those versions -> GONOSUMDB for this module only.
#  * Since the "hub" rename the module path is github.com/kubeflow/hub, so `go install ...@v`
#    refuses it: we copy the module dir and `go build` inside it.
#  * The module zip omits the nested modules pkg/openapi and catalog/pkg/openapi (their own
#    go.mod): they are generated code, so we regenerate them with openapi-generator 7.17.0
#    (the version recorded in .openapi-generator/VERSION), exactly as upstream's Makefile does,
#    and add back the 3 tiny hand-written helpers upstream keeps next to them.
#  * Every tag on the proxy serves REST /api/model_registry/v1alpha3 only: that is what every GA
#    RHOAI release (2.16 -> 3.5) serves, so the DEFAULT flavour is built with no source change.
#
# Flavours (first argument or $DMC_MR_FLAVOR), each under its own cache key:
#   upstream  (default) v0.3.14 exactly as published: REST /api/model_registry/v1alpha3.
#   v1-approx           an APPROXIMATION of a v1 server (upstream >= 0.3.15, RHOAI 3.6+), which the
#                       Go proxy does not serve: the same v0.3.14 with its route prefix renamed to
#                       /api/model_registry/v1 (one sed in the generated router). Handlers, storage
#                       and migrations stay upstream's; real v1 servers also dropped experiment
#                       tracking, which we never call.
# The binary is built in a temp dir and renamed into place, so concurrent builds never clash.
set -euo pipefail

MR_VERSION="${DMC_MR_VERSION:-v0.3.14}"
FLAVOR="${1:-${DMC_MR_FLAVOR:-upstream}}"
case "$FLAVOR" in upstream|v1-approx) ;; *) echo "unknown flavour $FLAVOR (upstream|v1-approx)" >&2; exit 64 ;; esac
OPENAPI_GENERATOR_VERSION="${DMC_OPENAPI_GENERATOR_VERSION:-7.17.0}"
CACHE_ROOT="${DMC_CACHE_DIR:-$HOME/.cache/dmc}"
OUT_DIR="$CACHE_ROOT/model-registry/$MR_VERSION-$FLAVOR"
BIN="$OUT_DIR/model-registry"
TOOLS="$CACHE_ROOT/tools"

if [[ -x "$BIN" ]]; then
  echo "$BIN"
  exit 0
fi

log() { echo "[build_server] $*" >&2; }
need_apt() {
  log "installing $* with apt-get"
  if [[ $(id -u) -eq 0 ]]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >&2
  else
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >&2
  fi
}

command -v go >/dev/null || { [[ -x /usr/local/go/bin/go ]] && export PATH=/usr/local/go/bin:$PATH; }
command -v go >/dev/null || need_apt golang-go
command -v java >/dev/null || need_apt default-jre-headless

export GONOSUMDB="github.com/kubeflow/model-registry${GONOSUMDB:+,$GONOSUMDB}"
# go.mod asks for go 1.26; an older local go fetches that toolchain from the module proxy.
export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"
export GOFLAGS="${GOFLAGS:--buildvcs=false}"

start=$(date +%s)
mkdir -p "$CACHE_ROOT/model-registry" "$TOOLS"
WORK=$(mktemp -d "$CACHE_ROOT/model-registry/.tmp-$MR_VERSION-$FLAVOR-XXXXXX")
trap 'rm -rf "$WORK"' EXIT

log "downloading github.com/kubeflow/model-registry@$MR_VERSION from the Go module proxy"
tmpmod=$(mktemp -d)
( cd "$tmpmod" && go mod download -json "github.com/kubeflow/model-registry@$MR_VERSION" ) > "$WORK/download.json"
rm -rf "$tmpmod"
MOD_DIR=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d.get("Dir") or sys.exit(d.get("Error")))' "$WORK/download.json")

SRC="$WORK/src"
cp -r "$MOD_DIR" "$SRC"
chmod -R u+w "$SRC"

GENVENV="$TOOLS/openapi-generator-$OPENAPI_GENERATOR_VERSION"
# A venv cannot be renamed into place (its scripts hard-code their path): install under a lock.
exec 9>"$TOOLS/.install.lock"
flock 9
if [[ ! -x "$GENVENV/bin/openapi-generator-cli" ]]; then
  log "installing openapi-generator-cli==$OPENAPI_GENERATOR_VERSION (PyPI, bundles the jar)"
  rm -rf "$GENVENV"
  python3 -m venv "$GENVENV" || { need_apt python3-venv && python3 -m venv "$GENVENV"; }
  "$GENVENV/bin/pip" install -q "openapi-generator-cli==$OPENAPI_GENERATOR_VERSION" >&2
fi
if [[ ! -x "$TOOLS/bin/goimports" ]]; then
  log "installing goimports"
  GOBIN="$TOOLS/bin" go install golang.org/x/tools/cmd/goimports@v0.30.0 >&2
fi
flock -u 9
GEN="$GENVENV/bin/openapi-generator-cli"
PROPS="isGoSubmodule=true,enumClassPrefix=true,useOneOfDiscriminatorLookup=true,generateUnmarshalJSON=false"

log "generating pkg/openapi"
( cd "$SRC" && "$GEN" generate -i api/openapi/model-registry.yaml -g go -o pkg/openapi \
    --package-name openapi --ignore-file-override ./.openapi-generator-ignore \
    --additional-properties="$PROPS" ) > "$WORK/gen-pkg-openapi.log" 2>&1
printf 'module github.com/kubeflow/hub/pkg/openapi\n\ngo 1.23\n' > "$SRC/pkg/openapi/go.mod"
cat > "$SRC/pkg/openapi/factories.go" <<'GO'
package openapi

// Hand-written upstream (not produced by openapi-generator).
func NewArtifactCreateWithDefaults() *ArtifactCreate { return &ArtifactCreate{} }

func NewArtifactUpdateWithDefaults() *ArtifactUpdate { return &ArtifactUpdate{} }

func NewArtifactWithDefaults() *Artifact { return &Artifact{} }
GO

log "generating catalog/pkg/openapi"
( cd "$SRC/catalog" && "$GEN" generate -i ../api/openapi/catalog.yaml -g go -o pkg/openapi \
    --package-name openapi --ignore-file-override ./.openapi-generator-ignore \
    --additional-properties="$PROPS" ) > "$WORK/gen-catalog-openapi.log" 2>&1
printf 'module github.com/kubeflow/hub/catalog/pkg/openapi\n\ngo 1.23\n' > "$SRC/catalog/pkg/openapi/go.mod"
cat > "$SRC/catalog/pkg/openapi/sortable.go" <<'GO'
package openapi

// Hand-written upstream (not produced by openapi-generator).
type Sortable interface {
	SortValue(field OrderByField) string
}

func (s CatalogSource) SortValue(field OrderByField) string {
	switch field {
	case ORDERBYFIELD_ID:
		return s.Id
	case ORDERBYFIELD_NAME:
		return s.Name
	}
	return ""
}

func (m ModelPreviewResult) SortValue(field OrderByField) string {
	switch field {
	case ORDERBYFIELD_ID, ORDERBYFIELD_NAME:
		return m.Name
	}
	return ""
}

func (m AssetPreviewResult) SortValue(field OrderByField) string {
	switch field {
	case ORDERBYFIELD_ID, ORDERBYFIELD_NAME:
		return m.Name
	}
	return ""
}

// AgentArtifact is a oneOf with a single member, which openapi-generator simplifies away.
type AgentArtifact = AgentTemplateArtifact
GO
"$TOOLS/bin/goimports" -w "$SRC/pkg/openapi" "$SRC/catalog/pkg/openapi"

if [[ "$FLAVOR" == v1-approx ]]; then
  log "v1 APPROXIMATION: renaming the route prefix v1alpha3 -> v1 (the only edit)"
  sed -i 's#"/api/model_registry/v1alpha3/#"/api/model_registry/v1/#g' \
    "$SRC/internal/server/openapi/api_model_registry_service.go"
else
  log "upstream: no source change (serves /api/model_registry/v1alpha3)"
fi

log "go build (several minutes on 2 cores when the build cache is cold)"
( cd "$SRC" && go build -o "$WORK/model-registry" . ) >&2
echo "$MR_VERSION ($FLAVOR) built in $(( $(date +%s) - start )) s" > "$WORK/BUILD_INFO"
mkdir -p "$WORK/out"
mv "$WORK/model-registry" "$WORK/BUILD_INFO" "$WORK/out/"
# Atomic publish: rename the whole folder; if another build won the race, keep theirs.
mv -T "$WORK/out" "$OUT_DIR" 2>/dev/null || log "another build finished first; using it"
log "$(cat "$OUT_DIR/BUILD_INFO")"
echo "$BIN"
