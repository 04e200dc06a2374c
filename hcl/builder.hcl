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

variable "node_pool" {
  type        = string
  default     = "default"
  description = "Nomad node pool the builds run on: give builds without secrets (ALBATROS_UNTRUSTED_NODE_POOL) other nodes than deploy builds."
}

variable "network_mode" {
  type        = string
  default     = "host"
  description = "The builds' network mode (host, bridge, cni/<name>): bridge or a CNI network with egress rules keeps fork code from the nodes' own services (ALBATROS_UNTRUSTED_NETWORK)."
}

variable "params" {
  type        = list(string)
  default     = []
  description = "Run parameters the repositories' settings may declare: meta keys the builder takes besides TAG and PR, given to the build as NOMAD_META_<NAME> (ALBATROS_BUILDER_VARS=params=[\"TARGET\"])."
}

job "builder" {
  namespace   = var.namespace
  type        = "batch"
  datacenters = var.datacenters
  node_pool   = var.node_pool

  parameterized {
    payload       = "optional"
    meta_required = ["REPO_URL", "COMMIT", "BRANCH", "FLAVOR"]
    meta_optional = concat(["TAG", "PR"], var.params)
  }

  group "runner" {
    network {
      mode = var.network_mode
    }

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

          # albatros:prelude

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
