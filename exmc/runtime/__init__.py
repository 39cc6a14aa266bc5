"""Runtime: running chains, progress display, and assembling results (streaming comes later)."""
