"""Console scripts: `colorize` (photos and hint files -> colour photos) and `colorization-app` (the browser app)."""

SIZE_HELP = ("the network colours the photo at about SIZE x SIZE pixels, aspect kept (default: the size the "
             "checkpoint records; the reference model's 192)")
