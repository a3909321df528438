r"""Offline, advisory policy-maintenance reports over already signed execution plans.

Not part of runtime policy: the helper never approves execution, never generates argv
and never overrides ``aegis policy``. It first verifies the execution plan's signature
and its approvals against trusted public keys, then writes a deterministic summary and,
optionally, a DSPy analysis that is marked untrusted advice.

Usage::

    PYTHONPATH=tools/policy-helper/src python3 -m aegis_policy_helper report \
        --execution-plan EP.json --execution-public-key-hex K \
        --approval-public-key-hex K --out report.json [--skip-dspy]
"""

REPORT_SCHEMA = "aegis.policy-helper-report/1"
