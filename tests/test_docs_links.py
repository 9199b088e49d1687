"""The documentation's relative links resolve: every `[text](path#anchor)` in README.md and docs/*.md points to a file
or folder that exists and, where an anchor is given for a markdown file, to a heading of that file. Also: the docs
index lists every docs file, and the pages that enumerate config keys and core modules miss none."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from helpers import REPO_ROOT

DOCUMENTS = sorted([REPO_ROOT / "README.md", *(REPO_ROOT / "docs").glob("*.md")])
FENCED_BLOCK = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", re.MULTILINE)
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # http:, https:, mailto:, ...


def prose(text: str) -> str:
    """The text without code, where brackets and parentheses are not links."""
    return INLINE_CODE.sub("", FENCED_BLOCK.sub("", text))


def anchors(markdown_file: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens, repeats numbered."""
    seen: dict[str, int] = {}
    result = set()
    for heading in HEADING.findall(FENCED_BLOCK.sub("", markdown_file.read_text())):
        slug = re.sub(r"[^\w\- ]", "", heading.replace("`", "").strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        result.add(slug if count == 0 else f"{slug}-{count}")
    return result


def relative_links(document: Path) -> list[str]:
    return [target for target in LINK.findall(prose(document.read_text())) if not EXTERNAL.match(target)]


def test_the_documents_are_found():
    names = {path.relative_to(REPO_ROOT).as_posix() for path in DOCUMENTS}
    assert {"README.md", "docs/README.md", "docs/differences.md", "docs/benchmarks.md"} <= names


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.relative_to(REPO_ROOT).as_posix())
def test_relative_links_resolve(document):
    broken = []
    for target in relative_links(document):
        path_part, _, anchor = target.partition("#")
        linked = (document.parent / path_part).resolve() if path_part else document
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no heading with the anchor #{anchor} in {linked.name}")
    assert not broken, f"{document.relative_to(REPO_ROOT)}: " + "; ".join(broken)


def test_every_docs_file_is_listed_in_the_index():
    index = (REPO_ROOT / "docs" / "README.md").read_text()
    unlisted = [path.name for path in DOCUMENTS
                if path.parent.name == "docs" and path.name != "README.md" and f"]({path.name}" not in index]
    assert not unlisted, f"docs/README.md does not link {unlisted}"


def test_every_config_key_is_documented():
    from training.tools.config import DEFAULTS, FREE_FORM

    def dotted_keys(tree: dict, prefix: str = "") -> list[str]:
        keys = []
        for key, value in tree.items():
            name = f"{prefix}{key}"
            keys += dotted_keys(value, f"{name}.") if isinstance(value, dict) and name not in FREE_FORM else [name]
        return keys

    text = (REPO_ROOT / "docs" / "config_keys.md").read_text()

    def documented(key: str) -> bool:
        head, _, last = key.rpartition(".")
        return f"`{key}`" in text or (bool(head) and f"`.{last}`" in text and f"`{head}." in text)

    missing = [key for key in dotted_keys(DEFAULTS) if not documented(key)]
    assert not missing, f"docs/config_keys.md does not describe {missing}"


def test_the_architecture_page_lists_every_core_module():
    text = (REPO_ROOT / "docs" / "architecture.md").read_text()
    modules = sorted(path.stem for path in (REPO_ROOT / "core").glob("*.py") if path.stem != "__init__")
    missing = [name for name in modules if f"| `{name}` |" not in text]
    assert not missing, f"docs/architecture.md does not list core/{missing}"
