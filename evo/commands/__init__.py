"""One module per `evo` subcommand; each exposes `register(subparsers)`.

A command module builds its parser cheaply and imports heavy packages (torch,
transformers) only inside the function that runs the command, so `evo --help` is fast.
"""
