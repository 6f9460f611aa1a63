"""What every command gets: the flags, the config they make (loaded once), and the read path
or the service, built only when a command asks."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from claudomator.config import Config, load_config

if TYPE_CHECKING:
    from claudomator.service import Claudomator
    from claudomator.views import Views


class Context:
    def __init__(self, flags: dict[str, object]) -> None:
        self.flags = flags
        self._config: Config | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(flags=self.flags)
        return self._config

    def views(self) -> Views:
        """The read path alone: no SQLAlchemy, no pydantic, no structlog."""
        from claudomator.views import Views

        return Views.open(self.config)

    def service(self, quiet: bool = False) -> Claudomator:
        """The service; `quiet` logs warnings only unless log.level was set explicitly (the
        command prints its own progress)."""
        from claudomator import log
        from claudomator.service import Claudomator

        level = self.config.log_level
        if quiet and "log.level" not in self.config.origins:
            level = "warning"
        log.configure(level, self.config.log_format)
        return Claudomator(self.config)


pass_ctx = click.make_pass_decorator(Context)


__all__ = ["Context", "pass_ctx"]
