"""The hardened Pyro4 server: bounded messages, connections and workers, fair between callers, refusals. Knows
nothing of cameras.
"""
