"""Pyramid support (middleware/_frameworks/_pyramid.py), in process, on the starter
layout of tests/fixtures/frameworks/pyramid: a template edit runs no Python when the
renderer reloads templates itself, and reloads the target when it does not."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from werkzeug.test import Client

from hotmod.middleware import HotReload

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "frameworks" / "pyramid"


@pytest.fixture
def starter(project: Path) -> Path:
    shutil.copytree(FIXTURE, project, dirs_exist_ok=True)
    return project


def edit_template(starter: Path) -> Path:
    template = starter / "myproject" / "templates" / "mytemplate.jinja2"
    template.write_text(template.read_text().replace("Starter project", "Edited project"))
    return template


@pytest.mark.parametrize("reload_templates", ["true", "false"])
def test_a_template_edit_shows_and_runs_python_only_without_reload_templates(
    starter: Path, apps: list[HotReload], reload_templates: str
) -> None:
    ini = starter / "development.ini"
    ini.write_text(ini.read_text().replace(
        "pyramid.reload_templates = true", f"pyramid.reload_templates = {reload_templates}"
    ))
    hot = HotReload(str(ini), scan_interval=3600.0)
    apps.append(hot)
    assert [support.name for support in hot.frameworks] == ["pyramid"]
    client = Client(hot)
    assert "Starter project" in client.get("/").text
    generation = hot.reloader.reload([edit_template(starter)])
    assert "Edited project" in client.get("/").text
    assert generation == (1 if reload_templates == "true" else 2)
