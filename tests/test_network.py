"""The proxy and TLS rules of gtmhub_async.network, as pure functions."""

from __future__ import annotations

import ssl
from pathlib import Path

import aiohttp
import pytest
import trustme

from gtmhub_async import GtmhubClient
from gtmhub_async.network import (
    ProxySettings,
    bypasses_proxy,
    choose_proxy,
    environment_proxy,
    is_loopback,
    make_ssl_context,
    proxy_credentials,
    redact_url,
    split_proxy_url,
)

API = "https://app.gtmhub.com/api"
ACCOUNT = "5be26318e5274a0007f17f61"


@pytest.mark.parametrize(
    ("host", "port", "no_proxy", "expected"),
    [
        ("app.gtmhub.com", 443, "*", True),
        ("app.gtmhub.com", 443, "gtmhub.com", True),
        ("app.gtmhub.com", 443, ".gtmhub.com", True),
        ("gtmhub.com", 443, ".gtmhub.com", True),
        ("app.gtmhub.com", 443, "*.gtmhub.com", True),
        ("APP.Gtmhub.COM", 443, "gtmhub.com", True),
        ("app.gtmhub.com.", 443, "gtmhub.com", True),
        ("badgtmhub.com", 443, "gtmhub.com", False),
        ("app.gtmhub.com", 443, "quantive.com", False),
        ("app.gtmhub.com", 443, "other.org, gtmhub.com", True),
        ("app.gtmhub.com", 443, "other.org gtmhub.com", True),
        ("app.gtmhub.com", 443, "gtmhub.com:443", True),
        ("app.gtmhub.com", 8443, "gtmhub.com:443", False),
        ("app.gtmhub.com", 443, "gtmhub.com:x", False),
        ("10.1.2.3", 443, "10.0.0.0/8", True),
        ("11.1.2.3", 443, "10.0.0.0/8", False),
        ("10.1.2.3", 443, "10.1.2.3", True),
        ("10.1.2.3", 443, "10.1.2.3:443", True),
        ("10.1.2.3", 80, "10.1.2.3:443", False),
        ("10.1.2.3", 443, "gtmhub.com", False),
        ("2001:db8::1", 443, "2001:db8::/32", True),
        ("[2001:db8::1]", 443, "[2001:db8::1]:443", True),
        ("[2001:db8::1]", 80, "[2001:db8::1]:443", False),
        ("app.gtmhub.com", 443, "", False),
        ("app.gtmhub.com", 443, " , ,", False),
    ],
)
def test_no_proxy_rules(host: str, port: int, no_proxy: str, expected: bool) -> None:
    assert bypasses_proxy(host, port, no_proxy) is expected


@pytest.mark.parametrize(
    "host", ["localhost", "127.0.0.1", "127.9.9.9", "::1", "[::1]", "a.localhost"]
)
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["app.gtmhub.com", "10.0.0.1", "localhost.example.com"])
def test_not_loopback_hosts(host: str) -> None:
    assert not is_loopback(host)


def test_lowercase_proxy_variable_wins_over_uppercase() -> None:
    env = {"https_proxy": "http://lower:3128", "HTTPS_PROXY": "http://upper:3128"}
    assert environment_proxy(API, env) == ProxySettings("http://lower:3128")
    assert environment_proxy(API, {"HTTPS_PROXY": "http://upper:3128"}) == ProxySettings(
        "http://upper:3128"
    )


def test_the_scheme_picks_the_variable_and_all_proxy_is_the_fallback() -> None:
    env = {"HTTP_PROXY": "http://plain:1", "ALL_PROXY": "http://all:2"}
    assert environment_proxy("http://example.com/api", env) == ProxySettings("http://plain:1")
    assert environment_proxy(API, env) == ProxySettings("http://all:2")
    assert environment_proxy(API, {"HTTP_PROXY": "http://plain:1"}) is None


