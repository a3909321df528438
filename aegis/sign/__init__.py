"""Stage 4: keys, approvals and signed execution plans."""
