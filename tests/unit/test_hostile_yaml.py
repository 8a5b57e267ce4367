"""Hostile YAML is refused in one line, never a crash (exit 70), a hang or a memory blow-up.

Every YAML file the harness reads goes through ``harness.safe_yaml``. Each family below is run
through the command that reads that kind of file (``harness slo --spec``, ``harness judge
--judge-config``, ``harness gate --judge-config``, ``harness records import --mapping``) and at
the loader: huge integers and scalars their tag cannot hold, nesting past 100 levels, aliases that
expand past their bounds (billion laughs), keys given twice, and durations past ten years.
"""

import json
from pathlib import Path

import pytest

from cli_run import run_cli
from harness.canary.config import load_judge_config
from harness.duration import MAX_DURATION_S, parse_duration
from harness.errors import EXIT_DATA, EXIT_USAGE, DataError
from harness.records.importer import load_mapping
from harness.safe_yaml import MAX_ALIAS_CHARS, MAX_ALIAS_NODES, MAX_DEPTH, MAX_INT_DIGITS, load_yaml, load_yaml_all
from harness.slo.errors import SpecError
from harness.slo.specfile import parse_spec
from harness.text import short_repr

ROOT = Path(__file__).resolve().parents[2]
OPENSLO = (ROOT / "examples" / "openslo.yaml").read_text()
HUGE = "9" * 5000
SPEC = "service: s\nslos:\n  - name: a\n    sli: availability\n    objective: {objective}\n"


