"""Contract tests: every example event passes its JSON Schema and its pydantic model, the two agree
on fields and constraints, and a broken copy of each example is rejected by both."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from cloudevents.conversion import to_binary, to_structured
from cloudevents.http import from_http
from jsonschema import Draft202012Validator, FormatChecker

from visitlens.contracts import MODELS, EventType, parse_data
from visitlens.errors import InvalidInput

EVENTS = Path(__file__).resolve().parents[2] / "events"
TYPES = list(EventType)


def schema_for(event_type: EventType) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(
        (EVENTS / f"{event_type.schema_name}.schema.json").read_text()
    )
    return loaded


def example_for(event_type: EventType) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(
        (EVENTS / "examples" / f"{event_type.schema_name}.json").read_text()
    )
    return loaded


def validator(event_type: EventType) -> Draft202012Validator:
    schema = schema_for(event_type)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=FormatChecker())


def test_every_schema_and_example_is_catalogued() -> None:
    schemas = {p.name.removesuffix(".schema.json") for p in EVENTS.glob("*.schema.json")}
    examples = {p.stem for p in (EVENTS / "examples").glob("*.json")}
    catalogued = {t.schema_name for t in TYPES}
    assert schemas == catalogued == examples


@pytest.mark.parametrize("event_type", TYPES, ids=lambda t: t.schema_name)
def test_example_is_a_valid_cloudevent_in_both_modes(event_type: EventType) -> None:
    example = example_for(event_type)
    assert example["type"] == event_type.value
    assert example["dataschema"] == event_type.dataschema == schema_for(event_type)["$id"]
    structured = json.dumps(example).encode()
    event = from_http({"content-type": "application/cloudevents+json"}, structured)
    for headers, body in (to_binary(event), to_structured(event)):
        again = from_http(headers, body)
        assert again.get_attributes() == event.get_attributes()
        assert again.data == example["data"]


@pytest.mark.parametrize("event_type", TYPES, ids=lambda t: t.schema_name)
def test_example_passes_schema_and_model(event_type: EventType) -> None:
    data = example_for(event_type)["data"]
    validator(event_type).validate(data)
    parsed = parse_data(event_type.value, data)
    assert isinstance(parsed, MODELS[event_type])
    # The model round-trips to data the schema still accepts.
    validator(event_type).validate(json.loads(parsed.model_dump_json(exclude_none=False)))


def _object_shapes(schema: dict[str, Any], path: str = "") -> dict[str, tuple[set[str], set[str]]]:
    """Every object in a schema: (property names, required names), keyed by its path."""
    shapes: dict[str, tuple[set[str], set[str]]] = {}
    defs = schema.get("$defs", {})

    def walk(node: Any, where: str) -> None:
        if not isinstance(node, dict):
            return
        if "$ref" in node:
            walk(defs[node["$ref"].split("/")[-1]], where)
            return
        if "properties" in node:
            shapes[where] = (set(node["properties"]), set(node.get("required", [])))
            for name, sub in node["properties"].items():
                walk(sub, f"{where}.{name}")
        for key in ("items", "anyOf", "oneOf", "allOf"):
            value = node.get(key)
            for sub in value if isinstance(value, list) else [value]:
                walk(sub, where + "[]" if key == "items" else where)

    walk(schema, path or "$")
    return shapes


@pytest.mark.parametrize("event_type", TYPES, ids=lambda t: t.schema_name)
def test_model_and_schema_have_the_same_fields(event_type: EventType) -> None:
    committed = _object_shapes(schema_for(event_type))
    generated = _object_shapes(MODELS[event_type].model_json_schema())
    assert committed.keys() == generated.keys()
    for where, (props, required) in committed.items():
        gen_props, gen_required = generated[where]
        assert props == gen_props, f"{where}: properties differ"
        assert required == gen_required, f"{where}: required fields differ"
    assert schema_for(event_type)["additionalProperties"] is False


def _mutations(data: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Broken copies: each must be rejected by the schema and by the model."""
    out = []
    for field in list(data):
        dropped = copy.deepcopy(data)
        del dropped[field]
        if field in _required_of(data):
            out.append((f"missing {field}", dropped))
    unknown = copy.deepcopy(data)
    unknown["surprise"] = 1
    out.append(("unknown field", unknown))
    for field, value in data.items():
        wrong = copy.deepcopy(data)
        if isinstance(value, bool):
            wrong[field] = "yes"
        elif isinstance(value, int | float):
            wrong[field] = -5 if field != "similarity" else 7
        elif isinstance(value, str):
            wrong[field] = ""
        elif isinstance(value, list):
            wrong[field] = []
        else:
            continue
        out.append((f"bad {field}", wrong))
    return out


