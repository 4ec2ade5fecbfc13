"""Notification templates: Jinja2 with gettext catalogs and plural forms per locale, and a
fallback chain per message (``fr_CA`` -> ``fr`` -> the default locale).

A catalog directory holds ``templates/<name>.json`` (``category``, and ``title`` and
``body`` as Jinja2 using ``_()`` and ``ngettext()``) and ``locale/<locale>.po`` files, read
at start (no compiled ``.mo`` to keep in step). The chain is built with gettext's own
fallbacks, each catalog falling back to the next (Babel's ``Translations.load`` would stop at
the first catalog found). The default locale's catalog holds every key, and past it a
lookup fails: a missing template, key or parameter is a ``bad_request`` at send time, never
an empty or half-translated message.
"""

from __future__ import annotations

import gettext
import io
import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from jinja2 import Environment, StrictUndefined, TemplateError, UndefinedError

from rthub.errors import BadRequest

PACKAGED = Path(__file__).parent / "catalog"
_LOCALE = re.compile(r"^[A-Za-z]{2,3}([_-][A-Za-z0-9]{2,8})*$")


class _Missing(gettext.NullTranslations):
    """The end of every chain: a key no catalog has is an error."""

    def __init__(self, chain: list[str]) -> None:
        super().__init__()
        self.chain = chain

    def gettext(self, message: str) -> str:
        raise BadRequest(f"no translation of {message!r} in {' -> '.join(self.chain)}")

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return self.gettext(singular)


@dataclass(frozen=True)
class Template:
    category: str
    title: str
    body: str


class Templates:
    """Every template and catalog of one directory."""

    def __init__(self, root: Path = PACKAGED, default_locale: str = "en") -> None:
        self.root = root
        self.default_locale = default_locale
        self.templates: dict[str, Template] = {}
        for path in sorted((root / "templates").glob("*.json")):
            raw = json.loads(path.read_text())
            self.templates[path.stem] = Template(raw["category"], raw["title"], raw["body"])
        self.catalogs: dict[str, bytes] = {}  # locale -> compiled .mo
        for path in sorted((root / "locale").glob("*.po")):
            with path.open("rb") as po:
                catalog = read_po(po, locale=path.stem)
            compiled = io.BytesIO()
            write_mo(compiled, catalog)
            self.catalogs[path.stem] = compiled.getvalue()
        if default_locale not in self.catalogs:
            raise ValueError(f"{root}: no catalog for the default locale {default_locale!r}")
        self._chain = cache(self._make_chain)

    def chain(self, locale: str | None) -> list[str]:
        """The catalogs a message in ``locale`` is looked up in, most specific first."""
        wanted: list[str] = []
        if locale:
            if not _LOCALE.match(locale):
                raise BadRequest(f"'locale' must look like 'fr' or 'fr_CA', got {locale[:20]!r}")
            parts = locale.replace("-", "_").split("_")
            parts = [parts[0].lower(), *(p.upper() if len(p) == 2 else p.title() if len(p) == 4
                                         else p for p in parts[1:])]  # fr_CA, zh_Hant_TW
            wanted = ["_".join(parts[:n]) for n in range(len(parts), 0, -1)]
        found = [name for name in wanted if name in self.catalogs]
        return [*dict.fromkeys([*found, self.default_locale])]

    def _make_chain(self, chain: tuple[str, ...]) -> Environment:
        translations: gettext.NullTranslations | None = None
        for name in reversed(chain):
            step = gettext.GNUTranslations(io.BytesIO(self.catalogs[name]))
            step.add_fallback(translations or _Missing(list(chain)))
            translations = step
        env = Environment(extensions=["jinja2.ext.i18n"], undefined=StrictUndefined,
                          autoescape=False, keep_trailing_newline=False)
        env.install_gettext_translations(translations, newstyle=True)  # type: ignore[attr-defined]
        return env

    def render(self, name: str, params: dict[str, Any], locale: str | None
               ) -> tuple[str, str, str]:
        """(category, title, body) of template ``name`` in ``locale``'s chain."""
        template = self.templates.get(name)
        if template is None:
            raise BadRequest(f"no template {name!r}; there are: {', '.join(self.templates)}")
        if not isinstance(params, dict):
            raise BadRequest("'params' must be an object")
        env = self._chain(tuple(self.chain(locale)))
        try:
            return (template.category, env.from_string(template.title).render(params),
                    env.from_string(template.body).render(params))
        except UndefinedError as err:
            raise BadRequest(f"template {name!r} needs a parameter: {err.message}") from None
        except (TemplateError, KeyError, ValueError, TypeError) as err:
            raise BadRequest(f"template {name!r} cannot be rendered: {err}") from None


@cache
def load(catalog: str | None, default_locale: str) -> Templates:
    """The templates a hub sends with (``RTHUB_NOTIFY_CATALOG``, ``RTHUB_NOTIFY_LOCALE``),
    read once per process."""
    return Templates(Path(catalog) if catalog else PACKAGED, default_locale)
