"""One module per `tune-wizard` verb: add_arguments(parser) and run(args) -> exit code."""
