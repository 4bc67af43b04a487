"""Application factory of the benchmark app."""

from __future__ import annotations

from flask import Flask

from app import config, db, filters
from app.views import admin, api, pages


def create_app() -> Flask:
    flask_app = Flask(__name__)
    flask_app.config.from_mapping(config.settings())
    flask_app.jinja_env.filters["money"] = filters.money
    flask_app.jinja_env.filters["shorten"] = filters.shorten
    flask_app.register_blueprint(pages.bp)
    flask_app.register_blueprint(api.bp, url_prefix="/api")
    flask_app.register_blueprint(admin.bp, url_prefix="/admin")
    db.init_schema()
    return flask_app
