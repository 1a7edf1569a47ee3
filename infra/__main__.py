"""Pulumi entry point (``main: infra/`` in Pulumi.yaml): build the stack and export its outputs.

The program checks its config with the policy pack's own rules (``policy/mas_policies.py``, kept
self-contained so that the pack runs alone): their directory joins the import path here.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "policy"))

from mas_infra import build_stack, export_outputs

export_outputs(build_stack())
