package forgetest

import (
	"context"
	"fmt"
	"slices"

	"github.com/albatros-ci/albatros/forge"
)

// Issue is an issue of the fake's repository: one the bot opened (Author is Me), or one
// a test put there (AddIssue).
type Issue struct {
	Number      int64
	Title, Body string
	Author      string
	Open        bool
	PullRequest bool
}

// Repository returns the repository as asked, with Owner's id when RepoOwnerID is set.
func (f *Forge) Repository(_ context.Context, repo forge.Repo) (forge.Repo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.RepoOwnerID != 0 {
		repo.OwnerID = f.RepoOwnerID
	}
	return repo, nil
}

// Branch returns the branch of Branches named name.
func (f *Forge) Branch(_ context.Context, repo forge.Repo, name string) (forge.Branch, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, b := range f.Branches {
		if b.Name == name {
			return b, nil
		}
	}
	return forge.Branch{}, fmt.Errorf("branch %s of %s: %w", name, repo.FullName, forge.ErrNotFound)
}

// BranchCommits returns the branch's head only: the fake keeps no history.
func (f *Forge) BranchCommits(ctx context.Context, repo forge.Repo, branch string, n int) ([]string, error) {
	b, err := f.Branch(ctx, repo, branch)
	if err != nil {
		return nil, err
	}
	return []string{b.Commit}, nil
}

// OpenIssue opens an issue, numbered after the pull requests' numbers the tests use.
func (f *Forge) OpenIssue(_ context.Context, _ forge.Repo, title, body string) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := int64(1000 + len(f.issues))
	f.issues = append(f.issues, Issue{Number: n, Title: title, Body: body, Author: f.Login, Open: true})
	return n, nil
}

// AddIssue puts someone's issue (or pull request) on the repository, as numbered.
func (f *Forge) AddIssue(is Issue) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.issues = append(f.issues, is)
}

// Issue returns issue number.
func (f *Forge) Issue(_ context.Context, _ forge.Repo, number int64) (forge.Issue, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, is := range f.issues {
		if is.Number == number {
			return forge.Issue{Number: is.Number, Title: is.Title, Author: is.Author, Open: is.Open, PullRequest: is.PullRequest}, nil
		}
	}
	return forge.Issue{}, fmt.Errorf("issue %d: %w", number, forge.ErrNotFound)
}

// CloseIssue closes issue number (also as someone closing it by hand would).
func (f *Forge) CloseIssue(_ context.Context, _ forge.Repo, number int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.issues {
		if f.issues[i].Number == number {
			f.issues[i].Open = false
			return nil
		}
	}
	return fmt.Errorf("issue %d: %w", number, forge.ErrNotFound)
}

// Issues returns the issues opened so far, in order.
func (f *Forge) Issues() []Issue {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.issues)
}
