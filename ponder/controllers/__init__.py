"""Test-time compute strategies, one file each, chosen by name from `REGISTRY`.

    from ponder.controllers import REGISTRY, get_controller, FirstFinish, BudgetForcing
    controller = get_controller("single")
    solution = await controller.run(problem, engine, verifier=get_verifier("integer"))
    get_controller("ffs", n=8, temperature=0.6, max_thinking_tokens=512)
    FirstFinish(n=8, sample=BudgetForcing(max_thinking_tokens=512))     # the same, spelled out
    get_controller("ffs", n=8, sample="probe", rule="confidence")       # FFS over probed samples

Sampling controllers (single, majority, ffs, deepconf) take a per-sample policy (``sample=``, see
policy.py), an object or a name in `SAMPLE_POLICIES` whose options may be given alongside;
`BudgetForcing` and `Probe` are both controllers and such policies.

Adding a controller: a frozen dataclass with ``name`` and ``async def run(problem, engine, *,
verifier=None) -> Solution`` in its own module, and one line in `REGISTRY`. ``ponder solve``,
``ponder eval`` and ``--sweep`` find it by name and take its options as ``-o KEY=VALUE``.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

from ponder.controllers.adaptive import Adaptive
from ponder.controllers.base import Controller, Sampling
from ponder.controllers.budget_forcing import BudgetForcing
from ponder.controllers.deepconf import DeepConf
from ponder.controllers.first_finish import FirstFinish
from ponder.controllers.majority import Majority
from ponder.controllers.policy import Plain, SamplePolicy
from ponder.controllers.exit import force_answer
from ponder.controllers.probe import Probe
from ponder.controllers.single import Single
from ponder.controllers.spec import ControllerSpec
from ponder.types import OptionError

__all__ = ["REGISTRY", "Controller", "Sampling", "Single", "Majority", "Adaptive", "FirstFinish", "BudgetForcing", "DeepConf",
           "Probe", "Plain", "SAMPLE_POLICIES", "SamplePolicy", "force_answer", "get_controller", "controller_class",
           "ControllerSpec", "UnknownController", "OptionError"]

REGISTRY: dict[str, str] = {
    "single": "ponder.controllers.single:Single",
    "majority": "ponder.controllers.majority:Majority",
    "ffs": "ponder.controllers.first_finish:FirstFinish",
    "first_finish": "ponder.controllers.first_finish:FirstFinish",
    "budget_forcing": "ponder.controllers.budget_forcing:BudgetForcing",
    "deepconf": "ponder.controllers.deepconf:DeepConf",
    "probe": "ponder.controllers.probe:Probe",
    "adaptive": "ponder.controllers.adaptive:Adaptive",
}
"""Controller name -> ``module:Class`` of its implementation."""

SAMPLE_POLICIES: dict[str, type] = {"plain": Plain, "budget_forcing": BudgetForcing, "probe": Probe}
"""Per-sample policy name (``sample=NAME``) -> its class."""


class UnknownController(ValueError):
    """A controller name that is not in `REGISTRY`."""


def controller_class(name: str) -> type:
    """The class registered as ``name`` (`UnknownController` if none is)."""
    if not isinstance(name, str) or name not in REGISTRY:
        raise UnknownController(f"unknown controller {name!r}; choose one of {', '.join(sorted(REGISTRY))}")
    module, _, attr = REGISTRY[name].partition(":")
    return getattr(importlib.import_module(module), attr)


_FORCING_KEYS = {f.name for f in dataclasses.fields(BudgetForcing)} - {"sampling"}


def get_controller(name: str, **options: Any) -> Controller:
    """Build a registered controller by name.

    Options named like `Sampling` fields (temperature, top_p, max_tokens, seed) configure the
    samples; budget-forcing options (max_thinking_tokens, min_thinking_tokens, extend,
    answer_tokens) given to a controller with a ``sample`` policy make it budget-force each sample;
    ``sample=NAME`` names a policy in `SAMPLE_POLICIES` and takes that policy's options instead
    (``sample="probe", interval=16``); a policy option whose name the controller has too goes to
    the controller, and to the policy as ``sample_NAME`` (``get_controller("adaptive", rule="beta",
    sample="probe", sample_rule="confidence")``); the rest go to the controller. Unknown names and
    options, and bad values, raise `OptionError` (a ValueError naming the option).
    """
    factory = controller_class(name)
    sampling_keys = {f.name for f in dataclasses.fields(Sampling)}
    sampling = {k: options.pop(k) for k in list(options) if k in sampling_keys and options[k] is not None}
    allowed = {f.name for f in dataclasses.fields(factory)} if dataclasses.is_dataclass(factory) else set()
    if "sample" in allowed and isinstance(options.get("sample"), str):
        allowed |= _policy_options(name, options, allowed)
    elif "sample" in allowed:
        allowed |= _FORCING_KEYS
        given = {k: options.pop(k) for k in list(options) if k in _FORCING_KEYS}
        forcing = {k: v for k, v in given.items() if v is not None}  # None: not given (CLI defaults)
        if forcing and "sample" in options:
            raise OptionError("sample", f"controller {name!r}: give either sample= or {', '.join(sorted(forcing))}, not both")
        if forcing:
            options["sample"] = BudgetForcing(**forcing)
        if "sample" in options and options["sample"] is None:  # None: not given, the controller's default
            del options["sample"]
        if not callable(getattr(options.get("sample", Plain()), "sample", None)):  # -o sample=5
            raise OptionError("sample", f"controller {name!r}: sample must be a policy name "
                                        f"({', '.join(SAMPLE_POLICIES)}) or a policy object (got {options['sample']!r})")
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise OptionError(unknown[0], f"controller {name!r} has no option {', '.join(unknown)}; its options: "
                          f"{', '.join(sorted((allowed - {'sampling'}) | sampling_keys))}", others=unknown[1:])
    if sampling:
        options["sampling"] = Sampling(**sampling)
    return factory(**options)


def _policy_options(name: str, options: dict[str, Any], own: set[str]) -> set[str]:
    """Replace ``options["sample"]`` (a policy name) by the policy built from its options; returns
    the option names it took. Names the controller ``own``s too are taken as ``sample_NAME``."""
    policy = options["sample"]
    if policy not in SAMPLE_POLICIES:
        raise OptionError("sample", f"controller {name!r}: sample must be one of {', '.join(SAMPLE_POLICIES)} (got {policy!r})")
    cls = SAMPLE_POLICIES[policy]
    fields = {f.name for f in dataclasses.fields(cls)} - {"sampling"} if dataclasses.is_dataclass(cls) else set()
    keys = {(f"sample_{f}" if f in own else f): f for f in fields}
    given = {keys[k]: options.pop(k) for k in list(options) if k in keys}
    try:
        options["sample"] = cls(**{k: v for k, v in given.items() if v is not None})  # None: not given
    except OptionError as exc:  # name the option as it was given: sample_rule, not the policy's rule
        said = next((k for k, f in keys.items() if f == exc.option), exc.option)
        raise OptionError(said, str(exc) if said == exc.option else f"{exc} (given as {said})") from None
    return set(keys)
