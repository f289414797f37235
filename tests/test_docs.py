"""The manual and the READMEs point at things that exist (fast; mkdocs itself is not needed).

- every Markdown link (inline ``[x](target)``, images, reference definitions ``[x]: target``) in
  README.md, lab_notebooks/README.md and docs/**/*.md that is not a URL resolves to a file or folder of
  the repository — and, from a docs/ page, to one inside docs/ (mkdocs only links its own pages);
- every repository path quoted as code (``docs/…md``, ``lab_notebooks/…``, ``tests/….py``, a folder
  ``…/``) exists; globs, placeholders and generated outputs (``data/``, ``benchmarks/results/``) excepted;
- every page under docs/ is in the nav of mkdocs.yml and every nav entry exists;
- the command-line reference (docs/manual/cli.md) is what docs/tools/cli_reference.py renders from the
  real CLI, and every ``hamsim <command> --option`` quoted anywhere names a real command and option.

Each check is a function over text, so ``test_*_can_fail`` show on synthetic input that it catches what
it is for.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
CLI_PAGE = DOCS / "manual" / "cli.md"

#: generated outputs: quoted in the docs, never committed
GENERATED = ("data/", "benchmarks/results/")
#: info strings of fenced blocks that hold command lines
SHELL = ("bash", "sh", "shell", "console", "")
#: paths the ADRs quote as history (the layout before a decision); they are meant not to exist any more
HISTORICAL = {"hamsim/hardware/"}


def doc_files(root: Path = ROOT) -> list[Path]:
    files = [root / "README.md", root / "lab_notebooks" / "README.md"]
    files += sorted((root / "docs").rglob("*.md"))
    return [f for f in files if f.is_file()]


def _rel(path: Path, root: Path = ROOT) -> str:
    return path.relative_to(root).as_posix()


# ------------------------------------------------------------------------------------------ parsing
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})[^\n]*\n.*?^ {0,3}\1[ \t]*$", re.M | re.S)
_SPAN = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.S)
_INLINE = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)")
_REFDEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)", re.M)


def fenced_blocks(text: str, languages: tuple[str, ...] | None = None) -> list[str]:
    """Fenced code blocks, optionally only those whose info string is one of ``languages``."""
    blocks = [m.group(0) for m in _FENCE.finditer(text)]
    if languages is None:
        return blocks
    return [b for b in blocks if b.splitlines()[0].strip(" `~").split(" ", 1)[0].lower() in languages]


def without_fences(text: str) -> str:
    """The text with fenced code blocks blanked (line numbers kept)."""
    return _FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)


def code_spans(text: str) -> list[str]:
    """Inline code spans outside fenced blocks."""
    return [m.group(2).strip() for m in _SPAN.finditer(without_fences(text))]


def link_targets(text: str) -> list[str]:
    """Targets of inline links, images and reference definitions, outside code."""
    prose = _SPAN.sub(lambda m: " " * len(m.group(0)), without_fences(text))
    targets = [m.group(1) for m in _INLINE.finditer(prose)] + [m.group(1) for m in _REFDEF.finditer(prose)]
    return [t[1:-1] if t.startswith("<") and t.endswith(">") else t for t in targets]


# ------------------------------------------------------------------------------------------ checks
def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    """Link targets of one file that do not resolve inside the repository (and, from docs/, inside docs/)."""
    docs = (root / "docs").resolve()
    in_docs = docs in path.resolve().parents
    bad = []
    for target in link_targets(path.read_text(encoding="utf-8")):
        if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", target) or target.startswith("//"):
            continue  # http:, https:, mailto: ...
        local = unquote(target.split("#", 1)[0].split("?", 1)[0])
        if not local:
            continue  # an anchor in the same page (mkdocs --strict checks anchors)
        resolved = (path.parent / local).resolve()
        if not resolved.exists():
            bad.append(f"{target}: no such file")
        elif resolved != root.resolve() and root.resolve() not in resolved.parents:
            bad.append(f"{target}: outside the repository")
        elif in_docs and resolved != docs and docs not in resolved.parents:
            bad.append(f"{target}: outside docs/ (mkdocs cannot link it; quote the path as code)")
    return bad


def _top_level(root: Path) -> set[str]:
    return {p.name for p in root.iterdir() if p.is_dir() and p.name not in (".git", ".venv") and not p.name.endswith(".egg-info")}


def path_candidates(text: str, top: set[str]) -> list[str]:
    """Code spans that look like repository paths: a top-level folder, a '/', and a file extension or a
    trailing '/'; pytest node ids lose their ``::test``."""
    out = []
    for span in code_spans(text):
        span = span.split("::", 1)[0]
        if any(c in span for c in "*?[]{}<>|$ \t\n…") or "..." in span:
            continue  # globs, placeholders, command lines
        first = span.split("/", 1)[0]
        if "/" not in span or first not in top:
            continue
        if span.endswith("/") or re.search(r"\.[A-Za-z0-9]+$", span.rsplit("/", 1)[-1]):
            out.append(span)
    return out


def missing_paths(path: Path, root: Path = ROOT) -> list[str]:
    top = _top_level(root)
    bad = []
    for p in path_candidates(path.read_text(encoding="utf-8"), top):
        if p.startswith(GENERATED) and p != "data/README.md" or p in HISTORICAL:
            continue
        if not (root / p).exists():
            bad.append(p)
    return bad


def nav_entries(mkdocs_yml: str) -> list[str]:
    """The page paths listed under ``nav:`` (one ``- Title: page.md`` or ``- page.md`` per line)."""
    nav = mkdocs_yml.split("\nnav:", 1)[1] if "\nnav:" in mkdocs_yml else ""
    nav = re.split(r"\n(?=\S)", nav, maxsplit=1)[0]  # up to the next top-level key
    return re.findall(r"^\s*-\s+(?:[^\n]*?:\s+)?([^\s:]+\.md)\s*$", nav, re.M)


def nav_problems(root: Path = ROOT) -> list[str]:
    entries = nav_entries((root / "mkdocs.yml").read_text(encoding="utf-8"))
    docs = root / "docs"
    pages = {_rel(p, docs) for p in docs.rglob("*.md") if "tools" not in p.relative_to(docs).parts}
    out = [f"nav entry {e}: no such page" for e in entries if not (docs / e).is_file()]
    out += [f"{p}: not in the nav of mkdocs.yml" for p in sorted(pages - set(entries))]
    out += [f"nav entry {e} listed twice" for e in sorted({e for e in entries if entries.count(e) > 1})]
    return out


def quoted_commands(text: str) -> list[str]:
    """``hamsim ...`` command lines quoted as code: inline spans and the lines of shell blocks (```bash,
    ```sh, ```console or no language; ```text blocks are program output, ```python is Python)."""
    lines = code_spans(text)
    for block in fenced_blocks(text, SHELL):
        lines += block.splitlines()[1:-1]
    out = []
    for line in lines:
        for m in re.finditer(r"(?:^|[\s/(`])hamsim\s+(.+)", line):
            out.append(m.group(1))
    return out


