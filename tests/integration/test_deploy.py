"""deploy/: what an operator installs, checked as far as this machine can run it.

- The Prosody snippet is loaded by a real Prosody (the harness's private server, with the
  snippet's MUC service in place of the harness's own), and the bot works against it.
- The compose stack's own Prosody config, with the snippet in conf.d, passes
  `prosodyctl check config`.
- The ejabberd snippet is merged into a real ejabberd's config (tests/harness/ejabberd.py
  builds its config from it), and the bot works against that ejabberd.
- The quick start runs the one local-Prosody launcher (deploy/localprosody.py, which the
  tests use too) and needs nothing from tests/.
- The Dockerfile, the compose file and the systemd unit are checked statically: no Docker
  engine or systemd runs here.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.cli import EXIT_USAGE
from bot.config import load_settings
from deploy import localprosody
from deploy.localprosody import Prosody
from tests.harness import prosody as harness_prosody
from tests.harness.ejabberd import Ejabberd
from tests.harness.ejabberd import snippet_for as ejabberd_snippet_for
from tests.harness.xmpp_client import TestClient
from tests.integration.conftest import PASSWORD, BotHandle, write_config

try:
    import yaml
except ImportError:  # pragma: no cover - the test extra should have it
    yaml = None

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SNIPPET = DEPLOY / "prosody" / "addinbot.cfg.lua"
EJABBERD = DEPLOY / "ejabberd" / "addinbot.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = DEPLOY / "Dockerfile.dockerignore"
COMPOSE_DIR = DEPLOY / "compose"
COMPOSE = COMPOSE_DIR / "compose.yaml"
UNIT = DEPLOY / "systemd" / "addinbot.service"
UNIT_CONFIG = DEPLOY / "systemd" / "addinbot.toml"
QUICKSTART = DEPLOY / "quickstart.sh"

EXAMPLE_DOMAIN = "example.org"


def load_yaml(path: Path) -> Any:
    if yaml is None:
        pytest.fail("PyYAML is missing: add pyyaml to the test extra (pyproject.toml)",
                    pytrace=False)
    return yaml.safe_load(path.read_text(encoding="utf-8"))


# --- the Prosody snippet, in a real Prosody --------------------------------------------------


def snippet_for(domain: str) -> str:
    """The snippet as an operator would install it, for `domain` instead of example.org."""
    text = SNIPPET.read_text(encoding="utf-8")
    assert EXAMPLE_DOMAIN in text
    return text.replace(EXAMPLE_DOMAIN, domain)


class SnippetProsody(Prosody):
    """The harness's private Prosody (loopback, plaintext, its own ports and paths), whose
    MUC service is the one deploy/prosody/addinbot.cfg.lua defines, not the harness's."""

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir, extra_config=snippet_for("localhost"))

    def config_text(self) -> str:
        text = super().config_text()
        own_muc = re.compile(
            rf'^Component "{re.escape(self.muc)}" "muc" \{{\n.*?^\}}\n', re.MULTILINE | re.DOTALL
        )
        text, removed = own_muc.subn("", text)
        assert removed == 1, "the harness's MUC section was not found: has its layout changed?"
        return text


@pytest.fixture(scope="module")
def snippet_prosody(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SnippetProsody]:
    server = SnippetProsody(tmp_path_factory.mktemp("snippet-prosody"))
    server.start()
    for user in ("addinbot", "admin", "alice"):
        server.register(user, PASSWORD)
    yield server
    server.stop()
    assert server.log_errors() == []


@pytest.mark.xmpp
def test_snippet_is_what_prosody_loaded(snippet_prosody: SnippetProsody) -> None:
    config = snippet_prosody.config_path.read_text(encoding="utf-8")
    assert config.count('Component "conference.localhost" "muc"') == 1
    assert snippet_for("localhost") in config
    assert "muc_room_locking = false" not in config  # the harness's MUC settings are gone


