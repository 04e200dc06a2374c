package testenv

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"

	consul "github.com/hashicorp/consul/api"
	nomad "github.com/hashicorp/nomad/api"

	"github.com/albatros-ci/albatros/hcl"
)

// Every Nomad and Consul agent testenv starts has its ACLs enabled (Consul's default
// policy deny), bootstrapped with one management token per test process: the test
// process's own clients get it through NOMAD_TOKEN and CONSUL_HTTP_TOKEN, which the first
// agent started sets. A bot started by StartBot gets tokens of the shipped policies
// (hcl/acl) alone, for its namespace and Consul prefix; a build gets none.

// ManagementToken is the management token of every agent testenv starts in this process.
func ManagementToken() string { return management() }

var management = sync.OnceValue(func() string {
	tok := newUUID()
	os.Setenv("NOMAD_TOKEN", tok)
	os.Setenv("CONSUL_HTTP_TOKEN", tok)
	return tok
})

func newUUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// agents are the Nomad and Consul agents started in this process, by the address their
// clients are given (NOMAD_ADDR, CONSUL_HTTP_ADDR): where BotEnv finds whom to ask for a
// bot's tokens.
var agents sync.Map

// policyName names a rendering of a shipped policy by what it was rendered for.
func policyName(what string, args []string) string {
	sum := sha256.Sum256([]byte(strings.Join(args, "\x00")))
	return "albatros-" + what + "-" + hex.EncodeToString(sum[:6])
}

// tokens caches the tokens minted by an agent, by policy name.
type tokens struct {
	mu sync.Mutex
	m  map[string]string
}

func (ts *tokens) get(name string, mint func() (string, error)) (string, error) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if tok, ok := ts.m[name]; ok {
		return tok, nil
	}
	tok, err := mint()
	if err != nil {
		return "", err
	}
	if ts.m == nil {
		ts.m = map[string]string{}
	}
	ts.m[name] = tok
	return tok, nil
}

// BotToken returns a token whose one policy is the bot's shipped Nomad policy
// (hcl/acl/nomad-bot.hcl) for namespaces.
func (n *Nomad) BotToken(namespaces ...string) (string, error) {
	return n.policyToken("bot", namespaces, hcl.NomadBotPolicy(namespaces...))
}

// ReadToken returns a token of the shipped read policy (hcl/acl/nomad-read.hcl).
func (n *Nomad) ReadToken(namespaces ...string) (string, error) {
	return n.policyToken("read", namespaces, hcl.NomadReadPolicy(namespaces...))
}

func (n *Nomad) policyToken(what string, namespaces []string, rules string) (string, error) {
	name := policyName(what, namespaces)
	return n.tokens.get(name, func() (string, error) {
		c, err := n.client()
		if err != nil {
			return "", err
		}
		if _, err := c.ACLPolicies().Upsert(&nomad.ACLPolicy{Name: name, Description: "albatros " + what + ", hcl/acl", Rules: rules}, nil); err != nil {
			return "", fmt.Errorf("nomad policy %s:\n%s\n%w", name, rules, err)
		}
		tok, _, err := c.ACLTokens().Create(&nomad.ACLToken{Name: name, Type: "client", Policies: []string{name}}, nil)
		if err != nil {
			return "", fmt.Errorf("nomad token of %s: %w", name, err)
		}
		return tok.SecretID, nil
	})
}

// BotToken returns a token whose one policy is the bot's shipped Consul policy
// (hcl/acl/consul-bot.hcl) for the registry prefix prefix.
func (c *Consul) BotToken(prefix string) (string, error) {
	name := policyName("bot", []string{prefix})
	return c.tokens.get(name, func() (string, error) {
		client, err := c.client()
		if err != nil {
			return "", err
		}
		rules := hcl.ConsulBotPolicy(prefix)
		p, _, err := client.ACL().PolicyCreate(&consul.ACLPolicy{Name: name, Description: "albatros bot, hcl/acl", Rules: rules}, nil)
		if err != nil {
			return "", fmt.Errorf("consul policy %s:\n%s\n%w", name, rules, err)
		}
		tok, _, err := client.ACL().TokenCreate(&consul.ACLToken{Description: name, Policies: []*consul.ACLTokenPolicyLink{{ID: p.ID}}}, nil)
		if err != nil {
			return "", fmt.Errorf("consul token of %s: %w", name, err)
		}
		return tok.SecretID, nil
	})
}

// BotEnv adds to a bot's environment the tokens it runs with: for the testenv agents that
// its NOMAD_ADDR and CONSUL_HTTP_ADDR name, tokens of the shipped policies alone, for its
// namespaces (ALBATROS_NAMESPACE, ci by default, ALBATROS_BUILDER_NAMESPACES and
// ALBATROS_UNTRUSTED_NAMESPACE) and its
// Consul prefix (ALBATROS_CONSUL_PREFIX, albatros/ by default). A token env sets already
// is kept.
func BotEnv(env []string) ([]string, error) {
	get := func(key, def string) string {
		v := def
		for _, kv := range env {
			if val, ok := strings.CutPrefix(kv, key+"="); ok {
				v = val
			}
		}
		return v
	}
	out := slices.Clone(env)
	if get("NOMAD_TOKEN", "") == "" {
		if a, ok := agents.Load(get("NOMAD_ADDR", "")); ok {
			namespaces := []string{get("ALBATROS_NAMESPACE", DefaultNamespace)}
			for _, ns := range strings.Split(get("ALBATROS_BUILDER_NAMESPACES", "")+","+get("ALBATROS_UNTRUSTED_NAMESPACE", ""), ",") {
				if ns = strings.TrimSpace(ns); ns != "" && !slices.Contains(namespaces, ns) {
					namespaces = append(namespaces, ns)
				}
			}
			tok, err := a.(*Nomad).BotToken(namespaces...)
			if err != nil {
				return nil, err
			}
			out = append(out, "NOMAD_TOKEN="+tok)
		}
	}
	if get("CONSUL_HTTP_TOKEN", "") == "" {
		if a, ok := agents.Load(get("CONSUL_HTTP_ADDR", "")); ok {
			tok, err := a.(*Consul).BotToken(get("ALBATROS_CONSUL_PREFIX", "albatros/"))
			if err != nil {
				return nil, err
			}
			out = append(out, "CONSUL_HTTP_TOKEN="+tok)
		}
	}
	return out, nil
}
