# Albatros's Nix builder, after the original Albatros's: builds share one Nix store persisted
# on the host, which the build itself only ever sees read-only. All writes go through a Nix
# daemon that runs beside the build, in its own task, and that the build reaches over a unix
# socket in the allocation directory. What a build produced (its `result*` links) is kept as
# garbage-collector roots, derivations included (keep-derivations), for seven days; at the
# end of each build older roots are dropped and the store is garbage-collected.
#
# It needs the docker driver with host volumes enabled on the client
# (plugin "docker" { config { volumes { enabled = true } } }): the store lives at
# var.store on the host, created and seeded from the Nix image the first time.
#
# The build's environment is the default builder's (COMMIT, BRANCH, FLAVOR, REPO_URL, TAG, PR,
# ALBATROS_SECRETS_FILE), plus NIX_REMOTE pointing at the daemon.

variable "namespace" {
  type    = string
  default = "ci"
}

variable "image" {
  type        = string
  default     = "nixos/nix:2.24.9"
  description = "Nix image (with sh and git) for the daemon, the build and the store's first seed."
}

variable "store" {
  type        = string
  default     = "/var/cache/albatros"
  description = "Host directory holding the persisted /nix."
}

variable "datacenters" {
  type    = list(string)
  default = ["*"]
}

variable "cpu" {
  type    = number
  default = 1000
}

variable "memory" {
  type    = number
  default = 2048
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

job "nixcache" {
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

    restart {
      attempts = 0
      mode     = "fail"
    }
    reschedule {
      attempts  = 0
      unlimited = false
    }

    # Creates the store directory on the host if it is missing (docker creates the bind
    # mount's source) and seeds it with the image's /nix the first time.
    task "init-store" {
      driver = "docker"
      lifecycle {
        hook    = "prestart"
        sidecar = false
      }
      config {
        image   = var.image
        command = "/bin/sh"
        args    = ["-c", "[ -e /mnt/nix/store ] || cp -a /nix/. /mnt/nix/"]
        volumes = ["${var.store}:/mnt/nix"]
      }
      resources {
        cpu    = 100
        memory = 128
      }
    }

    # The only writer of the store while the build runs.
    task "nix-daemon" {
      driver = "docker"
      lifecycle {
        hook    = "prestart"
        sidecar = true
      }
      config {
        image   = var.image
        command = "nix-daemon"
        volumes = ["${var.store}:/nix"]
      }
      env {
        NIX_DAEMON_SOCKET_PATH = "${NOMAD_ALLOC_DIR}/nix-daemon.sock"
        NIX_CONFIG             = "keep-derivations = true\nkeep-outputs = true\nexperimental-features = nix-command flakes\nbuild-users-group ="
      }
      resources {
        cpu    = var.cpu
        memory = var.memory
      }
    }

    task "executor" {
      driver = "docker"
      config {
        image   = var.image
        command = "/bin/sh"
        args    = ["${NOMAD_TASK_DIR}/albatros-build.sh"]
        # The build reads the store; only the daemon writes it.
        volumes = ["${var.store}:/nix:ro"]
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
        NIX_REMOTE            = "unix://${NOMAD_ALLOC_DIR}/nix-daemon.sock"
        NIX_CONFIG            = "experimental-features = nix-command flakes"
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

          # The daemon starts beside the build; wait for its socket, then build through it.
          sock="$NOMAD_ALLOC_DIR/nix-daemon.sock"
          i=0
          while [ ! -S "$sock" ]; do
            i=$((i + 1))
            if [ "$i" -gt 100 ]; then echo "albatros: the nix daemon did not start"; exit 1; fi
            sleep 0.1
          done

          echo "albatros: with nix, through the daemon at $sock"
          set +x +u
          . "$ALBATROS_SECRETS_FILE"
          set -u
          status=0
          ./.albatros || status=$?

          # Hand what the build produced to the gc task, which keeps it as roots.
          for link in result result-*; do
            [ -L "$link" ] && readlink "$link" >> "$NOMAD_ALLOC_DIR/albatros-gcroots"
          done
          exit "$status"
        EOT
      }

      resources {
        cpu    = 200
        memory = 256
      }
    }

    # After the build: keep its outputs as roots for seven days, drop older roots, collect.
    task "gc" {
      driver = "docker"
      lifecycle {
        hook = "poststop"
      }
      config {
        image   = var.image
        command = "/bin/sh"
        args    = ["${NOMAD_TASK_DIR}/gc.sh"]
        volumes = ["${var.store}:/nix"]
      }
      env {
        NIX_CONFIG = "keep-derivations = true\nkeep-outputs = true\nbuild-users-group ="
      }
      template {
        destination = "local/gc.sh"
        perms       = "0755"
        data        = <<-EOT
          #!/bin/sh
          set -u
          roots=/nix/var/nix/gcroots/albatros
          mkdir -p "$roots"
          n=0
          if [ -f "$NOMAD_ALLOC_DIR/albatros-gcroots" ]; then
            while read -r path; do
              n=$((n + 1))
              nix-store --add-root "$roots/$NOMAD_ALLOC_ID-$n" --realise "$path" > /dev/null || true
            done < "$NOMAD_ALLOC_DIR/albatros-gcroots"
          fi
          find "$roots" -type l -mtime +7 -delete
          nix-store --gc
        EOT
      }
      resources {
        cpu    = 200
        memory = 512
      }
    }
  }
}
