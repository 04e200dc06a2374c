# The shipped builders' common start (hcl.go puts it in each executor's script, at its
# marker line, see withPrelude): check the meta, move the secrets out of reach of Nomad's
# file API, export TAG and PR, and check the commit out at $NOMAD_TASK_DIR/src, which it
# leaves as the working directory. Plain sh: hcl_test.go runs it.

# The bot dispatches only http(s) URLs and full commit ids; a build dispatched by hand or
# by another tool is checked here too. A file:/// URL, a repository on the node, is
# accepted for such builds. Every value reaches git after "--" in any case.
case "$COMMIT" in
  *[!0-9a-f]*|"") echo "albatros: COMMIT is not a full commit id"; exit 1 ;;
esac
if [ "${#COMMIT}" -ne 40 ] && [ "${#COMMIT}" -ne 64 ]; then
  echo "albatros: COMMIT is not a full commit id"; exit 1
fi
case "$REPO_URL" in
  http://*|https://*|file:///*) ;;
  *) echo "albatros: REPO_URL is not an http(s) or file:/// URL"; exit 1 ;;
esac

# The payload lands in the task's local directory, which Nomad's file API can read; move
# it to the secrets directory, which that API does not serve.
if [ -f "$NOMAD_TASK_DIR/albatros-payload" ]; then
  mv "$NOMAD_TASK_DIR/albatros-payload" "$ALBATROS_SECRETS_FILE"
else
  : > "$ALBATROS_SECRETS_FILE"
fi
chmod 0600 "$ALBATROS_SECRETS_FILE"
# TAG and PR exist only for tag and pull request builds.
if [ -n "${NOMAD_META_TAG:-}" ]; then export TAG="$NOMAD_META_TAG"; fi
if [ -n "${NOMAD_META_PR:-}" ]; then export PR="$NOMAD_META_PR"; fi

echo "albatros: building $REPO_URL at $COMMIT (flavor $FLAVOR)"
# A fresh checkout: a task restarted in the same allocation finds the last one's.
src="$NOMAD_TASK_DIR/src"
rm -rf "$src"
mkdir -p "$src"
cd "$src"
git init -q
git remote add -- origin "$REPO_URL"
# A private repository is fetched with ALBATROS_GIT_TOKEN, when the build's secrets hold
# one (trusted builds only); it reaches git through the environment, not argv.
token=$( (. "$ALBATROS_SECRETS_FILE" >/dev/null 2>&1; printf %s "${ALBATROS_GIT_TOKEN:-}") )
if [ -n "$token" ]; then
  export GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=http.extraHeader GIT_CONFIG_VALUE_0="Authorization: token $token"
fi
unset token
# Fetch just the commit; servers that refuse to serve a bare SHA get a full fetch, pull
# request heads included.
if ! git fetch -q --depth 1 -- origin "$COMMIT" 2>/dev/null; then
  git fetch -q -- origin '+refs/heads/*:refs/remotes/origin/*' '+refs/tags/*:refs/tags/*' '+refs/pull/*/head:refs/remotes/origin/pull/*'
fi
git -c advice.detachedHead=false checkout -q --detach "$COMMIT" --
unset GIT_CONFIG_COUNT GIT_CONFIG_KEY_0 GIT_CONFIG_VALUE_0

if [ ! -f .albatros ]; then
  echo "albatros: there is no .albatros script at the root of the repository"
  exit 1
fi
if [ ! -x .albatros ]; then
  echo "albatros: .albatros is not executable (git update-index --chmod=+x .albatros)"
  exit 1
fi
