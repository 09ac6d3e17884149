"""A stand-in OCI runtime for checkpoint tests: CRIU cannot run on this kernel.

It appends its argv (one JSON list per line) to $RECORD_FILE, with each
`/proc/<pid>/fd/<n>` argument recorded as the path it resolves to, then:
  * `checkpoint`: pretends, writing a marker into --image-path;
  * `restore`: runs real `runc create` + `runc start` with the same bundle, so a
    "restored" container really runs;
  * anything else: runs real runc with the same arguments.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

RESTORE_ONLY_VALUE = {"--image-path", "--work-path"}
RESTORE_ONLY_FLAG = {"-d", "--detach", "--tcp-established", "--ext-unix-sk", "--shell-job"}


def option_value(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def main() -> int:
    args = sys.argv[1:]
    resolved = [os.path.realpath(arg) if arg.startswith("/proc/") else arg for arg in args]
    with open(os.environ["RECORD_FILE"], "a") as record:
        record.write(json.dumps(resolved) + "\n")
    if "checkpoint" in args:
        image = option_value(args, "--image-path")
        os.makedirs(image, exist_ok=True)
        with open(os.path.join(image, "inventory.img"), "w") as marker:
            marker.write("pretend\n")
        return 0
    if "restore" in args:
        at = args.index("restore")
        create: list[str] = []
        skip = False
        for arg in args[at + 1:]:
            if skip:
                skip = False
            elif arg in RESTORE_ONLY_VALUE:
                skip = True
            elif arg not in RESTORE_ONLY_FLAG:
                create.append(arg)
        done = subprocess.run(["runc", *args[:at], "create", *create])
        if done.returncode != 0:
            return done.returncode
        return subprocess.run(["runc", "--root", option_value(args, "--root"), "start", create[-1]]).returncode
    os.execvp("runc", ["runc", *args])


if __name__ == "__main__":
    sys.exit(main())
