"""The import graph of model.py and the sensevoice package, read with ast (nothing is imported): no cycles, and no
module imports a higher layer than its own, except the lazy optional imports documented where they happen."""

from __future__ import annotations

import ast
from pathlib import Path

from testkit import ROOT

# Layers, lowest first; a module is in the layer of its longest matching prefix. Imports go down or sideways.
LAYERS = {
    "library": ("model", "sensevoice", "sensevoice.heavy", "sensevoice.optionspec", "sensevoice.modeldir",
                "sensevoice.audio", "sensevoice.checkpoint", "sensevoice.timestamps", "sensevoice.transcripts",
                "sensevoice.vad", "sensevoice.richtext", "sensevoice.result", "sensevoice.subtitles",
                "sensevoice.decoding", "sensevoice.export", "sensevoice.datalist", "sensevoice.hub", "sensevoice.diarize",
                "sensevoice.funasr_speaker"),
    "backends": ("sensevoice.backends",),
    "pipeline": ("sensevoice.pipeline",),
    "doors": ("sensevoice.argtypes", "sensevoice.door", "sensevoice.cli", "sensevoice.__main__", "sensevoice.demo",
              "sensevoice.batch", "sensevoice.batchio", "sensevoice.raybatch", "sensevoice.export_command", "sensevoice.download",
              "sensevoice.serve"),
    "wings": ("sensevoice.bench", "sensevoice.training"),
}
# model.py on its own builds the network, refuses a model.pt that is not data and computes the CTC scores for FunASR
# (it loads the file alone); the package's parts it uses beyond that are imported inside the function that needs
# them, and model.py says so there and in its docstring (tests/test_model_build.py runs it without the package).
LAZY_OPTIONAL = {("model", "sensevoice.audio"): "reading audio: paths, URLs, bytes, arrays (extract_features)",
                 ("model", "sensevoice.backends"): "backend= other than PyTorch fp32",
                 ("model", "sensevoice.checkpoint"): "SenseVoiceSmall.from_pretrained's strict, memory-mapped load",
                 ("model", "sensevoice.decoding"): "FunASR's hotword= (a file or words): DecodingOptions.from_kwargs",
                 ("model", "sensevoice.export"): "AutoModel.export (ONNX)",
                 ("model", "sensevoice.training.objective"): "the training loss (SenseVoiceSmall.forward)",
                 ("model", "sensevoice.transcripts"): "CTC scores -> results (inference): search, confidences, "
                                                      "timestamps"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def our_modules() -> dict[str, Path]:
    paths = [ROOT / "model.py", *sorted((ROOT / "sensevoice").rglob("*.py"))]
    return {module_name(path): path for path in paths}


def imports(path: Path, name: str, modules: dict[str, Path]) -> list[tuple[str, int, bool]]:
    """(imported module of ours, line, lazy: inside a function) for each import statement of the file."""
    found = []
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]

    def visit(node: ast.AST, lazy: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            targets = []
            if isinstance(child, ast.Import):
                targets = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    base = ".".join(package.split(".")[:len(package.split(".")) - child.level + 1] + ([base] if base else []))
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in child.names]
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    found.append((target, child.lineno, lazy))
            visit(child, inner)

    visit(ast.parse(path.read_text(encoding="utf-8")), False)
    return found


def layer(name: str) -> int:
    best = max(((len(prefix), rank) for rank, prefixes in enumerate(LAYERS.values()) for prefix in prefixes
                if name == prefix or name.startswith(prefix + ".")), default=None)
    assert best is not None, f"{name} is in no layer of tests/test_layers.py: add it to LAYERS"
    return best[1]


def graph() -> dict[str, set[str]]:
    modules = our_modules()
    edges: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for target, line, lazy in imports(path, name, modules):
            if (name, target) in LAZY_OPTIONAL:
                assert lazy, f"{name}:{line} imports {target} at import time; it must stay lazy (optional)"
                continue
            edges[name].add(target)
    return edges


def test_every_module_is_in_a_layer():
    for name in our_modules():
        layer(name)


def test_no_import_goes_up_a_layer():
    names = list(LAYERS)
    upward = [f"{a} ({names[layer(a)]}) imports {b} ({names[layer(b)]})"
              for a, targets in graph().items() for b in sorted(targets) if layer(b) > layer(a)]
    assert not upward, "\n".join(upward)


def test_no_import_cycles():
    edges = graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles = []

    def walk(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(edges[node]):
            if state.get(target) == 1:
                cycles.append(" -> ".join(path[path.index(target):] + [node, target]) if target in path
                              else f"{node} -> {target}")
            elif target not in state:
                walk(target, path + [node])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            walk(node, [])
    assert not cycles, "\n".join(cycles)


def test_the_lazy_optional_imports_are_the_documented_ones():
    """model.py's imports of the package are exactly LAZY_OPTIONAL, each inside a function, and the package's
    docstring says so (it once said model.py never imports the package)."""
    modules = our_modules()
    found = {("model", target) for target, _, lazy in imports(modules["model"], "model", modules)}
    assert found == set(LAZY_OPTIONAL)
    package_doc = ast.get_docstring(ast.parse(modules["sensevoice"].read_text(encoding="utf-8")))
    for _, target in LAZY_OPTIONAL:
        assert target.removeprefix("sensevoice.") in package_doc


def test_tests_import_testkit_not_conftest():
    """pytest loads conftest.py itself; importing it as a module too gives two copies of its globals."""
    offenders = [f"{path.name}:{node.lineno}" for path in sorted((ROOT / "tests").glob("*.py"))
                 for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                 if isinstance(node, ast.ImportFrom) and node.module == "conftest"
                 or isinstance(node, ast.Import) and any(alias.name == "conftest" for alias in node.names)]
    assert not offenders, offenders
