"""Domain randomization: parameter spaces, samplers, fixed-DR presets, ADR, held-out plants.

Talks to envs only through the named physical parameters of ``sim.params`` (``reset(options={"params": ...})``).
"""
