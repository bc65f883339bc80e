"""Test-time compute strategies, one file each, chosen by name from `REGISTRY`.

    from ponder.controllers import REGISTRY
    controller = REGISTRY["single"]()
    solution = await controller.run(problem, engine, verifier=get_verifier("integer"))
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from ponder.controllers.base import Controller, Sampling
from ponder.controllers.sample import force_answer, run_sample
from ponder.controllers.single import Single

__all__ = ["REGISTRY", "Controller", "Sampling", "Single", "force_answer", "run_sample", "get_controller"]

REGISTRY: dict[str, Callable[..., Controller]] = {
    "single": Single,
}


def get_controller(name: str, **options: Any) -> Controller:
    """Build a registered controller by name.

    Options named like `Sampling` fields (temperature, top_p, max_tokens, seed) configure the
    samples; the rest go to the controller. Unknown names and options raise ValueError listing
    the choices.
    """
    if name not in REGISTRY:
        raise ValueError(f"unknown controller {name!r}; choose one of {', '.join(sorted(REGISTRY))}")
    factory = REGISTRY[name]
    sampling_keys = {f.name for f in dataclasses.fields(Sampling)}
    sampling = {k: options.pop(k) for k in list(options) if k in sampling_keys and options[k] is not None}
    allowed = {f.name for f in dataclasses.fields(factory)} if dataclasses.is_dataclass(factory) else set()
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ValueError(f"controller {name!r} has no option {', '.join(unknown)}; its options: "
                         f"{', '.join(sorted((allowed - {'sampling'}) | sampling_keys))}")
    if sampling:
        options["sampling"] = Sampling(**sampling)
    return factory(**options)