@pytest.mark.xmpp
async def test_the_bot_works_on_the_snippets_muc_service(
    snippet_prosody: SnippetProsody, tmp_path: Path
) -> None:
    """A DM `help` is answered, and the bot joins a members-only room once its owner has
    given it the `member` affiliation, as the snippet's comments tell room owners to."""
    server = snippet_prosody
    bot_jid = f"addinbot@{server.domain}"
    handle = BotHandle(load_settings(write_config(server, tmp_path)))
    await handle.start()
    clients: list[TestClient] = []
    try:
        for user in ("admin", "alice"):
            client = TestClient(f"{user}@{server.domain}", PASSWORD)
            await client.start(server.host, server.port)
            clients.append(client)
        admin, alice = clients

        reply = await admin.ask(bot_jid, "help")
        assert "register <name> <url>" in reply

        room = f"lobby@{server.muc}"
        # Rooms are locked until configured (the snippet keeps Prosody's default): alice
        # creates the room, makes it members-only, and gives the bot its affiliation.
        await alice.join_room(room, "alice")
        muc = alice.plugin["xep_0045"]
        form = await muc.get_room_config(room)
        fields = form.get_fields()
        fields["muc#roomconfig_membersonly"]["value"] = True
        fields["muc#roomconfig_persistentroom"]["value"] = True
        await muc.set_room_config(room, form)
        await muc.set_affiliation(room, "member", jid=bot_jid)

        reply = await admin.ask(bot_jid, f"join {room}")
        assert room in reply
        await handle.in_room(room)

        alice.send_groupchat(room, "!addin")
        answer = await alice.next_message(
            predicate=lambda m: m["from"].bare == room and m["from"].resource == "AddinBot"
        )
        assert "add-in" in answer["body"]
    finally:
        for client in clients:
            await client.stop()
        await handle.stop()


def test_snippet_keeps_its_global_options_above_the_component() -> None:
    lines = [
        line for line in SNIPPET.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("--")
    ]
    first_section = next(i for i, line in enumerate(lines) if line.startswith("Component"))
    assert lines[first_section] == f'Component "conference.{EXAMPLE_DOMAIN}" "muc"'
    assert lines[:first_section] == [f'unlimited_jids = {{ "addinbot@{EXAMPLE_DOMAIN}" }}']
    assert not any(re.match(r"\s*admins\s*=", line) for line in lines)  # never a server admin


def compose_entrypoint(etc: Path, domain: str) -> subprocess.CompletedProcess[str]:
    """deploy/compose/prosody-entrypoint.sh, run with its Prosody folder at `etc` and
    prosodyctl and setpriv stubbed out (they would import certificates, register the bot
    and start Prosody): what it writes into conf.d/."""
    stubs = etc / "stubs"
    stubs.mkdir(exist_ok=True)
    for name in ("prosodyctl", "setpriv"):
        (stubs / name).write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")
        (stubs / name).chmod(0o755)
    env = {"PATH": f"{stubs}:/usr/bin:/bin", "XMPP_DOMAIN": domain, "PROSODY_ETC": str(etc)}
    return subprocess.run(["sh", str(COMPOSE_DIR / "prosody-entrypoint.sh")], env=env,
                          capture_output=True, text=True, timeout=30, check=False)


