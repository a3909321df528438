"""What ``aegis npm|pip install ... --plan`` needs to start its tool before anything heavy.

Light on imports on purpose (the standard library and ``aegis.errors`` only; never
``aegis.ecosystems``, whose package imports the plan model): the CLI checks the words it was
given with the ecosystems' own grammars (:mod:`npm_names`, :mod:`pip_names`, which the
ecosystems import as ``aegis.ecosystems.npm.names`` and ``aegis.ecosystems.pip.names``),
starts the tool with the planner's own argv builders (:mod:`npm_tool`, :mod:`pip_tool`) and
keeps it in :mod:`slot` for the planner to claim (:mod:`aegis.cli.early_plan`).
"""
