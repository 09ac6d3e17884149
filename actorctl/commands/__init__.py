"""actorctl's command groups, one module each."""
