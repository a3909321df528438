"""npm's grammars, from :mod:`aegis.early.npm_names` (light: the CLI's early start uses them)."""

from aegis.early.npm_names import (
    DEFAULT_REGISTRY,
    GLOBAL_KIND,
    GLOBAL_SEED,
    GLOBAL_WHERE,
    MAX_TARGET,
    MAX_TARGETS,
    PROJECT_KIND,
    check_target,
    check_targets,
    is_global,
    project_dir,
    project_location,
)

__all__ = [
    "DEFAULT_REGISTRY",
    "GLOBAL_KIND",
    "GLOBAL_SEED",
    "GLOBAL_WHERE",
    "MAX_TARGET",
    "MAX_TARGETS",
    "PROJECT_KIND",
    "check_target",
    "check_targets",
    "is_global",
    "project_dir",
    "project_location",
]
