"""Fleets: cohorts of hosts that make the same change (docs/design.md "Cohort approvals")."""
