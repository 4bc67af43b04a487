"""Static import discovery and planning."""

from __future__ import annotations

import ast
import textwrap

from hotmod.reloader._graph import Graph, resolve_refs, static_imports

SOURCE = textwrap.dedent("""
    import os
    import a.b.c
    import a.x as ax
    from . import sibling
    from .sub import thing
    from .. import up
    def f():
        import late
        class K:
            def m(self):
                from deep.inside import n
    if True:
        import in_if
    else:
        import in_else
    try:
        import in_try
    except ImportError:
        import in_except
    finally:
        import in_finally
    with open("x") as fh:
        import in_with
    while False:
        import in_while
    for _ in ():
        import in_for
    match 1:
        case 1:
            import in_match
""")


def test_static_imports_finds_every_import_statement_wherever_it_nests() -> None:
    refs = static_imports(ast.parse(SOURCE), "pkg.mod", is_package=False)
    names = {base for base, _ in refs}
    assert names == {
        "os", "a.b.c", "a", "a.x", "pkg", "pkg.sub", "late", "deep.inside", "in_if", "in_else",
        "in_try", "in_except", "in_finally", "in_with", "in_while", "in_for", "in_match",
    }
    assert ("pkg", ("sibling",)) in refs and ("pkg.sub", ("thing",)) in refs
    # `from .. import up` from a top-level package's module goes beyond the top: skipped.
    assert not any(base == "" for base, _ in refs)


def test_from_imports_depend_on_the_submodule_when_it_is_one() -> None:
    refs = [("pkg", ("views", "NAME"))]
    assert resolve_refs(refs, lambda name: name == "pkg.views") == {"pkg.views", "pkg"}


def test_plan_takes_importers_transitively_in_dependency_order() -> None:
    g = Graph()
    g.set_deps("wsgi", ["views"])
    g.set_deps("views", ["db", "util"])
    g.set_deps("db", [])
    g.set_deps("other", ["util"])
    present = dict.fromkeys(["wsgi", "views", "db", "util", "other"])
    assert g.plan(["db"], present) == ["db", "views", "wsgi"]
    g.set_deps("views", ["util"])  # views no longer imports db
    assert g.plan(["db"], present) == ["db"]


def test_plan_of_a_cycle_is_one_unit_and_terminates() -> None:
    g = Graph()
    g.set_deps("a", ["b"])
    g.set_deps("b", ["c"])
    g.set_deps("c", ["a"])
    g.set_deps("top", ["a"])
    present = dict.fromkeys(["a", "b", "c", "top"])
    plan = g.plan(["b"], present)
    assert sorted(plan[:3]) == ["a", "b", "c"] and plan[3] == "top"


def test_a_deep_chain_plans_without_hitting_the_recursion_limit() -> None:
    g = Graph()
    for i in range(5000):
        g.set_deps(f"m{i}", [f"m{i + 1}"])
    present = dict.fromkeys(f"m{i}" for i in range(5001))
    plan = g.plan(["m5000"], present)
    assert plan[0] == "m5000" and plan[-1] == "m0" and len(plan) == 5001