def test_uppercase_http_proxy_is_ignored_in_a_cgi_request() -> None:
    env = {"HTTP_PROXY": "http://from-a-header:1", "REQUEST_METHOD": "GET"}
    assert environment_proxy("http://example.com/api", env) is None
    env["http_proxy"] = "http://mine:2"
    assert environment_proxy("http://example.com/api", env) == ProxySettings("http://mine:2")


def test_no_proxy_lowercase_wins_and_bypasses() -> None:
    env = {"HTTPS_PROXY": "http://p:3128", "no_proxy": "gtmhub.com", "NO_PROXY": "other.org"}
    assert environment_proxy(API, env) is None
    env = {"HTTPS_PROXY": "http://p:3128", "NO_PROXY": "gtmhub.com:443"}
    assert environment_proxy(API, env) is None
    assert environment_proxy("https://app.gtmhub.com:8443/api", env) == ProxySettings(
        "http://p:3128"
    )


def test_an_environment_proxy_never_takes_loopback_traffic() -> None:
    env = {"HTTP_PROXY": "http://p:3128", "HTTPS_PROXY": "http://p:3128"}
    for url in ("http://127.0.0.1:8080/api", "http://localhost/api", "https://[::1]:1/api"):
        assert environment_proxy(url, env) is None
    # An explicit proxy is the user's choice: used even for loopback.
    chosen = choose_proxy(
        "http://127.0.0.1:8080/api", proxy="http://p:3128", proxy_auth=None, trust_env=True
    )
    assert chosen == ProxySettings("http://p:3128")


def test_credentials_move_out_of_the_proxy_url_and_never_show() -> None:
    settings = split_proxy_url("http://us%40er:s3cr%2Ft@proxy.corp:3128/")
    assert settings.url == "http://proxy.corp:3128"
    assert settings.auth == ("us@er", "s3cr/t", "latin1")
    assert "s3cr" not in repr(settings) and "us@er" not in repr(settings)
    assert repr(settings) == "ProxySettings(url='http://proxy.corp:3128', auth='<hidden>')"
    assert split_proxy_url("proxy.corp:3128") == ProxySettings("http://proxy.corp:3128")
    assert split_proxy_url("http://[::1]:3128").url == "http://[::1]:3128"


def test_a_bad_proxy_url_is_refused_without_its_credentials() -> None:
    with pytest.raises(ValueError, match=r"^proxy must be an http:// or https:// URL") as info:
        split_proxy_url("socks5://user:s3cret@proxy.corp:1080")
    assert "s3cret" not in str(info.value) and "***@proxy.corp:1080" in str(info.value)
    with pytest.raises(ValueError, match=r"^proxy is not a valid URL") as info:
        split_proxy_url("http://user:s3cret@proxy.corp:99999")
    assert "s3cret" not in str(info.value) and "***@" not in str(info.value)
    with pytest.raises(TypeError, match=r"^proxy must be a str URL, got int$"):
        split_proxy_url(3128)  # type: ignore[arg-type]  # the wrong type on purpose
    env = {"HTTPS_PROXY": "ftp://user:s3cret@proxy.corp"}
    with pytest.raises(ValueError, match=r"^HTTPS_PROXY in the environment: proxy must") as info:
        environment_proxy(API, env)
    assert "s3cret" not in str(info.value)


def test_redact_url() -> None:
    assert redact_url("http://a:b@h:1/p") == "http://***@h:1/p"
    assert redact_url("http://h:1/p") == "http://h:1/p"
    assert redact_url("http://a@[::1]/") == "http://***@[::1]/"


def test_choose_proxy_explicit_environment_and_trust_env() -> None:
    env = {"HTTPS_PROXY": "http://envproxy:1"}
    auth = ("u", "p")
    assert choose_proxy(API, proxy=None, proxy_auth=None, trust_env=True, environ=env) == (
        ProxySettings("http://envproxy:1")
    )
    assert choose_proxy(API, proxy=None, proxy_auth=None, trust_env=False, environ=env) is None
    assert choose_proxy(
        API, proxy="http://mine:2", proxy_auth=auth, trust_env=True, environ=env
    ) == ProxySettings("http://mine:2", proxy_credentials("u", "p"))
    with pytest.raises(ValueError, match=r"^proxy_auth needs proxy= \(the environment"):
        choose_proxy(API, proxy=None, proxy_auth=auth, trust_env=True, environ=env)


