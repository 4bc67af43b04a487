"""The ASGI bench app: FastAPI in the layout of its "Bigger Applications" tutorial."""
