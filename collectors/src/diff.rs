//! Comparing two structured snapshots (being written).
