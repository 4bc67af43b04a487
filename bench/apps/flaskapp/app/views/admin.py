"""Operational endpoints."""

from __future__ import annotations

import os

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from app import db, models

bp = Blueprint("admin", __name__)


@bp.route("/health")
def health() -> ResponseReturnValue:
    return jsonify(
        {
            "ok": True,
            "pid": os.getpid(),
            "items": models.count_items(),
            "postgres": db.is_postgres(),
        }
    )
