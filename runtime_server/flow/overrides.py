"""Per-run step overrides (flows.md §9): RFC 7386 merge patches onto a step's JSON form."""

from __future__ import annotations

from typing import Any


class OverrideError(ValueError):
    pass


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


def apply_overrides(flow_json: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A copy of the flow with each named step patched; unknown steps and types are errors."""
    steps = list(flow_json.get("steps") or [])
    positions = {step.get("id"): index for index, step in enumerate(steps)}
    for step_id, override in overrides.items():
        if step_id not in positions:
            raise OverrideError(f"override names step '{step_id}', which is not in the flow (steps: {', '.join(map(str, positions))})")
        if not isinstance(override, dict) or "value" not in override:
            raise OverrideError(f'override for step \'{step_id}\' must be an object {{"$type": "merge_patch", "value": {{...}}}}')
        kind = override.get("$type", "merge_patch")
        if kind != "merge_patch":
            raise OverrideError(f"override type {kind!r} for step '{step_id}' is not supported; use merge_patch")
        steps[positions[step_id]] = merge_patch(steps[positions[step_id]], override["value"])
    return {**flow_json, "steps": steps}
