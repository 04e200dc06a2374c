# The one Nomad token of the bot run as the shipped job (hcl/albatros.nomad.hcl), in its
# Variable (ALBATROS_NOMAD_READ_TOKEN): everything else the bot asks of Nomad goes with its
# workload identity, but Nomad 1.6's event stream takes none (/v1/event/stream looks its
# token up among the ACL tokens). This token may read the builders' jobs: no dispatch, no
# stop, no register. But Nomad 1.6 lets a token that may read jobs in any one namespace
# follow the event stream of every namespace (its wildcard is allowed when one namespace
# is): whoever holds this token sees the cluster's jobs as they change, dispatched payloads
# (builds' secrets) included. Keep it as you keep the bot's other secrets.
#
#   nomad acl policy apply -description "Albatros: the event stream" albatros-read hcl/acl/nomad-read.hcl
#   nomad acl token create -name albatros-read -policy albatros-read
namespace "ci" {
  capabilities = ["read-job"]
}
