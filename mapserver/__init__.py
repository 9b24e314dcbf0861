"""The web mapping service: settings, database, app factory, pygeoapi mount and pages."""