@pytest.mark.xmpp
def test_compose_prosody_config_with_the_snippet_for_its_domain_passes_prosodyctl_check() -> None:
    """Prosody in deploy/compose follows XMPP_DOMAIN: its VirtualHost (prosody.cfg.lua) and
    addinbot's MUC snippet, which its entrypoint writes into conf.d/ for that domain."""
    # prosodyctl, run as root, reads the config as the prosody user: a folder it may read.
    with tempfile.TemporaryDirectory(prefix="addinbot-compose-") as folder:
        where = Path(folder)
        (where / "certs").mkdir()
        shutil.copy(COMPOSE_DIR / "prosody.cfg.lua", where / "prosody.cfg.lua")
        shutil.copy(SNIPPET, where / "addinbot.cfg.lua.in")  # as compose mounts it
        done = compose_entrypoint(where, "chat.test")
        assert done.returncode == 0, done.stderr
        written = (where / "conf.d" / "addinbot.cfg.lua").read_text(encoding="utf-8")
        assert written == snippet_for("chat.test")
        assert 'Component "conference.chat.test" "muc"' in written
        assert "example.org" not in written
        for path in (where, where / "conf.d", where / "certs"):
            path.chmod(0o755)
        done = subprocess.run(
            ["prosodyctl", "--config", str(where / "prosody.cfg.lua"), "check", "config"],
            capture_output=True, text=True, timeout=30, cwd=where, check=False,
            env={**os.environ, "XMPP_DOMAIN": "chat.test"},
        )
        bad = compose_entrypoint(where, "chat.test/../x")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "conf.d/addinbot.cfg.lua" in output
    assert "All checks passed" in output
    assert bad.returncode == 2, bad.stderr  # not a domain: refused, nothing written


# --- the Dockerfile --------------------------------------------------------------------------


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        whole = (pending + line).strip()
        pending = ""
        keyword, _, args = whole.partition(" ")
        result.append((keyword.upper(), " ".join(args.split())))
    return result


