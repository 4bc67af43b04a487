"""HTML pages. The benchmark edits MARKER and waits until it is served."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, render_template

from app import models

MARKER = "bench-edit-00000"

bp = Blueprint("pages", __name__)


@bp.route("/")
def index() -> str:
    items = models.recent_items(int(current_app.config["PAGE_SIZE"]))
    return render_template("index.html", marker=MARKER, items=items, total=models.count_items())


@bp.route("/items/<int:item_id>")
def item(item_id: int) -> str:
    found = models.item(item_id)
    if found is None:
        abort(404)
    return render_template("item.html", item=found, marker=MARKER)
