"""Service settings: configs/serve.yaml equals the defaults, early validation naming the
flag, the environment round trip the workers use, and the service's OpenAPI spec."""

from __future__ import annotations

import json

import pytest

from assay.errors import ConfigError
from serve.settings import DEFAULT_CONFIG, ENV_SETTINGS, ServeSettings, rater_name


def test_shipped_yaml_equals_the_defaults():
    assert ServeSettings.from_yaml(DEFAULT_CONFIG) == ServeSettings()
    assert ServeSettings().validate().raters == ["assay-mini-v1", "heuristics"]


@pytest.mark.parametrize(
    ("changes", "flag"),
    [
        ({"max_batch_size": 0}, "--max-batch-size"),
        ({"port": 70000}, "--port"),
        ({"backend": "tpu"}, "--backend"),
        ({"workers": -1}, "--workers"),
        ({"max_texts": True}, "--max-texts"),
        ({"threads": -1}, "--threads"),
        ({"raters": []}, "--rater"),
        ({"raters": ["heuristics", "heuristics"]}, "unique"),
        ({"raters": ["no-such-rater"]}, "no-such-rater"),
        ({"options": {"perplexity": {"max_tokens": 8}}}, "perplexity"),
        ({"clusters": "x", "embed_model": None}, "--clusters"),
    ],
)
def test_bad_settings_name_the_flag(changes, flag):
    with pytest.raises(ConfigError, match=flag):
        ServeSettings().replace(**changes).validate()


def test_unknown_key_lists_the_valid_ones(tmp_path):
    path = tmp_path / "serve.yaml"
    path.write_text("max_batch: 8\n")
    with pytest.raises(ConfigError, match="max_batch_size"):
        ServeSettings.from_yaml(path)
    with pytest.raises(ConfigError, match="does not exist"):
        ServeSettings.from_yaml(tmp_path / "missing.yaml")


def test_environment_round_trip(monkeypatch):
    settings = ServeSettings(raters=["heuristics"], max_batch_size=8, options={})
    monkeypatch.setenv(ENV_SETTINGS, settings.to_env())
    assert ServeSettings.from_env() == settings
    assert "api_key" not in json.loads(settings.to_env())  # the key travels separately
    monkeypatch.setenv(ENV_SETTINGS, "{not json")
    with pytest.raises(ConfigError, match=ENV_SETTINGS):
        ServeSettings.from_env()


def test_rater_names_as_annotate():
    assert rater_name("fineweb-edu=/models/fw") == "fineweb-edu"
    assert rater_name("heuristics") == "heuristics"
    assert rater_name("out/raters/my-rater") == "my-rater"


def test_openapi_spec_offline():
    """The spec is generated from the schemas without starting a server."""
    from serve.service import build_service

    spec = build_service(ServeSettings(raters=["heuristics"])).openapi_spec.asdict()
    assert {"/v1/rate", "/v1/embed", "/v1/cluster", "/v1/raters"} <= set(spec["paths"])
    rate = spec["paths"]["/v1/rate"]["post"]
    assert rate["requestBody"]["content"]["application/json"]
