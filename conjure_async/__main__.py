"""``python -m conjure_async``: the ``conjure`` command line."""

from conjure_async._cli import main

if __name__ == "__main__":
    raise SystemExit(main())
