"""One APIRouter per part of the site, included by ``app.main``."""
