"""Images as the daemon will own them: for now, how an image is named (`reference`).

Nothing here imports actorctl: the CLI and the client library import this package, not the
other way round.
"""
