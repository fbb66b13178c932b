"""Console scripts: `colorize` (photos and hint files -> colour photos) and `colorization-app` (the browser app)."""