def readme_install() -> tuple[str, str]:
    """README's install line, split into the command and the package path it installs."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(r"^(python3 -m venv (\S+) && \2/bin/pip install) (\S+)$", text, re.M)
    assert found, "README.md has no `python3 -m venv DIR && DIR/bin/pip install PATH` line"
    return found.group(1), found.group(3)


def copies(steps: list[tuple[str, str]]) -> list[tuple[list[str], str]]:
    """(sources, destination) of each COPY from the build context."""
    result = []
    for keyword, args in steps:
        if keyword != "COPY":
            continue
        words = [w for w in shlex.split(args) if not w.startswith("--chmod")]
        if any(w.startswith("--from") for w in words):
            continue
        result.append((words[:-1], words[-1]))
    return result


def test_dockerfile_installs_the_package_as_the_readme_does() -> None:
    steps = instructions(DOCKERFILE)
    assert [args.split()[0] for keyword, args in steps if keyword == "FROM"] == [
        "python:3.11-slim", "python:3.11-slim",
    ]
    command, _path = readme_install()
    runs = [args for keyword, args in steps if keyword == "RUN" and "pip install" in args]
    assert len(runs) == 1
    # The README installs /path/to/addinbot, the folder holding pyproject.toml; the image
    # copies pyproject.toml to the folder it then installs.
    project = next(dest for sources, dest in copies(steps) if "pyproject.toml" in sources)
    assert runs[0] == f"{command} {project.rstrip('/')}"


def test_dockerfile_copies_what_pip_install_needs_and_it_exists() -> None:
    steps = instructions(DOCKERFILE)
    copied = [source for sources, _dest in copies(steps) for source in sources]
    for source in copied:
        assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    needed = {"pyproject.toml", pyproject["project"]["readme"]}
    needed |= {
        pattern.rstrip("*") for pattern in pyproject["tool"]["setuptools"]["packages"]["find"]
        ["include"]
    }
    assert needed <= set(copied)
    # The build context is the repository: its .dockerignore lets exactly these through.
    allowed = {
        line[1:].rstrip("/") for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.startswith("!")
    }
    assert set(copied) <= allowed
    assert "*" in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()


def test_dockerfile_runs_the_console_script_unprivileged() -> None:
    steps = dict(instructions(DOCKERFILE))  # the last of each kind
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert steps["ENTRYPOINT"] == '["addinbot"]'
    assert "addinbot" in pyproject["project"]["scripts"]
    assert steps["CMD"] == '["run"]'
    assert steps["USER"].split(":")[0] not in ("root", "0")
    assert "ADDINBOT_CONFIG=/etc/addinbot/addinbot.toml" in steps["ENV"]


# --- the compose file ------------------------------------------------------------------------


@pytest.fixture
def compose() -> dict[str, Any]:
    data = load_yaml(COMPOSE)
    assert isinstance(data, dict)
    return data


def test_compose_has_prosody_postgres_and_the_bot(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"prosody", "postgres", "bot"}
    build = services["bot"]["build"]
    assert (COMPOSE_DIR / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE
    assert (COMPOSE_DIR / build["context"]).resolve() == ROOT
    prosody_build = services["prosody"]["build"]
    prosody_dockerfile = COMPOSE_DIR / prosody_build["context"] / prosody_build["dockerfile"]
    for sources, _dest in copies(instructions(prosody_dockerfile)):
        for source in sources:
            assert (prosody_dockerfile.parent / source).exists(), source
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["bot"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_compose_mounts_files_that_exist_or_that_the_operator_makes(
    compose: dict[str, Any],
) -> None:
    made_by_operator = {
        line.strip().rstrip("/")
        for line in (COMPOSE_DIR / ".gitignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    sources = [
        volume.split(":")[0]
        for service in compose["services"].values()
        for volume in service.get("volumes", [])
        if volume.startswith(".")
    ]
    sources += [secret["file"] for secret in compose["secrets"].values()]
    for source in sources:
        first = Path(source).parts[0] if not source.startswith("..") else ""
        if first in made_by_operator:
            continue
        assert (COMPOSE_DIR / source).exists(), f"{source} is mounted but does not exist"
    mounted = {
        volume.split(":")[1]: (COMPOSE_DIR / volume.split(":")[0]).resolve()
        for volume in compose["services"]["prosody"]["volumes"] if volume.startswith(".")
    }
    assert mounted["/etc/prosody/addinbot.cfg.lua.in"] == SNIPPET  # written into conf.d/
    for service in compose["services"].values():
        for secret in service.get("secrets", []):
            assert secret in compose["secrets"]


def test_compose_header_names_every_file_it_uses(compose: dict[str, Any]) -> None:
    """An operator copying deploy/compose finds, in its header, every file it mounts or
    builds from, including those outside deploy/compose."""
    header = "\n".join(
        line for line in COMPOSE.read_text(encoding="utf-8").splitlines()
        if line.startswith("#")
    )
    used = [
        volume.split(":")[0]
        for service in compose["services"].values()
        for volume in service.get("volumes", [])
        if volume.startswith(".")
    ]
    used += [secret["file"].removeprefix("./") for secret in compose["secrets"].values()]
    for service in compose["services"].values():
        build = service.get("build")
        if build:
            used.append(str(Path(build["context"]) / build["dockerfile"]))
    for path in used:
        shown = os.path.normpath(path.removeprefix("./"))
        if shown == "deploy/Dockerfile" or shown.endswith("/deploy/Dockerfile"):
            shown = "../Dockerfile"
        elif path.startswith("../.."):
            shown = os.path.relpath(COMPOSE_DIR.parent.parent / path, COMPOSE_DIR)
        assert shown.rstrip("/") in header, f"{path} is used but not named in the header"
    assert "prosody-entrypoint.sh" in header


def test_compose_bot_config_is_valid_with_its_environment(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    bot = compose["services"]["bot"]
    mounts = dict(reversed(volume.split(":")[:2]) for volume in bot["volumes"])
    config = COMPOSE_DIR / mounts["/etc/addinbot/addinbot.toml"]
    for name, value in bot["environment"].items():
        monkeypatch.setenv(name, str(value))
    settings = load_settings(config)
    assert settings.xmpp is not None
    assert settings.xmpp.tls == "starttls"
    assert str(settings.xmpp.password_file) == "/run/secrets/xmpp-password"
    assert settings.xmpp.ca_file is not None
    assert str(settings.xmpp.ca_file) in mounts
    assert settings.store.url.startswith("postgresql+psycopg://addinbot@postgres")
    assert settings.log.format == "json"
    # The healthcheck asks the metrics server the config starts.
    assert settings.metrics.address is not None
    port = settings.metrics.address[1]
    assert f"127.0.0.1:{port}/health" in " ".join(bot["healthcheck"]["test"])
    assert compose["services"]["prosody"]["environment"]["XMPP_DOMAIN"] == (
        settings.xmpp.jid.split("@")[1]
    )


# --- the systemd unit ------------------------------------------------------------------------


def unit_entries(path: Path) -> dict[str, list[str]]:
    """Every `Key=value` of a unit file's [Service] (keys may repeat)."""
    entries: dict[str, list[str]] = {}
    section = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
            continue
        key, sep, value = line.partition("=")
        assert sep, f"not Key=value: {raw!r}"
        entries.setdefault(f"{section}{key}", []).append(value)
    return entries


