// Package pipeline is where Albatros decides: for a forge event about a registered
// repository it chooses the builds (one per flavor), who gets the repository's secrets, the
// dispatch's idempotency token, and writes the pending status; for a build's outcome learned
// from Nomad it writes the final status. It speaks forge, registry and orchestrator types and
// knows no HTTP: the webhook package feeds it, the orchestrator's event stream calls Report.
//
// # Exactly once, across bots
//
// Every build has a key (its idempotency token: what it builds and why, never the
// delivery), and every report one per state; two bots, a redelivery or a restart must
// neither lose nor double either. The protocol is a type of its own (protocol, in claims.go), on the claims of
// registry.Coordination (records under albatros-run/dedup/ in Consul, each written with a
// check-and-set):
//
//	                 Claim (create)                 Settle(job)
//	no record ─────────────────────────▶ claimed ─────────────────▶ settled
//	    ▲                                │   │                        │
//	    └──────── Release ───────────────┘   │ stale (ClaimStale,     │ CleanDedup
//	      (Nomad refused: nothing made)      │ 30 s, unsettled)       │ after 24 h
//	                                         ▼                        ▼
//	                              taken over by another:          no record
//	                              it looks the key up in Nomad
//	                              (ByKey) and adopts what it
//	                              finds, or dispatches
//
// What a bot does at each answer of Claim (dispatch, dispatchFound, firstOfKey):
//
//   - claimed, fresh: nobody else dispatched the key; it dispatches without Nomad's token
//     (whose check scans every child of the builder), the key in the job's ID, then
//     settles with the job, and with its line's record in the same write (SettleLine);
//   - settled by another: the build is that one (Duplicate);
//   - claimed by another, still unsettled after ClaimWait: it looks the key up in Nomad,
//     then waits again;
//   - taken over (stale): it looks the key up first, and adopts the build found (its
//     claimant died before its status), else dispatches;
//   - Consul failing: it looks the key up, then dispatches with Nomad's token;
//   - after any dispatch, the earliest build of the key in Nomad stands (firstOfKey): a
//     later one is discarded, so that a dispatch made while Consul failed, or one still on
//     its way when its claim was taken over, leaves one build.
//
// A report claims its key the same way (claimReport): settled means written; a claim whose
// writer is slow or died is written again after the forge is read. Each failure the
// protocol tolerates (a settlement or release that failed, a second build not discarded,
// a dispatch unanswered) is logged (Config.Log); none is dropped silently.
package pipeline
