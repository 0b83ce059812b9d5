"""The contract between a parameter source (nominal, fixed DR, ADR) and the training loop.

The training loop (in ``policies/``) owns one ``ParamSource`` in the learner process. Before each episode of
each worker it calls :meth:`ParamSource.sample` and passes ``params`` to the worker's
``env.reset(options={"params": params})``; when that episode ends it calls :meth:`ParamSource.report` with the
same ``tag`` and the episode's performance. The source's state goes into every checkpoint.
"""

from __future__ import annotations

from typing import Any, Protocol


class ParamSource(Protocol):
    def sample(self) -> tuple[dict[str, float], Any]:
        """Parameters for the next episode, and an opaque tag to hand back to :meth:`report`."""
        ...

    def report(self, tag: Any, performance: float) -> None:
        """Episode performance (return, distance or consecutive successes, per task) for a sampled episode."""
        ...

    def scalars(self) -> dict[str, float]:
        """Numbers to log per update (e.g. ``adr/<param>/low``, ``adr/npd``); empty for fixed sources."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume exactly (ranges, buffers, RNG state); JSON/torch-serializable."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class NominalSource:
    """Always the nominal physics (an empty dict: the env fills in nominal values)."""

    def sample(self) -> tuple[dict[str, float], Any]:
        return {}, None

    def report(self, tag: Any, performance: float) -> None:
        pass

    def scalars(self) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass
