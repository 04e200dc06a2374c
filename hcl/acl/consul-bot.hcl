# The bot's Consul policy: its registry under ALBATROS_CONSUL_PREFIX (albatros/), its own
# keys beside it (albatros-run/: claims, leaderships, ledger, sessions' keys), and the
# sessions its locks and leaderships hold; nothing else.
#
#   consul acl policy create -name albatros-bot -rules @hcl/acl/consul-bot.hcl
#   consul acl token create -description "Albatros bot" -policy-name albatros-bot
key_prefix "albatros/" {
  policy = "write"
}

key_prefix "albatros-run/" {
  policy = "write"
}

# The bots' locks take sessions on the node of the agent they ask. Where the bots' nodes are
# known, name them (session "node-1" { policy = "write" }, one each): with a prefix of "",
# the token may also destroy other applications' sessions, and their locks with them.
session_prefix "" {
  policy = "write"
}
