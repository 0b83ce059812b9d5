"""One module per `s2r` sub-command: ``HELP``, ``CONFIGS`` (the dataclasses its flags are generated from),
``run(args)``, and its docstring's second paragraph as the description; s2r/cli.py builds the parsers."""
