"""The state directory: ownership records (state.ownership), the write-ahead journal
(state.journal), the apply lock (state.lock), the in-flight and pending-confirmation
markers, and the directory itself (state.statedir).

It imports nothing from dsrctl or providers; its errors are its own (state.errors). The
package imports none of its modules: plan and drift, run from cron on every server, read
the ownership records and the markers and never load the journal or the lock.
"""
