"""Stan's windowed warmup schedule (windowed_adaptation.hpp), computed ahead of time.

Warmup = an initial buffer (step size only), metric windows that double in
length (the last stretched to the terminal buffer), and a terminal buffer
(step size only).  Defaults 75 / 25 / 50; when they do not fit, 15% / 75% /
10% of the warmup, as Stan does.
"""
import numpy as np


def metric_windows(num_warmup, init_buffer=75, base_window=25, term_buffer=50):
    """List of (first, last) warmup iterations (inclusive) of each metric window."""
    if num_warmup < 20:
        return []
    if init_buffer + base_window + term_buffer > num_warmup:
        init_buffer = int(0.15 * num_warmup)
        term_buffer = int(0.1 * num_warmup)
        base_window = num_warmup - (init_buffer + term_buffer)
    windows = []
    start, size = init_buffer, base_window
    last = num_warmup - term_buffer - 1
    while start <= last:
        end = start + size - 1
        # Stretch a later window to the terminal buffer if the next one would not fit
        # (Stan never stretches the first).
        if windows and (end + 2 * size >= last + 1 or end >= last):
            end = last
        windows.append((start, end))
        start, size = end + 1, 2 * size
    return windows


def schedule_arrays(num_warmup, **kwargs):
    """(collect, window_end) boolean arrays of length ``num_warmup``."""
    collect = np.zeros(max(num_warmup, 1), dtype=np.bool_)
    window_end = np.zeros(max(num_warmup, 1), dtype=np.bool_)
    for first, last in metric_windows(num_warmup, **kwargs):
        collect[first:last + 1] = True
        window_end[last] = True
    return collect, window_end
