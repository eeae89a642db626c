import pytest
from django.core.exceptions import ImproperlyConfigured

from controlpanel.env import (
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_str,
    env_url,
)


def test_it_reads_booleans_in_the_usual_spellings():
    for text in ("1", "true", "YES", "on"):
        assert env_bool("X", False, environ={"X": text}) is True
    for text in ("0", "false", "No", "off"):
        assert env_bool("X", True, environ={"X": text}) is False
    assert env_bool("X", True, environ={}) is True


def test_it_rejects_a_bad_boolean_naming_the_variable_and_value():
    with pytest.raises(ImproperlyConfigured) as error:
        env_bool("DJANGO_DEBUG", False, environ={"DJANGO_DEBUG": "maybe"})
    message = str(error.value)
    assert message.startswith("DJANGO_DEBUG='maybe' is not valid")
    assert "boolean" in message
    assert "\n" not in message


def test_it_rejects_non_integers_and_out_of_range_integers():
    assert env_int("N", 3, environ={"N": "12"}) == 12
    with pytest.raises(ImproperlyConfigured, match="N='twelve' is not valid: expected an integer"):
        env_int("N", 3, environ={"N": "twelve"})
    with pytest.raises(ImproperlyConfigured, match="expected a number >= 1"):
        env_int("N", 3, minimum=1, environ={"N": "0"})


def test_it_rejects_nan_and_infinite_floats():
    assert env_float("F", 1.0, environ={"F": "2.5"}) == 2.5
    for text in ("nan", "inf", "-inf"):
        with pytest.raises(ImproperlyConfigured, match="finite"):
            env_float("F", 1.0, environ={"F": text})


def test_it_requires_a_variable_without_default():
    with pytest.raises(ImproperlyConfigured, match="DJANGO_SECRET_KEY is required but not set"):
        env_str("DJANGO_SECRET_KEY", environ={"DJANGO_SECRET_KEY": "  "})


def test_it_splits_lists_and_drops_blanks():
    assert env_list("H", ["a"], environ={"H": "x.example, y.example,,"}) == [
        "x.example",
        "y.example",
    ]
    assert env_list("H", ["a"], environ={}) == ["a"]


def test_it_accepts_only_listed_choices():
    assert env_choice("MODE", "paper", ("paper", "binance"), environ={"MODE": "Binance"}) == (
        "binance"
    )
    with pytest.raises(ImproperlyConfigured, match="one of paper, binance"):
        env_choice("MODE", "paper", ("paper", "binance"), environ={"MODE": "ftx"})


def test_it_checks_urls_for_scheme_host_and_port():
    schemes = ("redis", "rediss")
    assert env_url("REDIS_URL", "redis://h:1/0", schemes, environ={}) == "redis://h:1/0"
    with pytest.raises(ImproperlyConfigured, match="starting with redis:// or rediss://"):
        env_url("REDIS_URL", "", schemes, environ={"REDIS_URL": "http://localhost:6379"})
    with pytest.raises(ImproperlyConfigured, match="numeric port"):
        env_url("REDIS_URL", "", schemes, environ={"REDIS_URL": "redis://localhost:port/0"})
    with pytest.raises(ImproperlyConfigured, match="host name"):
        env_url("REDIS_URL", "", schemes, environ={"REDIS_URL": "redis:///0"})
    assert env_url("DATABASE_URL", "", ("sqlite",), environ={"DATABASE_URL": "sqlite:///x.db"})


def test_it_reads_web_origins_and_refuses_anything_more_than_an_origin():
    from controlpanel.env import env_origins

    environ = {"O": "https://trader.example.com, http://127.0.0.1:8000/,https://*.example.org"}
    assert env_origins("O", ["x"], environ=environ) == [
        "https://trader.example.com", "http://127.0.0.1:8000", "https://*.example.org",
    ]  # fmt: skip
    assert env_origins("O", ["http://localhost:8000"], environ={}) == ["http://localhost:8000"]
    for bad in ("trader.example.com", "ws://x", "https://x/dashboard", "http://x:port"):
        with pytest.raises(ImproperlyConfigured, match="O="):
            env_origins("O", [], environ={"O": bad})


def test_it_reads_symbols_in_ascii_and_upper_cases_only_ascii_letters():
    from controlpanel.env import env_symbols

    environ = {"S": "btcusdt, ETHUSDT,btcusdt"}
    assert env_symbols("S", ["X"], environ=environ) == ["BTCUSDT", "ETHUSDT"]
    assert env_symbols("S", ["BTCUSDT"], environ={}) == ["BTCUSDT"]
    for bad in ("\u017folusdt", "BTC-USDT", "\uff22TCUSDT", ","):
        with pytest.raises(ImproperlyConfigured, match="S="):
            env_symbols("S", [], environ={"S": bad})
