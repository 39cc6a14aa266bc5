"""NUTS on a GPU with numba.cuda: every chain a thread, its state resident on the device.

``nuts.py`` holds the kernel (the CPU sampler's algorithm and warmup as device
code), ``random.py`` the counter-based random streams.  Importing this package
imports ``numba.cuda``: do it only for ``device="cuda"``.
"""
