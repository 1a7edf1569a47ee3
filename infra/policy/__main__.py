"""The mas-memory policy pack: ``pulumi preview --policy-pack infra/policy``.

The rules live in ``mas_policies`` (importable by the tests); this file only builds the pack.
"""

from mas_policies import PACK_NAME, POLICIES
from pulumi_policy import EnforcementLevel, PolicyPack

PolicyPack(name=PACK_NAME, policies=POLICIES, enforcement_level=EnforcementLevel.MANDATORY)