def option_problems(text: str, options: dict[str, set[str]]) -> list[str]:
    """Commands and options of quoted ``hamsim`` lines that the CLI does not have.  ``options`` maps a
    command path ("", "train", "design sweep") to its option names."""
    bad = []
    for cmd in quoted_commands(text):
        cmd = re.split(r"\s(?:#|&&|\|\||;|>|2>)\s?", " " + cmd, maxsplit=1)[0].strip()
        words = [w.strip("[](),`") for w in cmd.replace("\\|", "|").split()]
        words = [w for w in words if w]
        while words[:1] == ["--config"] or (words and words[0].startswith("--config=")):
            words = words[2:] if words[0] == "--config" else words[1:]
        if not words or words[0].startswith("-"):
            continue
        for first in words[0].split("|"):
            path, rest = first, words[1:]
            if first in options and any(k.startswith(first + " ") for k in options) and rest:
                subs = [s for s in rest[0].split("|") if f"{first} {s}" in options]
                if subs:
                    path, rest = f"{first} {subs[0]}", rest[1:]
            if path not in options:
                if re.fullmatch(r"[a-z]+", first):
                    bad.append(f"hamsim {cmd}: no command {first!r}")
                continue
            for w in rest:
                if w.startswith("--"):
                    name = w.split("=", 1)[0]
                    if name not in options[path] | {"--help", "--debug"}:
                        bad.append(f"hamsim {cmd}: {path or 'hamsim'} has no option {name}")
    return bad


