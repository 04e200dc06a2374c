# Albatros's default builder: clones REPO_URL at COMMIT and runs the repository's executable
# .albatros script. Registered by the bot at start-up through Nomad's /v1/jobs/parse.
#
# The script's environment: COMMIT, BRANCH, FLAVOR, REPO_URL, TAG (tag builds only), PR (pull
# request builds only) and ALBATROS_SECRETS_FILE, the file holding the build's secrets (empty
# but for a comment when the build is not trusted). The builder sources that file before
# running .albatros, so its exports are already in the environment. Standard error is merged
# into standard output: the build's log is the executor task's stdout.

variable "namespace" {
  type        = string
  default     = "ci"
  description = "Nomad namespace of the builder and its builds."
}

variable "driver" {
  type        = string
  default     = "exec"
  description = "Task driver: exec (isolated, Linux), raw_exec (no isolation; tests and the demo) or docker."
}

variable "image" {
  type        = string
  default     = "alpine/git:latest"
  description = "Image for the docker driver: it needs sh and git."
}

variable "datacenters" {
  type    = list(string)
  default = ["*"]
}

variable "cpu" {
  type    = number
  default = 500
}

variable "memory" {
  type    = number
  default = 512
}

job "builder" {
  namespace   = var.namespace
  type        = "batch"
  datacenters = var.datacenters

  parameterized {
    payload       = "optional"
    meta_required = ["REPO_URL", "COMMIT", "BRANCH", "FLAVOR"]
    meta_optional = ["TAG", "PR"]
  }

  group "runner" {
    count = 1

    # A build runs once; a failed build is a result, not something to retry.
    restart {
      attempts = 0
      mode     = "fail"
    }
    reschedule {
      attempts  = 0
      unlimited = false
    }

    task "executor" {
      driver = var.driver

      # exec and raw_exec take the same configuration; docker also needs an image.
      dynamic "config" {
        for_each = var.driver == "docker" ? [] : [1]
        content {
          command = "/bin/sh"
          args    = ["${NOMAD_TASK_DIR}/albatros-build.sh"]
        }
      }
      dynamic "config" {
        for_each = var.driver == "docker" ? [1] : []
        content {
          image   = var.image
          command = "/bin/sh"
          args    = ["${NOMAD_TASK_DIR}/albatros-build.sh"]
        }
      }

      dispatch_payload {
        file = "albatros-payload"
      }

      env {
        REPO_URL              = "${NOMAD_META_REPO_URL}"
        COMMIT                = "${NOMAD_META_COMMIT}"
        BRANCH                = "${NOMAD_META_BRANCH}"
        FLAVOR                = "${NOMAD_META_FLAVOR}"
        ALBATROS_SECRETS_FILE = "${NOMAD_SECRETS_DIR}/albatros-secrets"
        HOME                  = "${NOMAD_TASK_DIR}"
        GIT_TERMINAL_PROMPT   = "0"
      }

      template {
        destination = "local/albatros-build.sh"
        perms       = "0755"
        data        = <<-EOT
          #!/bin/sh
          set -eu
          exec 2>&1

          # The bot validates what it dispatches (http(s) URLs only); a build dispatched by hand is
          # checked here too (a file:/// URL names a repository on the node), and every value
          # reaches git after "--" in any case.
          case "$COMMIT" in
            *[!0-9a-f]*|"") echo "albatros: COMMIT is not a full commit id"; exit 1 ;;
          esac
          if [ "$${#COMMIT}" -ne 40 ] && [ "$${#COMMIT}" -ne 64 ]; then
            echo "albatros: COMMIT is not a full commit id"; exit 1
          fi
          case "$REPO_URL" in
            http://*|https://*|file:///*) ;;
            *) echo "albatros: REPO_URL is not an http(s) or file:/// URL"; exit 1 ;;
          esac

          # The payload lands in the task's local directory, which Nomad's file API can read;
          # move it to the secrets directory, which that API does not serve.
          if [ -f "$NOMAD_TASK_DIR/albatros-payload" ]; then
            mv "$NOMAD_TASK_DIR/albatros-payload" "$ALBATROS_SECRETS_FILE"
          else
            : > "$ALBATROS_SECRETS_FILE"
          fi
          chmod 0600 "$ALBATROS_SECRETS_FILE"
          # TAG and PR exist only for tag and pull request builds.
          if [ -n "$${NOMAD_META_TAG:-}" ]; then export TAG="$NOMAD_META_TAG"; fi
          if [ -n "$${NOMAD_META_PR:-}" ]; then export PR="$NOMAD_META_PR"; fi

          echo "albatros: building $REPO_URL at $COMMIT (flavor $FLAVOR)"
          src="$NOMAD_TASK_DIR/src"
          rm -rf "$src"
          mkdir -p "$src"
          cd "$src"
          git init -q
          git remote add -- origin "$REPO_URL"
          # A private repository is fetched with ALBATROS_GIT_TOKEN, when the build's secrets
          # hold one (trusted builds only); it reaches git through the environment, not argv.
          token=$( (. "$ALBATROS_SECRETS_FILE" >/dev/null 2>&1; printf %s "$${ALBATROS_GIT_TOKEN:-}") )
          if [ -n "$token" ]; then
            export GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=http.extraHeader GIT_CONFIG_VALUE_0="Authorization: token $token"
          fi
          unset token
          # Fetch just the commit; servers that refuse to serve a bare SHA get a full fetch,
          # pull request heads included.
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
          set +x +u
          . "$ALBATROS_SECRETS_FILE"
          exec ./.albatros
        EOT
      }

      resources {
        cpu    = var.cpu
        memory = var.memory
      }
    }
  }
}
