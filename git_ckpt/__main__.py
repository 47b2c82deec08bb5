"""`python -m git_ckpt` and the `git-ckpt` console script."""
from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ['_hook']:
        # The hook path: standard library only, so dispatch before click loads.
        from git_ckpt.hook_entry import main as hook_main
        return hook_main(argv[1:])
    from git_ckpt.main import main as cli_main
    return cli_main(argv)


if __name__ == '__main__':
    raise SystemExit(main())
