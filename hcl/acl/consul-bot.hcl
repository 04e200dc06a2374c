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

session_prefix "" {
  policy = "write"
}
