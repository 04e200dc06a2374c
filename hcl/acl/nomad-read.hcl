# The one Nomad token of the bot run as the shipped job (hcl/albatros.nomad.hcl), in its
# Variable (ALBATROS_NOMAD_READ_TOKEN): everything else the bot asks of Nomad goes with its
# workload identity, but Nomad 1.6's event stream takes none (/v1/event/stream looks its
# token up among the ACL tokens). This token may read the builders' jobs, nothing more: no
# dispatch, no stop, no register, no other namespace.
#
#   nomad acl policy apply -description "Albatros: the event stream" albatros-read hcl/acl/nomad-read.hcl
#   nomad acl token create -name albatros-read -policy albatros-read
namespace "ci" {
  capabilities = ["read-job"]
}
