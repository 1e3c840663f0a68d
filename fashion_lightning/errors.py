"""The error for a setting a user got wrong, so the CLI can show its message without a traceback."""


class ConfigError(ValueError):
    """A config value that cannot work; the message names the setting and what it must be."""
