// Package director owns the kernel's IPVS table: it computes the table that
// config plus health asks for, and reconciles the kernel against it.
//
// The desired table, per configured service:
//   - A real server enters once a check calls it healthy (alpha, the
//     default), or at once with alpha = false. A dynamic weight from a
//     check replaces the configured weight.
//   - A failed server is deleted (on_failure = "remove"), or drained
//     ("drain"): kept at weight 0 while the kernel still counts active or
//     inactive connections on it, then deleted, and never re-added while it
//     is down. UDP services skip the drain: there is nothing to finish.
//   - Drain(service, realserver, true) is the operator's drain: weight 0,
//     kept across reloads, until Drain(..., false).
//   - After a restore (or an operator undrain) a server with warmup ramps
//     from weight 1 to its weight over the warmup; Run steps it.
//   - Quorum counts servers up and not at weight 0. Below
//     quorum - hysteresis the pool is lost and the sorry server, if any, is
//     the only destination; at quorum + hysteresis it is regained. A sorry
//     server without a quorum means "when no server is left".
//
// The reconciler (Reconcile, Run) dumps the kernel, diffs it against the
// desired table and sends the smallest set of ops. It touches only services
// it owns: those in the config, and those removed from it until they are
// gone, or every service with director.own_all. Whatever differs from what
// the last pass left is drift, repaired and counted
// (lvsd_drift_repairs_total). See Director for what happens when the
// kernel refuses an op.
//
// Kernel access is behind the IPVS interface: Kernel (generic netlink,
// batched), Moby (moby/ipvs, a cross-check) and Fake (in memory, for tests).
package director