def laughs(levels: int = 8, text: str = "lol") -> str:
    """A flow sequence of anchors, each one nine aliases of the one before: 9**levels values."""
    parts = [f"&a0 [{', '.join([text] * 9)}]"]
    parts += [f"&a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels)]
    return f"[{', '.join(parts)}]"


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


# ---- the commands -------------------------------------------------------------------------------


def refused(argv: list, code: int = EXIT_DATA) -> str:
    """The one stderr line of ``harness ARGV``, which must end with ``code`` and no traceback."""
    got, _, err = run_cli(argv)
    lines = err.strip().splitlines()
    assert got == code and len(lines) == 1 and "Traceback" not in err, (got, err[:2000])
    return lines[0]


@pytest.fixture
def slo(tmp_path):
    """``harness slo --spec`` over a spec with the text given: its one stderr line, and the file."""
    records = tmp_path / "records.jsonl"
    records.write_text("")

    def run(text: str) -> tuple[str, Path]:
        spec = tmp_path / "spec.yaml"
        spec.write_text(text)
        return refused(["slo", "--spec", spec, "--records", records, "--out", tmp_path / "out"]), spec

    return run


@pytest.fixture
def judge(tmp_path):
    """``harness judge --judge-config`` over a config with the text given."""
    for side in ("baseline", "canary"):
        (tmp_path / f"{side}.jsonl").write_text("")

    def run(text: str) -> tuple[str, Path]:
        config = tmp_path / "judge.yaml"
        config.write_text(text)
        argv = ["judge", "--baseline", tmp_path / "baseline.jsonl", "--canary", tmp_path / "canary.jsonl"]
        return refused([*argv, "--judge-config", config, "--out", tmp_path / "out"]), config

    return run


@pytest.fixture
def gate(tmp_path):
    """``harness gate --judge-config``: the config is checked before any load is sent."""
    closed = "http://127.0.0.1:9"

    def run(text: str) -> tuple[str, Path]:
        config = tmp_path / "judge.yaml"
        config.write_text(text)
        argv = ["gate", "--baseline", closed, "--canary", closed, "--judge-config", config]
        return refused([*argv, "--out", tmp_path / "out"]), config

    return run


@pytest.fixture
def records_import(tmp_path):
    """``harness records import --mapping`` over a mapping with the text given."""
    log = tmp_path / "log.jsonl"
    log.write_text(json.dumps({"t": 1}) + "\n")

    def run(text: str) -> tuple[str, Path]:
        mapping = tmp_path / "mapping.yaml"
        mapping.write_text(text)
        return refused(["records", "import", log, "--mapping", mapping, "--out", tmp_path / "out.jsonl"]), mapping

    return run


# ---- huge integers, and scalars their tag cannot hold ------------------------------------------


def test_a_huge_integer_in_a_spec_is_refused_at_its_line(slo):
    line, spec = slo(SPEC.format(objective=HUGE))
    assert line == f"harness slo: error: {spec}: line 5: an integer of 5000 digits (at most 100)"


def test_a_huge_integer_in_a_judge_config_is_refused_at_its_line(judge):
    line, config = judge(f"pass_threshold: 90\nseed: {HUGE}\n")
    assert line == f"harness judge: error: {config}: line 2: an integer of 5000 digits (at most 100)"


def test_a_huge_integer_in_a_mapping_is_refused_at_its_line(records_import):
    line, mapping = records_import(f"columns:\n  t_start: t\nconstants:\n  status: {HUGE}\n")
    assert line == f"harness records: error: {mapping}: line 4: an integer of 5000 digits (at most 100)"


def test_a_date_that_does_not_exist_is_refused_at_its_line(slo):
    line, spec = slo(SPEC.format(objective="2024-13-45"))
    assert line == f"harness slo: error: {spec}: line 5: '2024-13-45' is not a valid timestamp (month must be in 1..12)"


@pytest.mark.parametrize(
    "text, message",
    [
        ("x: !!bool maybe", "line 1: 'maybe' is not a valid bool"),
        ("x: !!int 0x", "line 1: '0x' is not a valid int (invalid literal for int() with base 16: '')"),
        ("x: !!int ''", "line 1: '' is not a valid int"),
        ("x: !!float abc", "line 1: 'abc' is not a valid float (could not convert string to float: 'abc')"),
        ("x:\n  y: !!timestamp soon", "line 2: 'soon' is not a valid timestamp"),
        ("x: 2023-02-29", "line 1: '2023-02-29' is not a valid timestamp (day is out of range for month)"),
        (f"x: 0x{'f' * 5000}", "line 1: an integer of 5000 digits (at most 100)"),
    ],
)
def test_scalars_their_tag_cannot_hold_are_refused(text, message):
    with pytest.raises(DataError) as exc:
        load_yaml(text, "f.yaml")
    assert str(exc.value) == f"f.yaml: {message}"


def test_integers_up_to_the_bound_are_read():
    assert load_yaml(f"x: {'9' * MAX_INT_DIGITS}", "f.yaml") == {"x": int("9" * MAX_INT_DIGITS)}
    with pytest.raises(DataError, match=f"an integer of {MAX_INT_DIGITS + 1} digits"):
        load_yaml(f"x: {'9' * (MAX_INT_DIGITS + 1)}", "f.yaml")


# ---- nesting ------------------------------------------------------------------------------------


def test_a_judge_config_nested_10000_deep_is_refused(judge):
    line, config = judge(f"metrics: {nested(10_000)}\n")
    assert line == f"harness judge: error: {config}: line 1: nested more than 100 levels deep"


def test_a_mapping_nested_10000_deep_is_refused(records_import):
    line, mapping = records_import(f"columns:\n  t_start: {nested(10_000)}\n")
    assert line == f"harness records: error: {mapping}: line 2: nested more than 100 levels deep"


def test_a_judge_config_nested_past_the_bound_is_refused_by_the_gate(gate):
    line, config = gate(f"metrics: {nested(MAX_DEPTH + 1)}\n")
    assert line == f"harness gate: error: {config}: line 1: nested more than 100 levels deep"


def test_a_spec_nested_10000_deep_is_refused(slo):
    line, spec = slo(f"service: s\nslos: {nested(10_000)}\n")
    assert line == f"harness slo: error: {spec}: line 2: nested more than 100 levels deep"


def test_nesting_up_to_the_bound_is_read_and_one_more_level_is_refused_at_its_line():
    doc = load_yaml(f"x: {nested(MAX_DEPTH - 1)}", "f.yaml")  # the mapping and 99 lists: 100 levels
    assert isinstance(doc["x"], list)
    block = "".join(" " * i + f"k{i}:\n" for i in range(MAX_DEPTH)) + " " * MAX_DEPTH + "- v\n"
    with pytest.raises(DataError) as exc:
        load_yaml(block, "f.yaml")
    assert str(exc.value) == f"f.yaml: line {MAX_DEPTH + 1}: nested more than 100 levels deep"


def test_nesting_built_from_aliases_is_bounded_too():
    chain = "\n".join(["a0: &a0 [x]"] + [f"a{i}: &a{i} [*a{i - 1}]" for i in range(1, MAX_DEPTH + 1)])
    with pytest.raises(DataError) as exc:
        load_yaml(chain, "f.yaml")
    assert str(exc.value) == f"f.yaml: line {MAX_DEPTH + 1}: nested more than 100 levels deep through aliases"


# ---- aliases ------------------------------------------------------------------------------------


def test_a_billion_laughs_spec_is_refused_before_any_value_is_built(slo):
    line, spec = slo(SPEC.format(objective=laughs()))
    assert line == f"harness slo: error: {spec}: line 5: aliases expand this value by more than 100,000 nodes"


def test_a_billion_laughs_in_openslo_labels_is_refused(slo):
    text = OPENSLO.replace('labels: {tier: "1"}', f"labels: {{tier: {laughs(12)}}}", 1)
    at = OPENSLO.splitlines().index('  labels: {tier: "1"}') + 1
    line, spec = slo(text)
    assert line == f"harness slo: error: {spec}: line {at}: aliases expand this value by more than 100,000 nodes"


def test_a_billion_laughs_judge_config_is_refused(judge):
    line, config = judge(f"pass_threshold: {laughs()}\n")
    assert line == f"harness judge: error: {config}: line 1: aliases expand this value by more than 100,000 nodes"


def test_a_billion_laughs_mapping_is_refused(records_import):
    line, mapping = records_import(f"columns: {{t_start: {laughs()}}}\n")
    assert line == f"harness records: error: {mapping}: line 1: aliases expand this value by more than 100,000 nodes"


def test_aliases_of_long_text_are_bounded_by_the_characters_they_add():
    text = "s: &s " + "x" * 20_000 + "\nl: [" + ", ".join(["*s"] * 60) + "]\n"
    with pytest.raises(DataError) as exc:
        load_yaml(text, "f.yaml")
    assert str(exc.value) == "f.yaml: line 2: aliases expand this value by more than 1,000,000 characters"
    assert MAX_ALIAS_CHARS == 1_000_000 and MAX_ALIAS_NODES == 100_000


def test_an_alias_inside_the_value_it_refers_to_is_refused():
    with pytest.raises(DataError) as exc:
        load_yaml("a: 1\nb: &b [1, *b]\n", "f.yaml")
    assert str(exc.value) == "f.yaml: line 2: an alias inside the value it refers to"


def test_modest_aliases_and_merge_keys_are_read_as_before():
    text = "base: &b {x: 1, y: [a, b]}\none: *b\ntwo:\n  <<: *b\n  x: 2\nmany: [*b, *b, *b]\n"
    doc = load_yaml(text, "f.yaml")
    assert doc["one"] == {"x": 1, "y": ["a", "b"]} and doc["two"] == {"x": 2, "y": ["a", "b"]}
    assert doc["many"] == [doc["base"]] * 3


def test_an_error_quotes_a_large_value_in_a_few_characters(slo):
    line, spec = slo(SPEC.format(objective="[" + ", ".join(["0"] * 50_000) + "]"))
    expected = f"harness slo: error: {spec}: slos[0].objective: must be a number (got [0, 0, 0, 0, 0, 0, ...])"
    assert line == expected


def test_a_list_where_a_judge_config_wants_a_group_name_is_refused(judge):
    line, config = judge("metrics:\n  latency_p50: {group: [1]}\n")
    expected = "metrics.latency_p50.group: must be a string (got [1])"
    assert line == f"harness judge: error: {config}: {expected}"


def test_short_repr_never_renders_a_large_value_whole():
    value = ["lol"] * 9
    for _ in range(12):
        value = [value] * 9  # 9**13 strings if rendered whole
    assert len(short_repr(value)) <= 80
    assert short_repr(10**5000) == "<an integer of about 5001 digits>"
    assert short_repr("x" * 10_000) == "'" + "x" * 37 + "..." + "x" * 38 + "'"
    assert short_repr({"b": 1, "a": [0.5, None]}) == "{'b': 1, 'a': [0.5, None]}"


# ---- keys given twice ---------------------------------------------------------------------------


def test_a_key_given_twice_in_a_spec_is_refused(slo):
    line, spec = slo(SPEC.format(objective="0.999") + "    objective: 0.1\n")
    assert line == f"harness slo: error: {spec}: line 6: key 'objective' given twice (first at line 5)"


def test_a_key_given_twice_in_a_judge_config_is_refused(judge):
    line, config = judge("pass_threshold: 95\nmarginal_threshold: 50\npass_threshold: 10\n")
    assert line == f"harness judge: error: {config}: line 3: key 'pass_threshold' given twice (first at line 1)"


def test_a_key_given_twice_in_a_mapping_is_refused(records_import):
    line, mapping = records_import("columns:\n  t_start: t\n  t_start: time\n")
    assert line == f"harness records: error: {mapping}: line 3: key 't_start' given twice (first at line 2)"


@pytest.mark.parametrize(
    "text, message",
    [
        ("{a: 1, b: 2, a: 3}", "line 1: key 'a' given twice (first at line 1)"),
        ("x: 1\n0x1: 2\n1: 3\n", "line 3: key 1 given twice (first at line 2)"),
        ("k: &k a\nm: {*k : 1, *k : 2}\n", "line 2: key 'a' given twice (through the same alias)"),
        ("b: &b {x: 1}\nm:\n  <<: *b\n  x: 2\n  x: 3\n", "line 5: key 'x' given twice (first at line 4)"),
    ],
)
def test_keys_given_twice_are_refused_with_the_key_and_lines(text, message):
    with pytest.raises(SpecError) as exc:
        load_yaml_all(text, "f.yaml", SpecError)
    assert str(exc.value) == f"f.yaml: {message}"


def test_the_loaders_of_each_kind_of_file_refuse_keys_given_twice(tmp_path):
    config = tmp_path / "judge.yaml"
    config.write_text("confidence: 0.9\nconfidence: 0.5\n")
    with pytest.raises(DataError, match="line 2: key 'confidence' given twice"):
        load_judge_config(config)
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("columns: {t_start: a}\ncolumns: {t_start: b}\n")
    with pytest.raises(DataError, match="line 2: key 'columns' given twice"):
        load_mapping(mapping)


# ---- durations ----------------------------------------------------------------------------------


def test_a_period_of_absurd_length_is_refused(slo):
    line, spec = slo(SPEC.format(objective="0.999") + "    period: 99999999999999999999d\n")
    expected = f"harness slo: error: {spec}: slos[0].period: must be at most 10 years (got '99999999999999999999d')"
    assert line == expected


def test_an_openslo_time_window_of_absurd_length_is_refused():
    text = OPENSLO.replace("duration: 28d", f"duration: {HUGE}d", 1)
    with pytest.raises(SpecError) as exc:
        parse_spec(text, "o.yaml")
    message = str(exc.value)
    assert message.startswith("o.yaml: [2].spec.timeWindow[0].duration: must be at most 10 years (got '999")
    assert len(message) < 200


def test_a_judge_interval_of_absurd_length_is_refused(tmp_path):
    for side in ("baseline", "canary"):
        (tmp_path / f"{side}.jsonl").write_text("")
    argv = ["judge", "--baseline", tmp_path / "baseline.jsonl", "--canary", tmp_path / "canary.jsonl"]
    line = refused([*argv, "--interval", "99999999999h", "--out", tmp_path / "out"], EXIT_USAGE)
    assert line == "harness judge: error: --interval: must be at most 10 years (got '99999999999h')"


def test_a_gate_duration_of_absurd_length_is_refused(tmp_path):
    closed = "http://127.0.0.1:9"
    argv = ["gate", "--baseline", closed, "--canary", closed, "--duration", "1e300", "--out", tmp_path / "out"]
    assert refused(argv, EXIT_USAGE) == "harness gate: error: --duration: must be at most 10 years (got '1e300')"


def test_durations_stop_at_ten_years():
    parse = parse_duration
    assert parse("87600h") == MAX_DURATION_S == 10 * 365 * 86400
    for text in ("87601h", "99999999999999999999h", f"{HUGE}m"):
        with pytest.raises(ValueError, match="must be at most 10 years"):
            parse(text)
