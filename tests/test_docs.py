"""The documentation's links and example: README.md is a short front page, docs/*.md behind it.

Every relative link or image of README.md and docs/*.md must name an existing file (relative
to the markdown file's folder), and every #anchor a heading of the file it points into, by
GitHub's rule; the README stays short and links every page under docs/.
"""
import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
MAX_README_LINES = 220

LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$")
FENCE = re.compile(r"^ {0,3}(```|~~~)")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
EXTERNAL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")   # http:, https:, mailto:, ...


def markdown_files():
    return [README] + sorted(DOCS.glob("*.md"))


def prose_lines(path):
    """(line number, text) of the lines outside fenced code blocks."""
    fenced = None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        fence = FENCE.match(line)
        if fence:
            if fenced is None:
                fenced = fence.group(1)
            elif fence.group(1) == fenced:
                fenced = None
            continue
        if fenced is None:
            yield number, line


def anchor_of(heading):
    """GitHub's anchor: the heading's text (links reduced to their text, code marks
    dropped), lower-cased, every character other than a letter, digit, space, hyphen or
    underscore dropped, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def anchors(path):
    """Every anchor the file's headings make; a repeated one also as -1, -2, ... as GitHub
    numbers them."""
    seen = {}
    found = set()
    for _, line in prose_lines(path):
        match = HEADING.match(line)
        if match:
            anchor = anchor_of(match.group(2))
            count = seen.get(anchor, 0)
            seen[anchor] = count + 1
            found.add(anchor if count == 0 else f"{anchor}-{count}")
    return found


def links(path):
    """(line number, target) of every markdown link and image outside code."""
    for number, line in prose_lines(path):
        for match in LINK.finditer(CODE_SPAN.sub("", line)):
            yield number, match.group(1)


def relative(path):
    return path.relative_to(ROOT).as_posix()


def broken_links(path):
    broken = []
    for number, target in links(path):
        where = f"{relative(path)}:{number}: link ({target})"
        if EXTERNAL.match(target):
            continue
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / unquote(file_part)).resolve() if file_part else path
        if not resolved.exists():
            broken.append(f"{where}: no file {resolved}")
            continue
        if anchor and resolved.suffix == ".md":
            if unquote(anchor).lower() not in anchors(resolved):
                broken.append(f"{where}: no heading with anchor #{anchor} in "
                              f"{relative(resolved)}")
    return broken


@pytest.mark.parametrize("path", markdown_files(), ids=relative)
def test_relative_links_resolve(path):
    broken = broken_links(path)
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_readme_is_a_front_page():
    lines = len(README.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_README_LINES, \
        f"README.md has {lines} lines, at most {MAX_README_LINES}: move a section to docs/"


def test_every_page_is_linked_from_the_readme():
    linked = set()
    for _, target in links(README):
        file_part = target.partition("#")[0]
        if file_part and not EXTERNAL.match(target):
            linked.add((README.parent / unquote(file_part)).resolve())
    pages = sorted(DOCS.glob("*.md"))
    assert pages, "docs/ has no pages"
    unlinked = [relative(page) for page in pages if page.resolve() not in linked]
    assert not unlinked, f"README.md links no ({', '.join(unlinked)}): add each to its map"


def test_anchor_rule():
    """GitHub's rule on headings of these pages."""
    assert anchor_of("Mahalanobis in full and FSSD on CIFAR-10 (`--layerwise`)") == \
        "mahalanobis-in-full-and-fssd-on-cifar-10---layerwise"
    assert anchor_of("Every table: `bash scripts/reproduce_tables.sh`") == \
        "every-table-bash-scriptsreproduce_tablessh"
    assert anchor_of("Choosing T and ε") == "choosing-t-and-ε"


def test_the_readmes_python_example_runs(installed, capsys):
    """The README's notebook example, on 10 + 10 images instead of 200 + 200: it imports the
    package as a user would and prints the five metrics."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) == 1, "the README has one Python example"
    assert "1000, 1200)" in blocks[0]
    exec(compile(blocks[0].replace("1000, 1200)", "1000, 1010)"), "README", "exec"), {})
    printed = capsys.readouterr().out
    assert "'FPR at TPR 95%'" in printed and "'AUROC'" in printed, printed


@pytest.mark.parametrize("path", markdown_files(), ids=relative)
def test_named_code_files_exist(path):
    """Every code/... or scripts/... file the page names exists (a moved module's old path
    in the docs fails here)."""
    named = set(re.findall(r"\b((?:code|scripts|tests)/[\w/]+\.(?:py|sh))", path.read_text()))
    missing = sorted(name for name in named if not (ROOT / name).is_file())
    assert not missing, f"{relative(path)} names files that do not exist: {missing}"
