"""Inference algorithms over a compiled log density: NUTS and its warmup. No I/O, no sockets."""