# ------------------------------------------------------------------------------------------ the CLI
def _cli_reference():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("cli_reference", DOCS / "tools" / "cli_reference.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def cli() -> tuple[object, dict[str, str]]:
    module = _cli_reference()
    return module, module.help_texts()


def options_of(help_texts: dict[str, str]) -> dict[str, set[str]]:
    return {path: set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", text)) for path, text in help_texts.items()}


# ------------------------------------------------------------------------------------------ tests
FILES = doc_files()


@pytest.mark.parametrize("path", FILES, ids=[_rel(p) for p in FILES])
def test_links_resolve(path: Path) -> None:
    assert broken_links(path) == []


@pytest.mark.parametrize("path", FILES, ids=[_rel(p) for p in FILES])
def test_quoted_repository_paths_exist(path: Path) -> None:
    assert missing_paths(path) == []


def test_every_page_is_in_the_nav_and_every_entry_exists() -> None:
    assert nav_problems() == []


def test_cli_reference_is_generated_from_the_cli(cli: tuple[object, dict[str, str]]) -> None:
    module, _ = cli
    assert CLI_PAGE.read_text(encoding="utf-8") == module.render(), (  # type: ignore[attr-defined]
        "docs/manual/cli.md is stale: run python docs/tools/cli_reference.py")


def test_cli_reference_covers_every_command(cli: tuple[object, dict[str, str]]) -> None:
    _, texts = cli
    listed = set(re.findall(r"^  ([a-z]+)  ", texts[""], re.M))
    design = set(re.findall(r"^  ([a-z]+)  ", texts["design"], re.M))
    assert listed and design
    assert {p for p in texts if p} == listed | {f"design {s}" for s in design}


@pytest.mark.parametrize("path", FILES, ids=[_rel(p) for p in FILES])
def test_quoted_commands_and_options_exist(path: Path, cli: tuple[object, dict[str, str]]) -> None:
    if path == CLI_PAGE:
        return
    _, texts = cli
    assert option_problems(path.read_text(encoding="utf-8"), options_of(texts)) == []


# ------------------------------------------------------------------------------------------ the checks fail
def _tree(tmp_path: Path) -> Path:
    (tmp_path / "docs" / "manual").mkdir(parents=True)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_x.py").write_text("")
    (tmp_path / "docs" / "index.md").write_text("# home\n")
    (tmp_path / "README.md").write_text("# readme\n")
    return tmp_path


def test_broken_links_can_fail(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    page = root / "docs" / "manual" / "page.md"
    page.write_text("[ok](../index.md#top) [gone](missing.md) ![img](pic.png) [web](https://example.org)\n"
                    "[out](../../README.md) `[not a link](nowhere.md)`\n\n[ref]: ../nothere.md\n\n"
                    "```\n[in code](nowhere.md)\n```\n")
    assert broken_links(page, root) == ["missing.md: no such file", "pic.png: no such file",
                                        "../../README.md: outside docs/ (mkdocs cannot link it; quote the path as code)",
                                        "../nothere.md: no such file"]
    (root / "README.md").write_text("[docs](docs/index.md) [x](docs/manual/nope.md) [up](../elsewhere.md)\n")
    (tmp_path.parent / "elsewhere.md").write_text("")
    assert broken_links(root / "README.md", root) == ["docs/manual/nope.md: no such file",
                                                      "../elsewhere.md: outside the repository"]


def test_missing_paths_can_fail(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    page = root / "docs" / "p.md"
    page.write_text("`tests/test_x.py::test_a` `tests/test_y.py` `docs/manual/` `docs/gone/` `data/train-*.h5` "
                    "`data/run.h5` `tests/<name>.py` `hamsim.replay` `other/x.py` `docs/index.md`\n")
    assert missing_paths(page, root) == ["tests/test_y.py", "docs/gone/"]


def test_nav_problems_can_fail(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    (root / "docs" / "manual" / "a.md").write_text("# a\n")
    (root / "mkdocs.yml").write_text("site_name: x\nnav:\n  - Home: index.md\n  - Guides:\n"
                                     "      - Ghost: manual/ghost.md\nplugins:\n  - search\n")
    assert nav_problems(root) == ["nav entry manual/ghost.md: no such page", "manual/a.md: not in the nav of mkdocs.yml"]


def test_option_problems_can_fail() -> None:
    options = {"": {"--config"}, "train": {"--epochs", "--eps"}, "design": set(), "design sweep": {"--workers"}}
    text = ("Run `hamsim train --epochs 3 --eps=0.1` then `hamsim train --epoch 3`, `hamsim trian`,\n"
            "`hamsim --config lab.toml train --eps 1` and\n\n```bash\nhamsim design sweep c.toml --workers 2"
            "   # --not-an-option\nhamsim design sweep c.toml --jobs 2\n```\n")
    assert option_problems(text, options) == ["hamsim train --epoch 3: train has no option --epoch",
                                              "hamsim trian: no command 'trian'",
                                              "hamsim design sweep c.toml --jobs 2: design sweep has no option --jobs"]


def test_cli_reference_check_can_fail(cli: tuple[object, dict[str, str]], tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    module, _ = cli
    stale = tmp_path / "cli.md"
    stale.write_text(CLI_PAGE.read_text(encoding="utf-8").replace("--epochs", "--epoch"), encoding="utf-8")
    monkeypatch.setattr(module, "PAGE", stale)
    monkeypatch.setattr(module, "ROOT", tmp_path)
    assert module.main(["--check"]) == 1  # type: ignore[attr-defined]
