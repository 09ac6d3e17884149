"""Pod sandboxes as the CRI's RuntimeService runs them: the persistent record of each pod
(`store`), its life as a small state machine (`states`), and the infra container's bundle and
the files a pod's containers share (`infra`).

The CRI server (actors/cri/sandboxes.py) drives them; the daemon's `pods.list` and
`pods.inspect` (`service`) read the same records, so actorctl and the kubelet see one store.
"""
