"""`ControllerSpec`: a controller's name and options, checked once, with the controller they build.

Every way in turns its options into one of these where they enter (``ponder solve`` and ``ponder
eval`` from their flags, ``ponder serve`` from each request, the SDK from its keyword arguments) and
passes it down; nothing below re-reads the options or builds the controller again.

    spec = ControllerSpec.of("ffs", {"n": 8, "max_thinking_tokens": 512})   # ValueError if bad
    await spec.controller.run(problem, engine, verifier=v)
    spec.reseeded(3)       # the same controller with its base seed moved by 3 (serve's choices)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from ponder.types import MAX_SEED

__all__ = ["ControllerSpec"]


@dataclass(frozen=True)
class ControllerSpec:
    """A registered controller's name and options, and the controller built from them."""

    name: str
    """A key of ``ponder.controllers.REGISTRY``."""
    options: tuple[tuple[str, Any], ...] = ()
    """The options as given (sampling settings included), in order; what a run's identity records."""
    controller: Any = field(init=False, repr=False, compare=False)
    """The controller, built (and so checked) once when the spec is made."""

    def __post_init__(self) -> None:
        from ponder.controllers import get_controller  # the package imports this module

        object.__setattr__(self, "options", tuple(self.options))
        object.__setattr__(self, "controller", get_controller(self.name, **dict(self.options)))

    @classmethod
    def of(cls, name: str, options: Mapping[str, Any] | None = None) -> ControllerSpec:
        """Check ``options`` for controller ``name`` (ValueError naming the option) and build it."""
        return cls(name, tuple((options or {}).items()))

    @property
    def settings(self) -> dict[str, Any]:
        return dict(self.options)

    def label(self) -> str:
        """A short name of the setting: ``ffs n=8`` (seeds left out)."""
        shown = " ".join(f"{k}={v}" for k, v in sorted(self.options) if k != "seed")
        return f"{self.name} {shown}".strip()

    def reseeded(self, offset: int) -> Any:
        """The controller with its base seed moved by ``offset`` (itself when unseeded or 0), so
        independent runs of one request draw different samples, reproducibly."""
        sampling = getattr(self.controller, "sampling", None)
        if not offset or sampling is None or sampling.seed is None:
            return self.controller
        return dataclasses.replace(self.controller, 
                                   sampling=dataclasses.replace(sampling, seed=(sampling.seed + offset) % (MAX_SEED + 1)))
