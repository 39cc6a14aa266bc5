"""Warmup adaptation (Stan's windowed adaptation): step size by dual averaging, metric by windows."""
