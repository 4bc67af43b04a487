"""The path rules of ``reloader/_roots.py``: the ``extra`` glob forms and the patterns
refused at start because they could never match."""

from __future__ import annotations

from pathlib import Path

import pytest

from hotmod.reloader._roots import ExtraGlobs


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    for folder in ("templates/blog", "static", "deep/a/b"):
        (root / folder).mkdir(parents=True)
    (tmp_path / "etc").mkdir()
    return root


@pytest.mark.parametrize(
    ("pattern", "matching", "not_matching"),
    [
        ("*.html", ["index.html", "templates/blog/post.html"], ["index.htm", "templates/x.css"]),
        ("templates/*.html", ["templates/index.html"], ["templates/blog/post.html", "index.html"]),
        ("templates/**/*.html", ["templates/index.html", "templates/blog/post.html"], ["static/a.html"]),
        ("**/*.jinja", ["a.jinja", "deep/a/b/c.jinja"], ["deep/a/b/c.jinja2"]),
        ("static/[ab]?.css", ["static/a1.css", "static/b2.css"], ["static/c1.css", "static/a12.css"]),
        ("static/[!a]*.css", ["static/b.css"], ["static/a.css"]),
    ],
)
def test_relative_patterns_match_below_each_root(
    tree: Path, pattern: str, matching: list[str], not_matching: list[str]
) -> None:
    globs = ExtraGlobs([pattern], [str(tree)])
    for rel in matching:
        assert globs.match(str(tree / rel), str(tree)), rel
    for rel in not_matching:
        assert not globs.match(str(tree / rel), str(tree)), rel


def test_absolute_patterns_match_inside_a_root_and_outside_every_root(tree: Path) -> None:
    etc = tree.parent / "etc"
    globs = ExtraGlobs([f"{tree}/templates/*.html", f"{etc}/*.toml"], [str(tree)])
    assert globs.match(str(tree / "templates" / "a.html"), str(tree))
    assert not globs.match(str(tree / "templates" / "blog" / "a.html"), str(tree))
    assert globs.match(str(etc / "app.toml"), None)
    assert not globs.match(str(etc / "app.ini"), None)
    # Only the folder outside the roots needs a watch of its own.
    assert globs.outside_bases == {str(etc): False}


def test_an_absolute_pattern_through_a_symlinked_folder_matches_the_real_paths(tree: Path) -> None:
    link = tree.parent / "link"
    link.symlink_to(tree)
    globs = ExtraGlobs([f"{link}/templates/*.html"], [str(tree)])
    assert globs.match(str(tree / "templates" / "a.html"), str(tree))


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("", "is empty"),
        ("  ", "is empty"),
        ("../*.html", "has a '..' part"),
        ("templates/../../x.html", "has a '..' part"),
        ("site/templates/*.html", "no watched root"),
        ("/no/such/folder/*.html", "there is no folder '/no/such/folder'"),
    ],
)
def test_patterns_that_can_never_match_are_refused_with_their_name(
    tree: Path, pattern: str, message: str
) -> None:
    with pytest.raises(ValueError, match="extra pattern") as raised:
        ExtraGlobs([pattern], [str(tree)])
    assert message in str(raised.value)
    assert repr(pattern) in str(raised.value)


def test_a_single_string_is_refused_rather_than_read_letter_by_letter(tree: Path) -> None:
    with pytest.raises(ValueError, match="not a single string"):
        ExtraGlobs("*.html", [str(tree)])  # type: ignore[arg-type]
