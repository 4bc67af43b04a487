"""Settings read from the environment once per import."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    site_name: str
    database_url: str
    data_dir: str
    page_size: int
    admin_token: str


def settings() -> Settings:
    return Settings(
        site_name=os.environ.get("BENCH_SITE_NAME", "hotmod bench shop"),
        database_url=os.environ.get("DATABASE_URL", ""),
        data_dir=os.environ.get("BENCH_DATA_DIR", "var"),
        page_size=int(os.environ.get("BENCH_PAGE_SIZE", "5")),
        admin_token=os.environ.get("BENCH_ADMIN_TOKEN", "fake-super-secret-token"),
    )
