"""One module per `s2r` sub-command; each defines ``register(subparsers)``."""
