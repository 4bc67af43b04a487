"""Routes for the people who run the site, not for its users."""
