"""Pulumi entry point (``main: infra/`` in Pulumi.yaml): build the stack and export its outputs."""

from mas_infra import build_stack, export_outputs

export_outputs(build_stack())
