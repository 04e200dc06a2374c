# Albatros's bot as a Nomad service job: two allocations that share the work through Consul
# (every bot serves deliveries and pages; one at a time leads each background role), rolled
# out one at a time, each healthy once its /readyz answers.
#
# Its settings are a Nomad Variable, never this file: the items named as the bot's
# environment variables (README, "Settings"), the secrets among them written as files.
#
#   nomad var put -namespace albatros nomad/jobs/albatros \
#     ALBATROS_URL=https://ci.example.com ALBATROS_GITEA_URL=https://git.example.com \
#     CONSUL_HTTP_ADDR=consul.service.consul:8500 ALBATROS_ARCHIVE=s3://albatros/builds \
#     ALBATROS_GITEA_TOKEN=… ALBATROS_GITEA_CLIENT_ID=… ALBATROS_GITEA_CLIENT_SECRET=… \
#     ALBATROS_SECRET_KEY=… CONSUL_HTTP_TOKEN=… ALBATROS_NOMAD_READ_TOKEN=… \
#     AWS_ENDPOINT_URL=… AWS_REGION=… AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=…
#   nomad namespace apply albatros                                         # operators only
#   nomad acl policy apply -namespace albatros -job albatros albatros-bot hcl/acl/nomad-bot.hcl
#   nomad job run -var driver=exec hcl/builder.hcl
#   nomad job run -var image=albatros:<version> hcl/albatros.nomad.hcl    # docker
#   nomad job run -var driver=exec -var binary=/usr/local/bin/albatros-bot hcl/albatros.nomad.hcl
#
# The bot reaches Nomad through its task API socket with the task's workload identity; its
# one Nomad token, of hcl/acl/nomad-read.hcl (read jobs), is for the event stream, which
# Nomad 1.6 takes no workload identity for. Nor does Nomad 1.6 register a job for a
# workload identity: the builders are the operator's to register (ALBATROS_BUILDERS=none),
#
#   nomad job run -var driver=exec hcl/builder.hcl

variable "namespace" {
  type        = string
  default     = "albatros"
  description = "Nomad namespace of the bot's own job (not of the builds: ALBATROS_NAMESPACE). Only operators may submit jobs, exec into allocations or write Variables there: a job named albatros in it would read the bot's Variable and have its policy."
}

variable "uid" {
  type        = number
  default     = 65532
  description = "The user the bot runs as, who owns its secret files: the image's (65532), or the exec driver's (nobody, 65534 on Debian; or set the task's user)."
}

variable "shutdown_delay" {
  type        = string
  default     = "10s"
  description = "How long a stopping bot stays out of the service before SIGTERM: at least the load balancer's refresh of Nomad's catalog (Traefik's Nomad provider: 15 s)."
}

variable "datacenters" {
  type    = list(string)
  default = ["*"]
}

variable "count" {
  type        = number
  default     = 2
  description = "Bots running at once; they need an S3 archive to share (ALBATROS_ARCHIVE=s3://…) when more than one."
}

variable "driver" {
  type        = string
  default     = "docker"
  description = "docker (the image of make image), exec or raw_exec (the binary of make build)."
}

variable "image" {
  type        = string
  default     = "albatros:dev"
  description = "The bot's image, for the docker driver (make image; docker load -i bin/albatros-image.tar)."
}

variable "binary" {
  type        = string
  default     = "/usr/local/bin/albatros-bot"
  description = "The bot's binary on the nodes, for exec and raw_exec."
}

variable "version" {
  type        = string
  default     = ""
  description = "Anything that changes with a release: a new value rolls the bots out again."
}

