"""Stan's windowed warmup schedule: known cases and an independent run of Stan's window counters."""
import numpy as np
import pytest

from exmc.samplers.adaptation.schedule import metric_windows, schedule_arrays


def stan_window_counters(num_warmup, init_buffer=75, term_buffer=50, base_window=25):
    """Windows that Stan's windowed_adaptation would end, found by stepping its counters.

    Mirrors the state machine of ``src/stan/mcmc/windowed_adaptation.hpp``
    (adaptation_window / end_adaptation_window / compute_next_window), one warmup
    iteration at a time, rather than computing the windows in closed form.
    """
    if num_warmup < 20:
        return []
    if init_buffer + base_window + term_buffer > num_warmup:
        init_buffer = int(0.15 * num_warmup)
        term_buffer = int(0.1 * num_warmup)
        base_window = num_warmup - (init_buffer + term_buffer)
    # Stan's restart(): the first window ends after init_buffer + base_window iterations.
    # (Stan's set_window_params returns from the short-warmup branch above without calling
    # restart(), which leaves the end of the first window at (unsigned) -1, so that branch
    # adapts no metric at all in Stan itself; exmc does what the branch announces, and so
    # does this mirror.)
    size, next_end = base_window, init_buffer + base_window - 1
    last = num_warmup - term_buffer - 1
    windows, first = [], None
    for counter in range(num_warmup):
        if init_buffer <= counter < num_warmup - term_buffer and first is None:
            first = counter  # the first draw added to the estimator since the last window
        if counter == next_end:
            windows.append((first, counter))
            first = None
            if next_end == last:
                continue
            size *= 2
            next_end = counter + size
            if next_end != last and next_end + 2 * size >= num_warmup - term_buffer:
                next_end = last
    return windows


@pytest.mark.parametrize("num_warmup, expected", [
    (1000, [(75, 99), (100, 149), (150, 249), (250, 449), (450, 949)]),
    (2000, [(75, 99), (100, 149), (150, 249), (250, 449), (450, 849), (850, 1949)]),
    (150, [(75, 99)]),
    (170, [(75, 99), (100, 119)]),
    (200, [(75, 99), (100, 149)]),
    # Fewer than 150: 15% / 75% / 10% (init buffer 15, one window of 75, terminal buffer 10).
    (100, [(15, 89)]),
    (149, [(22, 134)]),
    (20, [(3, 17)]),
    (19, []),
    (10, []),
    (0, []),
])
def test_known_schedules(num_warmup, expected):
    assert metric_windows(num_warmup) == expected


def test_matches_stan_counters_for_every_warmup_length():
    for num_warmup in range(0, 3001):
        assert metric_windows(num_warmup) == stan_window_counters(num_warmup), num_warmup


@pytest.mark.parametrize("buffers", [dict(init_buffer=20, term_buffer=20, base_window=30),
                                     dict(init_buffer=0, term_buffer=10, base_window=5),
                                     dict(init_buffer=10, term_buffer=0, base_window=10)])
def test_matches_stan_counters_with_other_buffers(buffers):
    for num_warmup in range(0, 600):
        assert metric_windows(num_warmup, **buffers) == stan_window_counters(num_warmup,
                                                                             **buffers)


def test_windows_tile_the_middle_and_double():
    for num_warmup in range(150, 3001, 7):
        windows = metric_windows(num_warmup)
        assert windows[0][0] == 75 and windows[-1][1] == num_warmup - 50 - 1
        for (_, end), (start, _) in zip(windows, windows[1:]):
            assert start == end + 1
        sizes = [end - start + 1 for start, end in windows]
        for k, size in enumerate(sizes[:-1]):
            assert size == 25 * 2 ** k
        # The last window takes up the rest; it can only fall short of its doubled size when it
        # is the second (Stan checks the room ahead from the second window on: 157 warmup
        # iterations give (75, 99), (100, 106)).
        if len(sizes) > 2:
            assert sizes[-1] >= 25 * 2 ** (len(sizes) - 1)
    assert metric_windows(157) == [(75, 99), (100, 106)]


def test_schedule_arrays_mark_the_windows():
    collect, window_end = schedule_arrays(1000)
    assert collect.shape == window_end.shape == (1000,)
    expected = np.zeros(1000, dtype=bool)
    expected[75:950] = True
    np.testing.assert_array_equal(collect, expected)
    np.testing.assert_array_equal(np.flatnonzero(window_end), [99, 149, 249, 449, 949])
    collect, window_end = schedule_arrays(0)
    assert not collect.any() and not window_end.any()
