"""Runs that move orders: backfill now; incremental sync and write-back build on the same pieces."""
