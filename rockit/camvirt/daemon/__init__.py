"""camvirtd: its main, the object served over Pyro4, commands, admission, steps, queries, crash watch, state
file, camd calls, observatory log.
"""
