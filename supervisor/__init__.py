"""A generic OTP-style supervisor of OS processes (knows nothing of MCMC).

Empty until the runtime issue lands: chains currently run one after another
in the calling process (``exmc.runtime.chain``).
"""
