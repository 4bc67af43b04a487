"""JSON API."""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from app import models

bp = Blueprint("api", __name__)


@bp.route("/items")
def items() -> ResponseReturnValue:
    return jsonify([item.__dict__ for item in models.recent_items(20)])


@bp.route("/items/<int:item_id>")
def item(item_id: int) -> ResponseReturnValue:
    found = models.item(item_id)
    if found is None:
        return jsonify({"error": "not found"}), 404
    return jsonify(found.__dict__)
