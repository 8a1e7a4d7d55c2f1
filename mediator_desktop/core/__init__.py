"""The domain: replica sets, selections, manifests, diffs. Pure Python; no Qt, Raft or archive clients."""
