package testenv

import (
	"context"
	"fmt"
)

// Stack is the whole of Albatros on loopback: Consul, Nomad, Gitea, and the bot.
type Stack struct {
	Consul *Consul
	Nomad  *Nomad
	Gitea  *Gitea
	Bot    *Bot
}

// StartStack starts Consul, Nomad and Gitea from bin/, then the bot binary botBin pointed at
// them (with extraEnv added to its environment). What it starts is stopped by t's cleanups,
// also when a later step fails.
func StartStack(ctx context.Context, t T, botBin string, extraEnv ...string) (*Stack, error) {
	return StartStackWith(ctx, t, botBin, func(*Stack, string) ([]string, error) { return extraEnv, nil })
}

// StartStackWith starts the stack as StartStack does; once the servers run, and before the
// bot starts, setup is given them and the bot's future URL (an OAuth2 application's redirect
// URI names it) and returns the bot's extra environment.
func StartStackWith(ctx context.Context, t T, botBin string, setup func(s *Stack, botURL string) ([]string, error)) (*Stack, error) {
	s := &Stack{}
	server := func(name string, start func(bin string) (stop func(), err error)) error {
		bin, err := Binary(name)
		if err != nil {
			return err
		}
		stop, err := start(bin)
		if err != nil {
			return fmt.Errorf("start %s: %w", name, err)
		}
		t.Cleanup(stop)
		return nil
	}
	err := server("consul", func(bin string) (func(), error) {
		c, err := StartConsul(ctx, bin)
		s.Consul = c
		return func() { c.Stop() }, err
	})
	if err == nil {
		err = server("nomad", func(bin string) (func(), error) {
			n, err := StartNomad(ctx, bin)
			s.Nomad = n
			return func() { n.Stop() }, err
		})
	}
	if err == nil {
		err = server("gitea", func(bin string) (func(), error) {
			g, err := StartGitea(ctx, bin)
			s.Gitea = g
			return func() { g.Stop() }, err
		})
	}
	if err != nil {
		return nil, err
	}
	addr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	extraEnv, err := setup(s, "http://"+addr)
	if err != nil {
		return nil, err
	}
	s.Bot, err = StartBotOn(ctx, botBin, addr, append(append(s.Nomad.Env(), s.Consul.Env()...), extraEnv...))
	if err != nil {
		return nil, fmt.Errorf("start albatros-bot: %w", err)
	}
	t.Cleanup(s.Bot.Stop)
	return s, nil
}
