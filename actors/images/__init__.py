"""Images as the daemon owns them: how an image is named (`reference`), layers unpacked once
into a content-addressed store (`layers`), each container's root an overlay of them
(`overlay`, `bundles`), and the runtime spec of a container of an image (`runtime_spec`, `users`).

Nothing here imports actorctl: the CLI and the client library import this package, not the
other way round.
"""
