"""Runtime: running chains, progress display, streaming draws, watching runs, assembling results."""
