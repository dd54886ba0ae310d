"""The fields of ``model.DecodingOptions`` as the front doors see them: one ``Option`` per field, read from its
declaration in model.py (``option(default, help, **spec)``; model.option's docstring lists the keys). The command
line's flags (``argtypes.add_decoding_arguments``), the service's form and WebSocket fields (``serve.fields``), the
batch job's settings and FunASR's kwargs (``DecodingOptions.from_kwargs``) all come from these, so a new option is
one field in model.py.

Two readings of the one declaration: ``of_type(cls)`` from the dataclass itself (the service; tests pass a copy of
the type with a field added), ``declared()`` from model.py's source text, without importing torch (the command
line builds its parser and checks its values before any heavy import). tests/test_options.py checks they agree.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
from dataclasses import dataclass
from typing import Any, Mapping

from sensevoice import REPO_ROOT

OPTIONS_CLASS = "DecodingOptions"
KINDS = ("bool", "int", "float", "str", "tuple")  # the field types DecodingOptions knows how to check
DOORS = ("cli", "form", "stream")  # the spellings a field may override with names={door: name}


@dataclass(frozen=True)
class Option:
    """One field of DecodingOptions: name, type (one of KINDS), default, help line and the rest of its spec."""

    name: str
    kind: str
    default: Any
    help: str
    spec: Mapping[str, Any]

    @property
    def exposed(self) -> bool:
        """Whether the doors take it (fs and output_timestamp are set by each door from its input or format)."""
        return self.spec.get("doors", True)

    @property
    def per_request(self) -> bool:
        return self.spec.get("per_request", False)

    def spelled(self, door: str) -> str:
        """Its name at a door (one of DOORS): ``--beam-size`` on the command line, ``beam_size`` in a form."""
        if door not in DOORS:
            raise ValueError(f"door={door!r}; expected one of {DOORS}")
        default = "--" + self.name.replace("_", "-") if door == "cli" else self.name
        return self.spec.get("names", {}).get(door, default)

    def from_flag(self, on: bool) -> Any:
        """The value of an ``as_flag`` field for a yes/no answer (textnorm: True -> "withitn")."""
        on_value, off_value = self.spec["as_flag"]
        return on_value if on else off_value

    def as_flag(self, value: Any) -> bool:
        return value == self.spec["as_flag"][0]


def kind_of(annotation: Any) -> str:
    kind = getattr(annotation, "__name__", annotation)  # a string under ``from __future__ import annotations``
    if kind not in KINDS:
        raise TypeError(f"{OPTIONS_CLASS} field type {kind!r}; expected one of {KINDS}")
    return kind


def of_type(cls: type) -> tuple[Option, ...]:
    """The options of a DecodingOptions class (or a subclass with more fields), in declaration order."""
    return tuple(Option(f.name, kind_of(f.type), f.default, f.metadata.get("help", ""),
                        {k: v for k, v in f.metadata.items() if k != "help"}) for f in dataclasses.fields(cls))


@functools.cache
def model_source() -> ast.Module:
    return ast.parse((REPO_ROOT / "model.py").read_text(encoding="utf-8"))


@functools.cache
def model_constant(name: str) -> Any:
    """A literal constant of model.py (LANGUAGES, LANGUAGE_ALIASES, BACKEND_PRECISIONS …), without importing it."""
    for node in model_source().body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise KeyError(f"model.py defines no literal constant {name}")


def evaluate(node: ast.expr) -> Any:
    """A declaration's value: a literal, a tuple/list/dict of them, a constant of model.py or ``len(CONSTANT)``."""
    if isinstance(node, ast.Name):
        return model_constant(node.id)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "len" and len(node.args) == 1:
        return len(evaluate(node.args[0]))
    if isinstance(node, (ast.Tuple, ast.List)):
        return tuple(evaluate(e) for e in node.elts) if isinstance(node, ast.Tuple) else [evaluate(e) for e in node.elts]
    if isinstance(node, ast.Dict):
        return {evaluate(k): evaluate(v) for k, v in zip(node.keys, node.values)}
    return ast.literal_eval(node)  # ValueError names what a declaration may not hold


@functools.cache
def declared() -> tuple[Option, ...]:
    """The options of model.py's DecodingOptions, read from its source: no torch import."""
    cls = next((n for n in model_source().body if isinstance(n, ast.ClassDef) and n.name == OPTIONS_CLASS), None)
    if cls is None:
        raise KeyError(f"model.py defines no class {OPTIONS_CLASS}")
    options = []
    for node in cls.body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        call = node.value
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "option"):
            raise ValueError(f"model.py: {OPTIONS_CLASS}.{node.target.id} must be declared with option(default, "
                             "help, **spec)")
        default, help_text = (evaluate(arg) for arg in call.args)
        spec = {keyword.arg: evaluate(keyword.value) for keyword in call.keywords}
        options.append(Option(node.target.id, kind_of(ast.unparse(node.annotation)), default, help_text, spec))
    return tuple(options)
