# The bot's Nomad policy: what it does in the builders' namespace, and nothing else.
#
#   nomad acl policy apply -description "Albatros bot" albatros-bot hcl/acl/nomad-bot.hcl
#
# Run as the shipped job (hcl/albatros.nomad.hcl), attach it to the job's workload identity
# instead of a token (see README, "Run it in production"):
#
#   nomad acl policy apply -namespace default -job albatros albatros-bot hcl/acl/nomad-bot.hcl
#
# parse-job and submit-job register the shipped builders at start (ALBATROS_BUILDERS; with
# none, and builders registered by the operator, submit-job still stops superseded builds);
# dispatch-job starts builds; read-job and list-jobs read them back, their allocations and
# evaluations, and follow the event stream; read-logs serves their logs. Nomad cannot tell
# the bot's jobs from others in a namespace: give the builders a namespace of their own.
# One block per namespace the bot dispatches to (ALBATROS_NAMESPACE, and each of
# ALBATROS_BUILDER_NAMESPACES). The namespace itself is the operator's to create
# (nomad namespace apply ci): creating one takes a management token.
namespace "ci" {
  capabilities = ["list-jobs", "read-job", "parse-job", "submit-job", "dispatch-job", "read-logs"]
}
