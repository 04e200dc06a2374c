#!/usr/bin/env bash
# tools/build.sh NAME: build one pinned server (nomad, consul, gitea, versitygw) from its tools module
# under tools/NAME, once per version, into a cache outside the clone, and link it into bin/.
#
# The cache is keyed by name, version and a hash of the tools module's go.mod and go.sum, so
# a fresh clone of the same revision reuses the binary instead of rebuilding it for minutes,
# and a change of pin or of build recipe builds again.
#
# The module's LICENSE is kept beside the binary and checked on every run (tools/license.sh):
# a pin of a release that is not open source (Nomad >= 1.7, Consul >= 1.17: BUSL) fails here,
# so `make test` and `make demo` fail with it.
set -euo pipefail

name=${1:?usage: tools/build.sh nomad|consul|gitea|versitygw}
root=$(cd "$(dirname "$0")/.." && pwd)
mod="$root/tools/$name"
[ -f "$mod/go.mod" ] || { echo "tools/build.sh: no tools module for '$name' at $mod" >&2; exit 2; }

case "$name" in
  nomad)  pkg=github.com/hashicorp/nomad ;;
  consul) pkg=github.com/hashicorp/consul ;;
  gitea)  pkg=code.gitea.io/gitea ;;
  # An S3-compatible server on a POSIX directory, for the archive's tests (Apache-2.0).
  versitygw) pkg=github.com/versity/versitygw main=$pkg/cmd/versitygw ;;
  *) echo "tools/build.sh: unknown tool '$name'" >&2; exit 2 ;;
esac
main=${main:-$pkg} # the package of the binary, within the module pkg

# The pinned version, read from the tools module's require line (no module graph needed).
version=$(awk -v p="$pkg" '$1 == p && $2 ~ /^v/ { print $2; exit }' "$mod/go.mod")
[ -n "$version" ] || { echo "tools/build.sh: no require line for $pkg in $mod/go.mod" >&2; exit 2; }
key=$(cat "$mod/go.mod" "$mod/go.sum" | sha256sum | cut -c1-12)
cache="${ALBATROS_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/albatros/tools}/$name-$version-$key"
mkdir -p "$root/bin"

if [ ! -x "$cache/$name" ]; then
  echo "tools/build.sh: building $name $version into $cache (a few minutes on a cold cache)" >&2
  start=$(date +%s)
  tmp="$cache.tmp.$$"
  rm -rf "$tmp"; mkdir -p "$tmp"
  trap 'rm -rf "$tmp"' EXIT
  cd "$mod"
  case "$name" in
    gitea)
      # Gitea's templates, locales and public assets are read from STATIC_ROOT_PATH at run
      # time (no bindata tag); copy them beside the binary so the cache is self-contained.
      CGO_ENABLED=1 CGO_CFLAGS="-O2 -g -DSQLITE_MAX_VARIABLE_NUMBER=32766" \
        go build -tags 'sqlite sqlite_unlock_notify' \
        -ldflags "-s -w -X main.Version=${version#v} -X 'main.Tags=sqlite sqlite_unlock_notify'" \
        -o "$tmp/$name" "$pkg"
      src=$(go list -m -f '{{.Dir}}' "$pkg")
      mkdir -p "$tmp/static"
      for d in templates options public; do
        [ -d "$src/$d" ] && cp -R "$src/$d" "$tmp/static/"
      done
      chmod -R u+w "$tmp/static"
      ;;
    *)
      go build -o "$tmp/$name" "$main"
      ;;
  esac
  cp "$(go list -m -f '{{.Dir}}' "$pkg")/LICENSE" "$tmp/LICENSE"
  rm -rf "$cache"
  mv "$tmp" "$cache"
  trap - EXIT
  echo "tools/build.sh: built $name $version in $(( $(date +%s) - start ))s" >&2
fi

if [ ! -f "$cache/LICENSE" ]; then # a cache built before the licence was kept
  cp "$(cd "$mod" && go list -m -f '{{.Dir}}' "$pkg")/LICENSE" "$cache/LICENSE"
fi
licence=$("$root/tools/license.sh" "$cache/LICENSE") || {
  echo "tools/build.sh: $name $version is not open source; pin an open-source release in tools/$name/go.mod" >&2
  exit 1
}
echo "tools/build.sh: $name $version ($licence)" >&2
# Gitea's frontend (its JavaScript and CSS, not in the Go module) is built from the module's
# own web_src into the static root, once per source (tools/gitea-frontend.sh keeps a stamp).
if [ "$name" = gitea ]; then
  "$root/tools/gitea-frontend.sh" "$(cd "$mod" && go list -m -f '{{.Dir}}' "$pkg")" "$cache/static"
fi
ln -sfn "$cache/$name" "$root/bin/$name"
if [ -d "$cache/static" ]; then
  ln -sfn "$cache/static" "$root/bin/$name-static"
fi