job "albatros" {
  namespace   = var.namespace
  type        = "service"
  datacenters = var.datacenters

  meta {
    release = var.version
  }

  # One allocation at a time; the next once this one is healthy for 10 s (its /readyz
  # passing); a release whose allocations do not become healthy goes back to the last one.
  update {
    max_parallel      = 1
    health_check      = "checks"
    min_healthy_time  = "10s"
    healthy_deadline  = "3m"
    progress_deadline = "10m"
    auto_revert       = true
  }

  group "bot" {
    count = var.count

    network {
      port "http" {}
      port "metrics" {}
    }

    # Nomad's own service discovery: a load balancer in front (Traefik, Fabio, HAProxy with
    # Nomad's or Consul's catalog) sends deliveries and readers to the healthy bots.
    service {
      name     = "albatros"
      provider = "nomad"
      port     = "http"

      check {
        name     = "ready"
        type     = "http"
        path     = "/readyz"
        interval = "5s"
        timeout  = "3s"
      }
    }

    # The metrics on a port of their own, for Prometheus (its Nomad service discovery), not
    # behind the load balancer.
    service {
      name     = "albatros-metrics"
      provider = "nomad"
      port     = "metrics"
      tags     = ["prometheus"]
    }

    # A stopping bot leaves the service first, then gets SIGTERM: it answers 503 to
    # deliveries, hands over its leaderships and finishes what it answered within 25 s.
    shutdown_delay = var.shutdown_delay

    restart {
      attempts = 3
      interval = "5m"
      delay    = "10s"
      mode     = "delay"
    }

    task "bot" {
      driver = var.driver

      # The task API socket (secrets/api.sock), with the workload identity in NOMAD_TOKEN:
      # its policy is attached to the job (nomad acl policy apply -job albatros).
      identity {
        env = true
      }

      dynamic "config" {
        for_each = var.driver == "docker" ? [1] : []
        content {
          image = var.image
          ports = ["http", "metrics"]
        }
      }
      dynamic "config" {
        for_each = var.driver == "docker" ? [] : [1]
        content {
          command = var.binary
        }
      }

      # The bot's drain (15 s for the answered deliveries, 10 s for the requests being
      # served) fits in it, and in a Nomad client's default max_kill_timeout (30 s).
      kill_timeout = "30s"
      kill_signal  = "SIGTERM"

      env {
        NOMAD_ADDR                          = "unix://${NOMAD_SECRETS_DIR}/api.sock"
        ALBATROS_BUILDERS                   = "none"
        # In a container, every address of it; else the node's address Nomad gave the port.
        ALBATROS_ADDR                       = var.driver == "docker" ? "0.0.0.0:${NOMAD_PORT_http}" : "${NOMAD_ADDR_http}"
        ALBATROS_METRICS_ADDR               = var.driver == "docker" ? "0.0.0.0:${NOMAD_PORT_metrics}" : "${NOMAD_ADDR_metrics}"
        ALBATROS_GITEA_TOKEN_FILE           = "${NOMAD_SECRETS_DIR}/gitea-token"
        ALBATROS_GITEA_CLIENT_SECRET_FILE   = "${NOMAD_SECRETS_DIR}/gitea-client-secret"
        ALBATROS_GITHUB_TOKEN_FILE          = "${NOMAD_SECRETS_DIR}/github-token"
        ALBATROS_GITHUB_APP_KEY_FILE        = "${NOMAD_SECRETS_DIR}/github-app-key"
        ALBATROS_GITHUB_WEBHOOK_SECRET_FILE = "${NOMAD_SECRETS_DIR}/github-webhook-secret"
        ALBATROS_GITHUB_WEBHOOK_SECRET_PREVIOUS_FILE = "${NOMAD_SECRETS_DIR}/github-webhook-secret-previous"
        ALBATROS_GITHUB_CLIENT_SECRET_FILE  = "${NOMAD_SECRETS_DIR}/github-client-secret"
        ALBATROS_GITHUB_SETUP_CODE_FILE     = "${NOMAD_SECRETS_DIR}/github-setup-code"
        ALBATROS_SECRET_KEY_FILE            = "${NOMAD_SECRETS_DIR}/secret-key"
        ALBATROS_SECRET_KEY_PREVIOUS_FILE   = "${NOMAD_SECRETS_DIR}/secret-key-previous"
        ALBATROS_NOMAD_READ_TOKEN_FILE    = "${NOMAD_SECRETS_DIR}/nomad-read-token"
        CONSUL_HTTP_TOKEN_FILE              = "${NOMAD_SECRETS_DIR}/consul-token"
        AWS_SHARED_CREDENTIALS_FILE         = "${NOMAD_SECRETS_DIR}/aws-credentials"
      }

      # The settings that are no secrets, as the task's environment: the items named as
      # ALBATROS_*, CONSUL_*, AWS_* settings but for the secrets (written as files below;
      # an item named as a secret the job does not know is dropped) and for what this job
      # sets itself (addresses, files, ALBATROS_BUILDERS).
      template {
        destination = "secrets/settings.env"
        env         = true
        change_mode = "restart"
        data        = <<-EOT
          {{- with nomadVar "nomad/jobs/albatros" }}{{ range .Tuples }}
          {{- if and (.K | regexMatch "^(ALBATROS|CONSUL|AWS)_[A-Z0-9_]+$") (not (.K | regexMatch "(TOKEN|SECRET|SECRET_KEY|SECRET_KEY_PREVIOUS|SECRET_PREVIOUS|APP_KEY|SETUP_CODE|ACCESS_KEY|ACCESS_KEY_ID|PASSWORD|AUTH|_FILE|^ALBATROS_ADDR|^ALBATROS_METRICS_ADDR|^ALBATROS_BUILDERS|^AWS_PROFILE)$")) }}
          {{ .K }}={{ .V | toJSON }}
          {{- end }}{{ end }}{{ end }}
        EOT
      }

      # Each secret as a file of its own, readable by the task alone (empty: not set).
      template {
        destination = "secrets/gitea-token"
        perms       = "0400"
        uid         = var.uid
        gid         = var.uid
        change_mode = "restart"
        data        = "{{ with nomadVar \"nomad/jobs/albatros\" }}{{ .ALBATROS_GITEA_TOKEN }}{{ end }}"
      }
      template {
        destination = "secrets/gitea-client-secret"
        perms       = "0400"
        uid         = var.uid
        gid         = var.uid
        change_mode = "restart"
        data        = "{{ with nomadVar \"nomad/jobs/albatros\" }}{{ .ALBATROS_GITEA_CLIENT_SECRET }}{{ end }}"
      }
      template {
        destination = "secrets/github-token"
        perms       = "0400"
        uid         = var.uid
        gid         = var.uid
        change_mode = "restart"
        data        = "{{ with nomadVar \"nomad/jobs/albatros\" }}{{ .ALBATROS_GITHUB_TOKEN }}{{ end }}"
      }
      template {
        destination = "secrets/github-app-key"
        perms       = "0400"
        uid         = var.uid
        gid         = var.uid
        change_mode = "restart"
        data        = "{{ with nomadVar \"nomad/jobs/albatros\" }}{{ .ALBATROS_GITHUB_APP_KEY }}{{ end }}"
      }
      template {
        destination = "secrets/github-webhook-secret"
        perms       = "0400"
        uid         = var.uid
        gid         = var.uid
        change_mode = "restart"
        data        = "{{ with nomadVar \"nomad/jobs/albatros\" }}{{ .ALBATROS_GITHUB_WEBHOOK_SECRET }}{{ end }}"
      }
      template {
        destination = "secrets/github-webhook-secret-previous"
        perms       = "0400"
        uid         = var.uid
        gid         = var.uid
        change_mode = "restart"
        data        = "{{ with nomadVar \"nomad/jobs/albatros\" }}{{ .ALBATROS_GITHUB_WEBHOOK_SECRET_PREVIOUS }}{{ end }}"
      }
      template {
        destination = "secrets/github-client-secret"
        perms       = "0400"
        uid         = var.uid
        gid         = var.uid
        change_mode = "restart"
        data        = "{{ with nomadVar \"nomad/jobs/albatros\" }}{{ .ALBATROS_GITHUB_CLIENT_SECRET }}{{ end }}"
      }
      template {
        destination = "secrets/github-setup-code"
        perms       = "0400"
        uid         = var.uid
        gid         = var.uid
        change_mode = "restart"
        data        = "{{ with nomadVar \"nomad/jobs/albatros\" }}{{ .ALBATROS_GITHUB_SETUP_CODE }}{{ end }}"
      }
      template {
        destination = "secrets/secret-key"
        perms       = "0400"
        uid         = var.uid
        gid         = var.uid
        change_mode = "restart"
        data        = "{{ with nomadVar \"nomad/jobs/albatros\" }}{{ .ALBATROS_SECRET_KEY }}{{ end }}"
      }
      template {
        destination = "secrets/secret-key-previous"
        perms       = "0400"
        uid         = var.uid
        gid         = var.uid
        change_mode = "restart"
        data        = "{{ with nomadVar \"nomad/jobs/albatros\" }}{{ .ALBATROS_SECRET_KEY_PREVIOUS }}{{ end }}"
      }
      template {
        destination = "secrets/nomad-read-token"
        perms       = "0400"
        uid         = var.uid
        gid         = var.uid
        change_mode = "restart"
        data        = "{{ with nomadVar \"nomad/jobs/albatros\" }}{{ .ALBATROS_NOMAD_READ_TOKEN }}{{ end }}"
      }
      template {
        destination = "secrets/consul-token"
        perms       = "0400"
        uid         = var.uid
        gid         = var.uid
        change_mode = "restart"
        data        = "{{ with nomadVar \"nomad/jobs/albatros\" }}{{ .CONSUL_HTTP_TOKEN }}{{ end }}"
      }
      template {
        destination = "secrets/aws-credentials"
        perms       = "0400"
        uid         = var.uid
        gid         = var.uid
        change_mode = "restart"
        data        = <<-EOT
          {{- with nomadVar "nomad/jobs/albatros" }}{{ if .AWS_SECRET_ACCESS_KEY.Value }}[default]
          aws_access_key_id = {{ .AWS_ACCESS_KEY_ID }}
          aws_secret_access_key = {{ .AWS_SECRET_ACCESS_KEY }}
          {{ if .AWS_SESSION_TOKEN.Value }}aws_session_token = {{ .AWS_SESSION_TOKEN }}{{ end }}
          {{ end }}{{ end }}
        EOT
      }

      resources {
        cpu    = 500
        memory = 512
      }
    }
  }
}
