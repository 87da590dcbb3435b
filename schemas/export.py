"""Export every event's JSON Schema, one file per event, named with its version."""

from __future__ import annotations

import json
from pathlib import Path

from schemas.events import ALL_EVENTS


def export_json_schemas(out_dir: Path) -> list[Path]:
    """Write `<name>.v<version>.schema.json` for each event into `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, model in ALL_EVENTS.items():
        schema = model.model_json_schema()
        version = model.model_fields["schema_version"].default
        schema["$id"] = f"https://clawdesk.dev/schemas/{name}.v{version}.json"
        path = out_dir / f"{name}.v{version}.schema.json"
        path.write_text(json.dumps(schema, indent=2, ensure_ascii=False) + "\n")
        written.append(path)
    return written