def test_systemd_unit_is_hardened() -> None:
    unit = {k.removeprefix("[Service]"): v for k, v in unit_entries(UNIT).items()}
    for key, value in {
        "NoNewPrivileges": "yes", "ProtectSystem": "strict", "DynamicUser": "yes",
        "ProtectHome": "yes", "PrivateTmp": "yes", "PrivateDevices": "yes",
        "RestrictSUIDSGID": "yes", "CapabilityBoundingSet": "", "UMask": "0077",
    }.items():
        assert unit.get(key) == [value], key
    assert unit["RestartPreventExitStatus"] == [str(EXIT_USAGE)]  # a bad config stays down
    assert shlex.split(unit["ExecStart"][0])[1:] == [
        "run", "--config", "/etc/addinbot/addinbot.toml",
    ]


def test_systemd_unit_password_is_a_credential_read_as_password_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    unit = {k.removeprefix("[Service]"): v for k, v in unit_entries(UNIT).items()}
    [credential] = unit["LoadCredential"]
    name, _, host_file = credential.partition(":")
    assert host_file.startswith("/etc/addinbot/")
    environment = dict(entry.split("=", 1) for entry in unit["Environment"])
    assert environment["ADDINBOT_XMPP__PASSWORD_FILE"] == f"%d/{name}"
    # The example config loads with what the unit sets, and keeps no password itself.
    monkeypatch.setenv("ADDINBOT_XMPP__PASSWORD_FILE", f"/run/credentials/addinbot/{name}")
    settings = load_settings(UNIT_CONFIG)
    assert settings.xmpp is not None
    assert settings.xmpp.password is None
    # The SQLite database lies in the one folder the unit may write.
    database = Path(settings.store.url.removeprefix("sqlite:///"))
    writable = [Path("/var/lib") / d for d in unit["StateDirectory"]]
    writable += [Path(p.lstrip("-")) for p in unit.get("ReadWritePaths", [])]
    assert database.parent in writable


