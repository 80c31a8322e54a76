"""The deployment files, checked without Docker (it does not run on every machine):
docker-compose.yml runs the Makefile's own targets, publishes only the proxy's ports,
and hands the proxy what the Caddyfile expects; Caddy itself accepts the Caddyfile."""

import ipaddress
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
# Services built from this repository (the others run a published image: PostgreSQL,
# Redis, Caddy, each with its own command).
OURS = {name: service for name, service in SERVICES.items() if "build" in service}
PROXY = "proxy"


def makefile_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z][\w-]*):(?!=)", text, flags=re.MULTILINE))


def test_compose_has_our_services_and_a_proxy():
    assert {"web", PROXY} <= set(SERVICES)
    assert "web" in OURS
    assert PROXY not in OURS


@pytest.mark.parametrize("name", sorted(OURS))
def test_every_service_of_ours_runs_a_makefile_target(name):
    command = OURS[name].get("command")
    assert isinstance(command, list), f"{name}: give the command as a list"
    assert command[0] == "make", f"{name}: run a Makefile target, not {command[0]!r}"
    targets = [word for word in command[1:] if "=" not in word and not word.startswith("-")]
    assert targets, f"{name}: no target in {command}"
    assert set(targets) <= makefile_targets(), f"{name}: {targets} not all in the Makefile"


def test_only_the_proxy_publishes_ports():
    publishing = sorted(name for name, service in SERVICES.items() if service.get("ports"))
    assert publishing == [PROXY]
    published = {str(port).split("/")[0].split(":")[-1] for port in SERVICES[PROXY]["ports"]}
    assert published == {"80", "443"}


def test_the_proxy_gets_the_caddyfile_and_the_collected_static_files():
    proxy_volumes = SERVICES[PROXY]["volumes"]
    assert "./Caddyfile:/etc/caddy/Caddyfile:ro" in proxy_volumes
    caddyfile = (ROOT / "Caddyfile").read_text()
    static_root = OURS["web"]["environment"]["STATIC_ROOT"]
    (var_volume,) = [v for v in OURS["web"]["volumes"] if static_root.startswith(v.split(":")[1])]
    volume, mount = var_volume.split(":")[:2]
    proxy_mount = next(v.split(":")[1] for v in proxy_volumes if v.startswith(f"{volume}:"))
    served_from = proxy_mount + static_root.removeprefix(mount)
    assert f"root * {served_from}" in caddyfile
    assert "reverse_proxy web:8000" in caddyfile


def test_the_site_trusts_the_proxys_forwarded_address_and_no_one_elses():
    proxy_address = SERVICES[PROXY]["networks"]["default"]["ipv4_address"]
    trusted = OURS["web"]["environment"]["TRUSTED_PROXIES"]
    assert trusted == f"${{TRUSTED_PROXIES:-{proxy_address}}}"
    subnet = COMPOSE["networks"]["default"]["ipam"]["config"][0]["subnet"]
    assert ipaddress.ip_address(proxy_address) in ipaddress.ip_network(subnet)


def caddy() -> str:
    path = shutil.which("caddy")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("caddy is not installed; CI installs the Debian package caddy")
        pytest.skip("caddy is not installed (apt-get install caddy); CI runs this test")
    return path


@pytest.mark.parametrize("domain", ["localhost", "news.cancer-center.example.org"])
def test_caddy_accepts_the_caddyfile(tmp_path, domain):
    env = {
        **os.environ,
        "SITE_DOMAIN": domain,
        "HOME": str(tmp_path),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
    }
    result = subprocess.run(
        [caddy(), "validate", "--config", str(ROOT / "Caddyfile"), "--adapter", "caddyfile"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Valid configuration" in result.stdout + result.stderr


def test_a_broken_caddyfile_is_refused(tmp_path):
    # The validation above could not fail if `caddy validate` accepted anything.
    broken = tmp_path / "Caddyfile"
    broken.write_text("localhost {\n\treverse_proxy web:8000 {\n\t\tno_such_option 1\n\t}\n}\n")
    result = subprocess.run(
        [caddy(), "validate", "--config", str(broken), "--adapter", "caddyfile"],
        capture_output=True,
        text=True,
        env={**os.environ, "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path)},
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
