"""The robots that ship, one module each: ``biped`` and ``knob`` (each defines and registers its
:class:`sim.task.Task`; :mod:`sim.task` imports them on the first lookup)."""
