"""The README and docs/ hold together: every relative link resolves (file and, for a Markdown
page, heading anchor), the README stays short and opens with the whole set-up, and docs/design.md
names only modules, files and attributes that exist. No model, no network."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]

LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def _prose(text: str) -> str:
    """The page without its code blocks (a link-like string in code is not a link)."""
    return FENCE.sub("", text)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    slugs: set[str] = set()
    for line in _prose(page.read_text()).splitlines():
        m = re.match(r"#{1,6}\s+(.*)", line)
        if m:
            base = _slug(m.group(1))
            slug, i = base, 0
            while slug in slugs:  # GitHub numbers repeated headings
                i += 1
                slug = f"{base}-{i}"
            slugs.add(slug)
    return slugs


def _links(page: Path) -> list[str]:
    return [m.group(1) for m in LINK.finditer(_prose(page.read_text()))]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path):
    broken = []
    for target in _links(page):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{target}: no file {dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest}")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(f"{target}: no heading #{anchor} in {dest.relative_to(ROOT)}")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def test_readme_is_short_and_opens_with_the_whole_set_up():
    text = README.read_text()
    assert text.count("\n") < 250, f"README.md has {text.count(chr(10))} lines (limit 250: details go in docs/)"
    fence = FENCE.search(text)
    assert text.startswith("# ponder\n") and fence.start() < text.index("\n## "), \
        "README.md must open with its title, then the set-up commands before any section"
    first = fence.group(0)
    assert re.search(r"^make demo\b", first, re.M) and re.search(r"^make test\b", first, re.M), first
    # .ci/run is the README's test command
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_readme_links_every_doc():
    linked = {(README.parent / t.partition("#")[0]).resolve() for t in _links(README)}
    missing = [d.name for d in DOCS if d.resolve() not in linked and d.name != "scores.md"]
    assert not missing, f"README.md links no docs/{', docs/'.join(missing)}"


def test_rl_tables_live_in_docs_rl():
    """scripts/rl_report.py --docs rewrites these blocks; the README keeps none."""
    rl = (ROOT / "docs" / "rl.md").read_text()
    names = re.findall(r"^<!-- rl-report:([\w.-]+) -->$", rl, re.M)
    assert {"tiny", "harmless", "verbose", "segment_rollout", "rl_engines"} <= set(names)
    assert all(f"<!-- /rl-report:{n} -->" in rl for n in names)
    assert "rl-report:" not in README.read_text()


PATH = re.compile(r"(?<![\w/.])((?:ponder|scripts|tests|bench|recipes|docs)/[\w./*{},-]*[\w}]/?)")


def _missing_paths(text: str) -> list[str]:
    """Repository paths named in ``text`` that do not exist (``a.{md,json}`` and ``name.*`` allowed;
    an all-capitals part such as ``ponder/engines/KIND.py`` is a placeholder)."""
    missing = []
    for path in set(PATH.findall(text)):
        path = path.split("::")[0]
        if any(part.split(".")[0].isupper() for part in path.split("/")):
            continue
        m = re.search(r"\{([^}]*)\}", path)
        options = [path[:m.start()] + o + path[m.end():] for o in m.group(1).split(",")] if m else [path]
        if not all(list(ROOT.glob(o)) or list(ROOT.glob(o + ".*")) for o in options):
            missing.append(f"no file {path}")
    return missing


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_path_named_exists(page: Path):
    missing = _missing_paths(page.read_text())
    assert not missing, f"{page.relative_to(ROOT)}: {sorted(missing)}"


def _module_file(dotted: list[str]) -> tuple[Path | None, list[str]]:
    """The longest prefix of ``ponder.a.b...`` that is a module or package, and the rest."""
    for i in range(len(dotted), 0, -1):
        base = ROOT.joinpath(*dotted[:i])
        for cand in (base.with_suffix(".py"), base / "__init__.py"):
            if cand.exists():
                return cand, dotted[i:]
    return None, dotted


def _defines(module: Path, name: str) -> bool:
    """Whether ``name`` is defined, imported or assigned at the top of ``module`` (or is a class
    attribute or method name in it)."""
    tree = ast.parse(module.read_text())
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            return True
        if isinstance(node, (ast.Import, ast.ImportFrom)) and any((a.asname or a.name.split(".")[-1]) == name for a in node.names):
            return True
        if isinstance(node, ast.Name) and node.id == name and isinstance(node.ctx, ast.Store):
            return True
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == name:
            return True
    return False


def test_design_cites_only_what_exists():
    text = (ROOT / "docs" / "design.md").read_text()
    wrong = _missing_paths(text)  # ponder/x/y.py, ponder/x/, scripts/..., tests/..., bench/...
    # dotted names: ponder.x.y[.Attr]
    for dotted in set(re.findall(r"\bponder(?:\.\w+)+", text)):
        module, rest = _module_file(dotted.split("."))
        if module is None or len(rest) > 1 or (rest and not _defines(module, rest[0])):
            wrong.append(f"no module or attribute {dotted}")
    # the layer tree: every `name.py` or `name/` listed under a package exists in it
    tree = FENCE.search(text[text.index("## 1. Layers"):]).group(0)
    package = None
    for line in tree.splitlines():
        m = re.match(r"  (\w+(?:\.py|/))", line)
        if m:
            package = ROOT / "ponder" / m.group(1).rstrip("/")
            if not package.exists():
                wrong.append(f"no ponder/{m.group(1)}")
            continue
        if package is not None and package.is_dir() and line.startswith("      "):
            for name in re.findall(r"\b(\w+\.py|\w+/)(?=[\s,:;)(]|$)", line):
                if not (package / name.rstrip("/")).exists() and not (package / "ray" / name).exists():
                    wrong.append(f"no {package.relative_to(ROOT)}/{name}")
    # test names: tests/file.py::test_name
    for file, name in re.findall(r"(tests/\w+\.py)::(\w+)", text):
        if f"def {name}(" not in (ROOT / file).read_text():
            wrong.append(f"no {file}::{name}")
    assert not wrong, sorted(wrong)


def test_design_references_in_code_point_at_docs():
    for rel in ("ponder/types.py", "ponder/controllers/exit.py"):
        head = (ROOT / rel).read_text()[:600]
        assert "docs/design.md" in head, f"{rel} should cite docs/design.md"
    assert (ROOT / "docs" / "design.md").exists()
