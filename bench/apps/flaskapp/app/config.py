"""Settings read from the environment once per import."""

from __future__ import annotations

import os


def settings() -> dict[str, object]:
    return {
        "SITE_NAME": os.environ.get("BENCH_SITE_NAME", "hotmod bench shop"),
        "DATABASE_URL": os.environ.get("DATABASE_URL", ""),
        "DATA_DIR": os.environ.get("BENCH_DATA_DIR", "var"),
        "PAGE_SIZE": int(os.environ.get("BENCH_PAGE_SIZE", "5")),
    }