def test_systemd_unit_documentation_is_installed_by_pip(tmp_path: Path) -> None:
    """`Documentation=` names the README as `pip install` puts it in the README's venv
    (/opt/addinbot): the wheel carries it as data for <venv>/share/doc/addinbot/."""
    [documentation] = unit_entries(UNIT)["[Unit]Documentation"]
    command, _path = readme_install()
    venv = command.split()[3]  # python3 -m venv DIR && ...
    assert documentation == f"file://{venv}/share/doc/addinbot/README.md"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr
    [wheel] = tmp_path.glob("addinbot-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        shipped = [name for name in archive.namelist() if name.endswith("/README.md")]
        assert [name.split(".data/data/", 1)[-1] for name in shipped] == [
            "share/doc/addinbot/README.md"
        ]
        assert archive.read(shipped[0]) == (ROOT / "README.md").read_bytes()


def test_systemd_unit_passes_systemd_analyze(tmp_path: Path) -> None:
    """Where systemd-analyze exists (Debian has it with systemd), the unit verifies and its
    exposure score is low; the static tests above run everywhere."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed; the unit was checked statically")
    unit = tmp_path / "addinbot.service"
    # verify wants ExecStart's program to exist: point it at this checkout's script.
    script = shutil.which("addinbot") or str(ROOT / ".venv" / "bin" / "addinbot")
    unit.write_text(UNIT.read_text(encoding="utf-8").replace(
        "/opt/addinbot/bin/addinbot", script), encoding="utf-8")
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "addinbot.service" not in done.stderr, done.stderr  # no unknown key, no warning
    done = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(unit)],
                          capture_output=True, text=True, timeout=60, check=False)
    found = re.search(r"Overall exposure level for addinbot\.service: ([\d.]+)", done.stdout)
    assert found, done.stdout + done.stderr
    assert float(found.group(1)) <= 2.0, done.stdout


# --- the ejabberd snippet --------------------------------------------------------------------


def test_ejabberd_snippet_parses_and_sets_what_the_bot_needs() -> None:
    config = load_yaml(EJABBERD)
    assert set(config) == {"acl", "shaper_rules", "modules"}
    assert config["acl"]["addinbot"]["user"] == [f"addinbot@{EXAMPLE_DOMAIN}"]
    assert "admin" not in config["acl"]  # the bot is never a server admin
    assert {"none": "addinbot"} in config["shaper_rules"]["c2s_shaper"]
    muc = config["modules"]["mod_muc"]
    assert muc["hosts"] == [f"conference.{EXAMPLE_DOMAIN}"]
    assert muc["max_user_conferences"] >= 1000
    assert muc["default_room_options"]["persistent"] is True


@pytest.mark.xmpp
async def test_the_bot_works_on_an_ejabberd_with_the_snippet(tmp_path: Path) -> None:
    """The harness's ejabberd loads the snippet merged into its config; the bot answers a
    DM, and joins a members-only room once its owner gives it `member`, as the snippet's
    comments tell room owners to."""
    server = Ejabberd(tmp_path / "ejabberd")
    server.start()
    handle: BotHandle | None = None
    clients: list[TestClient] = []
    try:
        loaded = load_yaml(server.config_path)
        for section, entries in ejabberd_snippet_for(server.domain).items():
            for key, value in entries.items():
                assert loaded[section][key] == value, (section, key)
        for user in ("addinbot", "admin", "alice"):
            server.register(user, PASSWORD)
        bot_jid = f"addinbot@{server.domain}"
        handle = BotHandle(load_settings(write_config(server, tmp_path)))
        await handle.start()
        for user in ("admin", "alice"):
            client = TestClient(f"{user}@{server.domain}", PASSWORD)
            await client.start(server.host, server.port)
            clients.append(client)
        admin, alice = clients
        assert "register <name> <url>" in await admin.ask(bot_jid, "help")

        room = f"lobby@{server.muc}"
        await alice.join_room(room, "alice")
        muc = alice.plugin["xep_0045"]
        form = await muc.get_room_config(room)
        fields = form.get_fields()
        assert fields["muc#roomconfig_persistentroom"]["value"] is True  # the snippet's
        fields["muc#roomconfig_membersonly"]["value"] = True
        await muc.set_room_config(room, form)
        await muc.set_affiliation(room, "member", jid=bot_jid)
        assert room in await admin.ask(bot_jid, f"join {room}")
        await handle.in_room(room)
        alice.send_groupchat(room, "!addin")
        answer = await alice.next_message(
            predicate=lambda m: m["from"].bare == room and m["from"].resource == "AddinBot"
        )
        assert answer["body"] == "This room has no add-in."
    finally:
        for client in clients:
            await client.stop()
        if handle is not None:
            await handle.stop()
        server.stop()
    assert server.log_errors() == []


def test_the_example_domains_agree_with_the_example_configs() -> None:
    """Replacing example.org everywhere is all an operator has to do."""
    for path in (UNIT_CONFIG, COMPOSE_DIR / "addinbot.toml"):
        settings = load_settings(path)
        assert settings.xmpp is not None
        assert settings.xmpp.jid == f"addinbot@{EXAMPLE_DOMAIN}"
        assert settings.pools.names == [f"conference.{EXAMPLE_DOMAIN}"]


def test_the_quick_start_needs_nothing_from_the_tests() -> None:
    text = QUICKSTART.read_text(encoding="utf-8")
    assert not re.search(r"\btests[./]", text)
    assert "deploy/localprosody.py --workdir" in text
    # ... and the tests' private Prosody is that same launcher, not a copy of it.
    assert harness_prosody.Prosody is localprosody.Prosody


def test_no_deploy_file_holds_a_password() -> None:
    for path in DEPLOY.rglob("*"):
        if path.is_file() and path.name != "quickstart.sh" and path.suffix != ".pyc":
            text = path.read_text(encoding="utf-8")
            assert not re.search(r"^\s*password\s*=\s*\"", text, re.M), path


# --- the quick start, run for real -----------------------------------------------------------


class QuickStart:
    """deploy/quickstart.sh running (with its state in a folder of the test's), read line by
    line until the bot is up; stopped with SIGTERM as Ctrl-C would."""

    def __init__(self, state: Path, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ADDINBOT_")}
        env["ADDINBOT_QUICKSTART_STATE"] = str(state)
        self.state = state
        self.process = subprocess.Popen(
            ["bash", str(QUICKSTART), *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, env=env, cwd=ROOT, start_new_session=True,
        )
        self.lines: list[str] = []

    def until(self, wanted: str, within_s: float = 90) -> list[str]:
        """The lines printed up to the one holding `wanted` (ANSI bold taken out)."""
        assert self.process.stdout is not None
        deadline = time.monotonic() + within_s
        while not any(wanted in line for line in self.lines):
            assert time.monotonic() < deadline, "\n".join(self.lines)
            line = self.process.stdout.readline()
            assert line, "the quick start ended:\n" + "\n".join(self.lines)
            self.lines.append(re.sub(r"\x1b\[[0-9;]*m", "", line.rstrip("\n")))
        return self.lines

    def cli(self, *words: str) -> Any:
        done = subprocess.run(
            [str(ROOT / ".venv" / "bin" / "addinbot"), "--config",
             str(self.state / "addinbot.toml"), *words], capture_output=True, text=True,
            timeout=60, check=True,
        )
        return json.loads(done.stdout) if "--json" in words else done.stdout

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


@pytest.mark.xmpp
def test_the_quick_start_keeps_its_state_between_runs_and_reset_starts_clean(
    tmp_path: Path,
) -> None:
    if not (ROOT / ".venv" / "bin" / "addinbot").exists():
        pytest.fail("the quick start uses .venv/bin/addinbot: make .venv first", pytrace=False)
    state = tmp_path / "quickstart"
    lobby = "lobby@conference.localhost"

    first = QuickStart(state)
    try:
        said = first.until("addinbot is running")
        assert f"Starting with a new state in {state} (kept for the next run; --reset starts " \
               "clean)." in said
        assert any("This room's add-in is “Stock Ticker”" in line for line in said)  # the demo
        first.cli("addin", "register", "Extra", "https://extra.example.org/")
    finally:
        first.stop()

    again = QuickStart(state)
    try:
        said = again.until("addinbot is running")
        assert f"Keeping the state of the last run in {state}: its rooms, add-ins and " \
               "accounts (bash deploy/quickstart.sh --reset starts clean)." in said
        assert not any("help" in line and "admin@localhost" in line for line in said)  # no demo
        assert f"• {lobby}: “Stock Ticker” — https://stocks.example.org/panel" in said
        assert [a["name"] for a in again.cli("addin", "list", "--json")] == [
            "Extra", "Stock Ticker",
        ]
        # The bot is back in the room it served (the room, persistent, kept by Prosody).
        log = state / "addinbot.log"
        deadline = time.monotonic() + 20
        while "joined 1 of 1 rooms" not in log.read_text(encoding="utf-8"):
            assert time.monotonic() < deadline, log.read_text(encoding="utf-8")
            time.sleep(0.1)
    finally:
        again.stop()

    clean = QuickStart(state, "--reset")
    try:
        said = clean.until("addinbot is running")
        assert f"Starting clean (--reset): a new state in {state}." in said
        assert [a["name"] for a in clean.cli("addin", "list", "--json")] == ["Stock Ticker"]
    finally:
        clean.stop()
