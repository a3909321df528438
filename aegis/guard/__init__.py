"""``aegis guard``: stop an agent's shell from making package changes behind Aegis's back.

- :mod:`aegis.guard.rules`: the one rule table (which tool invocations are direct
  mutations, and which Aegis command to use instead). Pure.
- :mod:`aegis.guard.wrappers`: how ``sudo``, ``env``, ``xargs``, ``sh -c`` ... reach the
  command they run. Pure.
- :mod:`aegis.guard.check`: parses a shell command line with bashlex and applies the
  rules to every command in it (pipes, lists, substitutions, nested ``sh -c`` strings).
  Pure.
- :mod:`aegis.guard.shim`: the entry point of the PATH shims ``aegis guard install``
  writes (the same rules, applied to the argv the shell already expanded).
- :mod:`aegis.guard.install`: writes the shims and the user's PATH block (root only).

See docs/guard.md for what is covered and what is not.
"""