def test_ssl_context_sources(tmp_path: Path) -> None:
    ca = trustme.CA()
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    mine = ssl.create_default_context()
    assert make_ssl_context(ca_bundle=None, ssl_context=mine, trust_env=True) is mine
    assert make_ssl_context(ca_bundle=None, ssl_context=None, trust_env=True, environ={}) is None
    from_bundle = make_ssl_context(ca_bundle=bundle, ssl_context=None, trust_env=False)
    assert from_bundle is not None and from_bundle.cert_store_stats()["x509_ca"] == 1
    env = {"SSL_CERT_FILE": str(bundle)}
    from_env = make_ssl_context(ca_bundle=None, ssl_context=None, trust_env=True, environ=env)
    assert from_env is not None and from_env.cert_store_stats()["x509_ca"] == 1
    assert make_ssl_context(ca_bundle=None, ssl_context=None, trust_env=False, environ=env) is None
    assert make_ssl_context(ca_bundle=tmp_path, ssl_context=None, trust_env=False) is not None


def test_bad_tls_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^give ca_bundle or ssl_context, not both$"):
        make_ssl_context(
            ca_bundle="x.pem", ssl_context=ssl.create_default_context(), trust_env=True
        )
    with pytest.raises(TypeError, match=r"^ssl_context must be an ssl.SSLContext"):
        make_ssl_context(ca_bundle=None, ssl_context="ctx", trust_env=True)  # type: ignore[arg-type]  # on purpose
    missing = tmp_path / "missing.pem"
    with pytest.raises(ValueError, match=r"is neither a file nor a directory$"):
        make_ssl_context(ca_bundle=missing, ssl_context=None, trust_env=True)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    with pytest.raises(ValueError, match=r"^cannot load the CA certificates of ca_bundle: "):
        make_ssl_context(ca_bundle=garbage, ssl_context=None, trust_env=True)


def test_client_refuses_bad_proxy_and_tls_options_at_construction() -> None:
    with pytest.raises(ValueError, match=r"^proxy must be an http:// or https:// URL"):
        GtmhubClient("t", ACCOUNT, proxy="socks5://p:1")
    with pytest.raises(TypeError, match=r"^proxy_auth must be a \(login, password\) pair"):
        GtmhubClient("t", ACCOUNT, proxy="http://p:1", proxy_auth="u:p")  # type: ignore[arg-type]  # on purpose
    with pytest.raises(ValueError, match=r'^a ":" is not allowed in a proxy login'):
        GtmhubClient("t", ACCOUNT, proxy="http://p:1", proxy_auth=("u:x", "p"))
    with pytest.raises(TypeError, match=r"^trust_env must be a bool, got int$"):
        GtmhubClient("t", ACCOUNT, trust_env=1)  # type: ignore[arg-type]  # on purpose


async def test_client_refuses_proxy_options_with_an_injected_session() -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(ValueError, match=r"^proxy, ca_bundle and ssl_context configure the"):
            GtmhubClient("t", ACCOUNT, session=session, proxy="http://p:1")


def test_from_env_reads_the_proxy_and_the_ca_bundle(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bundle = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("GTMHUB_TOKEN", "t")
    monkeypatch.setenv("GTMHUB_ACCOUNT_ID", ACCOUNT)
    monkeypatch.setenv("GTMHUB_PROXY", "http://u:pw@proxy.corp:3128")
    monkeypatch.setenv("GTMHUB_CA_BUNDLE", str(bundle))
    client = GtmhubClient.from_env()
    assert client._proxy == "http://u:pw@proxy.corp:3128"
    assert client._ca_bundle == str(bundle)
    assert "pw" not in repr(client) and "proxy.corp" not in repr(client)