_REQUIRED: dict[int, set[str]] = {}


def _required_of(data: dict[str, Any]) -> set[str]:
    return _REQUIRED[id(data)]


@pytest.mark.parametrize("event_type", TYPES, ids=lambda t: t.schema_name)
def test_broken_examples_are_rejected_by_both(event_type: EventType) -> None:
    data = example_for(event_type)["data"]
    _REQUIRED[id(data)] = set(schema_for(event_type)["required"])
    check = validator(event_type)
    for label, broken in _mutations(data):
        schema_errors = list(check.iter_errors(broken))
        with pytest.raises(InvalidInput) as caught:
            parse_data(event_type.value, broken)
        assert schema_errors, f"schema accepted: {label}"
        assert caught.value.problems, f"model gave no field problem: {label}"


def test_v2_semantics_beyond_the_schema() -> None:
    data = example_for(EventType.FACE_DETECTED_V2)["data"]
    short = copy.deepcopy(data)
    short["shots"][0]["embedding"] = short["shots"][0]["embedding"][:64]
    unnormalised = copy.deepcopy(data)
    unnormalised["shots"][0]["embedding"] = [0.5] * 128
    backwards = copy.deepcopy(data)
    backwards["last_seen"] = "2026-11-20T09:14:00Z"
    for broken in (short, unnormalised, backwards):
        validator(EventType.FACE_DETECTED_V2).validate(broken) if broken is not short else None
        with pytest.raises(InvalidInput):
            parse_data(EventType.FACE_DETECTED_V2.value, broken)


def test_unknown_type_is_rejected() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_data("com.example.other", {})
    assert caught.value.field == "type"


def test_age_bands_are_the_closed_set_the_edge_produces() -> None:
    """The probe stored "999-999", "60-10", "0-0" and "17-93": a band is one of the report bands
    the edge's estimate can produce, in the schemas and the models alike."""
    from typing import get_args

    from visitlens.contracts import AgeBand
    from visitlens.vision.demographics import AGE_BANDS

    assert get_args(AgeBand) == tuple(f"{low}-{high}" for low, high in AGE_BANDS)
    for event_type in (EventType.FACE_DETECTED_V3, EventType.CUSTOMER_PROFILE_V1):
        schema_text = json.dumps(schema_for(event_type))
        assert all(f'"{band}"' in schema_text for band in get_args(AgeBand))
    data = example_for(EventType.FACE_DETECTED_V3)["data"]
    for band in ("999-999", "60-10", "0-0", "17-93"):
        broken = copy.deepcopy(data)
        broken["demographics"]["age_band"] = band
        assert list(validator(EventType.FACE_DETECTED_V3).iter_errors(broken))
        with pytest.raises(InvalidInput) as caught:
            parse_data(EventType.FACE_DETECTED_V3.value, broken)
        assert caught.value.problems[0].field.startswith("data.demographics.age_band")


@pytest.mark.parametrize(
    "when", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "1970-01-01T00:00:00Z"]
)
def test_instants_are_bounded_before_any_arithmetic(when: str) -> None:
    """Far from datetime.min and .max: the probe's year-1 pass overflowed the unit of work."""
    data = copy.deepcopy(example_for(EventType.FACE_DETECTED_V2)["data"])
    data["first_seen"] = data["last_seen"] = when
    for shot in data["shots"]:
        shot["ts"] = when
    with pytest.raises(InvalidInput) as caught:
        parse_data(EventType.FACE_DETECTED_V2.value, data)
    assert {p.field for p in caught.value.problems} >= {"data.first_seen", "data.last_seen"}
