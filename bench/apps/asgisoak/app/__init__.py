"""The ASGI soak app (see README.md)."""
