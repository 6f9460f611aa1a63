from __future__ import annotations

import re
import stat
import tomllib
from pathlib import Path

import pytest

from claudomator.config import KEYS, config_template, load_config
from claudomator.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def write(home: Path, text: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(text)


def test_defaults(tmp_path: Path) -> None:
    cfg = load_config(home=tmp_path, env={})
    assert cfg.max_concurrency == 4
    assert cfg.claude_binary == "claude"
    assert cfg.claude_model == "sonnet"
    assert cfg.claude_timeout_s == 1800
    assert (cfg.server_host, cfg.server_port) == ("127.0.0.1", 8484)
    assert all(origin == "default" for _, _, origin in cfg.effective())


def test_precedence_file_env_flag(tmp_path: Path) -> None:
    write(
        tmp_path,
        'max_concurrency = 2\n[claude]\nmodel = "opus"\ntimeout = "15m"\nbinary = "/opt/c"\n',
    )
    env = {"CLAUDOMATOR_MAX_CONCURRENCY": "6", "CLAUDOMATOR_CLAUDE_BIN": "/env/claude"}
    cfg = load_config(home=tmp_path, env=env, flags={"max_concurrency": 8, "claude.model": None})
    assert cfg.max_concurrency == 8
    assert cfg.claude_model == "opus"
    assert cfg.claude_timeout_s == 900
    assert cfg.claude_binary == "/env/claude"
    origins = {k: o for k, _, o in cfg.effective()}
    assert origins["max_concurrency"] == "flag"
    assert origins["claude.model"] == "config.toml"
    assert origins["claude.binary"] == "env CLAUDOMATOR_CLAUDE_BIN"
    assert origins["server.port"] == "default"


def test_home_from_env(tmp_path: Path) -> None:
    cfg = load_config(env={"CLAUDOMATOR_HOME": str(tmp_path / "h")})
    assert cfg.data_dir.root == tmp_path / "h"
    assert cfg.data_dir.database == tmp_path / "h" / "claudomator.db"


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        (
            "max_concurency = 3\n",
            {},
            "max_concurency: unknown key (did you mean 'max_concurrency'?)",
        ),
        ("[claude]\nmodle = 'x'\n", {}, "claude.modle: unknown key (did you mean 'claude.model'?)"),
        ("[cluade]\nmodel = 'x'\n", {}, "[cluade]: unknown section"),
        ("max_concurrency = 0\n", {}, "max_concurrency: 0 must be at least 1"),
        ("max_concurrency = 'four'\n", {}, "max_concurrency: 'four' is not a whole number"),
        ("[claude]\ntimeout = 'soon'\n", {}, "claude.timeout: 'soon' is not a duration"),
        ("[server]\nport = 70000\n", {}, "server.port: 70000 is not a TCP port"),
        ("[log]\nlevel = 'loud'\n", {}, "log.level: 'loud' is not one of"),
        ("max_concurrency = \n", {}, "config.toml"),
        (
            "",
            {"CLAUDOMATOR_SERVER_PORT": "http"},
            "CLAUDOMATOR_SERVER_PORT: server.port: 'http' is not a whole number",
        ),
    ],
)
def test_errors_name_where_and_what(
    tmp_path: Path, text: str, env: dict[str, str], message: str
) -> None:
    write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(home=tmp_path, env=env)
    assert message in info.value.message


def test_template_documents_every_key_commented_out(tmp_path: Path) -> None:
    text = config_template()
    assert tomllib.loads(text) == {section: {} for section in tomllib.loads(text)}  # nothing pinned
    uncommented = tomllib.loads(re.sub(r"^# (\w+ = )", r"\1", text, flags=re.M))
    for key in KEYS:
        section, _, leaf = key.name.rpartition(".")
        table = uncommented[section] if section else uncommented
        assert leaf in table, key.name
    write(tmp_path, re.sub(r"^# (\w+ = )", r"\1", text, flags=re.M))
    pinned = load_config(home=tmp_path, env={}).effective()
    defaults = load_config(home=tmp_path / "none", env={}).effective()
    assert [(k, v) for k, v, _ in pinned] == [(k, v) for k, v, _ in defaults]
    assert {o for _, _, o in pinned} == {"config.toml"}


def test_every_key_in_readme_and_deploy_example(tmp_path: Path) -> None:
    tmp = tmp_path
    readme = (ROOT / "README.md").read_text()
    example = (ROOT / "deploy" / "config.example.toml").read_text()
    for key in KEYS:
        assert f"`{key.name}`" in readme, f"README lacks {key.name}"
        assert key.env_name in readme, f"README lacks {key.env_name}"
        leaf = key.name.rpartition(".")[2]
        assert re.search(rf"^#? ?{leaf} = ", example, re.M), f"deploy example lacks {key.name}"
    # every value the example shows is valid: with all its keys uncommented, it loads
    (tmp / "config.toml").write_text(re.sub(r"^# ?(\w[\w.]* = )", r"\1", example, flags=re.M))
    origins = {name: origin for name, _, origin in load_config(home=tmp, env={}).effective()}
    assert {name for name, origin in origins.items() if origin == "config.toml"} == {
        key.name for key in KEYS
    }


def test_data_dir_permissions(tmp_path: Path) -> None:
    cfg = load_config(home=tmp_path / "d", env={})
    cfg.data_dir.ensure()
    for folder in [cfg.data_dir.root, cfg.data_dir.executions, *cfg.data_dir.spool.values()]:
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder


def test_database_url_switches_the_store_and_hides_its_password(tmp_path: Path) -> None:
    assert load_config(home=tmp_path, env={}).database == tmp_path / "claudomator.db"
    url = "postgresql+psycopg://claudo:hunter22@db.example:5432/jobs?password=hunter22"
    cfg = load_config(home=tmp_path, env={"CLAUDOMATOR_DATABASE_URL": url})
    assert cfg.database == url
    shown = dict((k, v) for k, v, _ in cfg.effective())["database_url"]
    assert shown == '"postgresql+psycopg://claudo:***@db.example:5432/jobs?password=***"'
    assert "hunter22" not in repr(cfg)
    with pytest.raises(ConfigError, match="is not a PostgreSQL URL") as caught:
        load_config(home=tmp_path, env={"CLAUDOMATOR_DATABASE_URL": "mysql://u:hunter22@h/db"})
    assert "hunter22" not in str(caught.value)
