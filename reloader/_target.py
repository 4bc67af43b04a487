"""The target: ``"package.module:attribute"`` or ``"package.module:factory()"``,
parsed once, and resolved from each generation's instance of its module."""

from __future__ import annotations

import inspect
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ._imports import find_spec_quietly
from .errors import TargetError

if TYPE_CHECKING:
    from ._generation import Generation
    from ._loader import Stage
    from ._roots import Roots

_TARGET = re.compile(r"^(?P<module>[A-Za-z_][\w.]*):(?P<attr>[A-Za-z_][\w.]*)(?P<call>\(\))?$")


def parse_target(target: str) -> tuple[str, str, bool]:
    """``(module, attribute, is_factory)``; :class:`TargetError` when malformed."""
    match = _TARGET.match(target.strip())
    if match is None:
        raise TargetError(
            f"target {target!r} is not of the form 'package.module:attribute' or"
            " 'package.module:factory()'"
        )
    return match["module"], match["attr"], bool(match["call"])


def default_root(module: str) -> Path:
    """The top-level package's own folder, or the folder of a single-module target."""
    top = module.partition(".")[0]
    spec = find_spec_quietly(top, retry=False)
    if spec is None:
        raise TargetError(
            f"cannot find module {top!r} (searched sys.path: {', '.join(sys.path[:4])}, ...);"
            " run from the folder that holds it, or add that folder to PYTHONPATH"
        )
    if spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    if spec.origin and spec.has_location:
        return Path(spec.origin).parent
    raise TargetError(f"module {top!r} is built in or has no source file: it cannot be reloaded")


@dataclass(frozen=True)
class Target:
    """A parsed target and the arguments of its factory."""

    text: str
    module: str
    attr: str
    call: bool
    factory_args: tuple[Any, ...] = ()
    factory_kwargs: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(
        cls, text: str, factory_args: Sequence[Any] = (), factory_kwargs: Mapping[str, Any] | None = None
    ) -> Target:
        module, attr, call = parse_target(text)
        if (factory_args or factory_kwargs) and not call:
            raise ValueError(
                f"factory_args and factory_kwargs need a factory target ('module:factory()'),"
                f" not {text!r}"
            )
        return cls(text, module, attr, call, tuple(factory_args), dict(factory_kwargs or {}))

    def resolve_in(self, stage: Stage, base: Generation | None, roots: Roots) -> Any:
        """The callable to serve from the generation ``stage`` built on ``base``: the
        base's own when the plan did not re-execute the target's module."""
        name = self.module
        module = stage.table.get(name)
        if module is None and name in sys.modules:
            file = getattr(sys.modules[name], "__file__", None)
            raise TargetError(
                f"target module {name!r} ({file}) lies outside the watched roots"
                f" {list(roots.paths)}: it could never be reloaded"
            )
        if module is None:
            raise ModuleNotFoundError(f"no module named {name!r}", name=name)
        if base is not None and name not in stage.fresh:
            return base.target
        return self.resolve(module, stage.call)

    def resolve(self, module: ModuleType, call: Callable[[Callable[[], Any]], Any]) -> Any:
        """The callable to serve, from this generation's instance of the target's
        module; ``call`` runs the factory (so that what it imports is recorded)."""
        obj: Any = module
        for part in self.attr.split("."):
            try:
                obj = getattr(obj, part)
            except AttributeError:
                raise TargetError(
                    f"module {self.module!r} ({module.__file__}) has no attribute {self.attr!r}"
                ) from None
        if self.call:
            if not callable(obj):
                raise TargetError(f"{self.module}:{self.attr} is not callable")
            factory = obj
            # Fresh copies for every generation: a factory that edits its settings must
            # not hand the edit to the next one.
            args = [dict(a) if isinstance(a, dict) else a for a in self.factory_args]
            kwargs = {k: dict(v) if isinstance(v, dict) else v for k, v in self.factory_kwargs.items()}
            _check_factory(factory, self.module, self.attr, args, kwargs)
            obj = call(lambda: factory(*args, **kwargs))
        if not callable(obj):
            kind = type(obj).__name__
            article = "an" if kind[:1].lower() in "aeiou" else "a"
            raise TargetError(f"{self.text} is {article} {kind}, not callable: it cannot be served")
        return obj


def _check_factory(
    fn: Callable[..., Any],
    module: str,
    attr: str,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
) -> None:
    """Refuse ``module:attr()`` where ``attr`` cannot be called with no arguments (or with
    the factory arguments given): it is most likely the application itself."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # no signature to read (a builtin): just call it
        return
    try:
        signature.bind(*args, **(kwargs or {}))
    except TypeError as exc:
        if args or kwargs:
            raise TargetError(
                f"cannot call {module}:{attr}{signature} with the factory arguments: {exc}"
            ) from None
        if next(iter(signature.parameters), "") in ("global_config", "global_conf"):
            raise TargetError(
                f"target '{module}:{attr}()' is a PasteDeploy app factory {attr}{signature}:"
                f" serve the .ini file that names it (hotmod serve development.ini)"
            ) from None
        raise TargetError(
            f"target '{module}:{attr}()' calls {attr}{signature} with no arguments, which it"
            f" does not accept: it is not an app factory; to serve {attr} itself, drop the"
            f" '()': '{module}:{attr}'"
        ) from None
