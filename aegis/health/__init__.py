"""Health probes after an apply, and the dead-man rollback (docs/design.md "Verification")."""
