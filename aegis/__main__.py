"""``python -m aegis``: the same CLI as the ``aegis`` console script."""

from aegis.cli.aegis import main

if __name__ == "__main__":
    main()
