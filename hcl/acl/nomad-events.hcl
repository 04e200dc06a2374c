# The token for the bot's event stream, when the bot reaches Nomad through its workload
# identity (the shipped job): Nomad 1.6's /v1/event/stream takes ACL tokens only, not
# workload identities, so this one token exists, in the job's Variable
# (ALBATROS_NOMAD_EVENTS_TOKEN). It may read the builders' jobs and nothing more: no
# dispatch, no stop, no other namespace.
#
#   nomad acl policy apply -description "Albatros events" albatros-events hcl/acl/nomad-events.hcl
#   nomad acl token create -name albatros-events -policy albatros-events
namespace "ci" {
  capabilities = ["read-job"]
}
