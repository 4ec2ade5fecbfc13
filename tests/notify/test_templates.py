"""Templates in the packaged catalogs: the locale fallback chain (fr_CA -> fr -> en), plural
forms per language, and the exact error for a missing template, key or parameter."""

from __future__ import annotations

import json

import pytest

from notify.templates import Templates
from rthub.errors import BadRequest

TEMPLATES = Templates()
SONG = {"friend": "Léa", "playlist": "Été", "count": 1}


@pytest.mark.parametrize(("locale", "title", "body"), [
    ("fr_CA", "Nouvelle toune ajoutée", "Léa a ajouté une chanson à Été"),  # fr_CA, then fr
    ("fr-ca", "Nouvelle toune ajoutée", "Léa a ajouté une chanson à Été"),
    ("fr_BE", "Nouvelle chanson ajoutée", "Léa a ajouté une chanson à Été"),  # no fr_BE: fr
    ("de", "New song added", "Léa added a song to Été"),  # no German at all: en
    (None, "New song added", "Léa added a song to Été"),
])
def test_the_chain_falls_back_one_catalog_at_a_time(locale, title, body):
    assert TEMPLATES.render("playlist.song_added", SONG, locale) == ("playlist", title, body)


@pytest.mark.parametrize(("locale", "count", "body"), [
    ("en", 0, "Léa added 0 songs to Été"), ("en", 1, "Léa added a song to Été"),
    ("en", 2, "Léa added 2 songs to Été"),
    ("fr", 0, "Léa a ajouté une chanson à Été"),  # French: 0 and 1 are singular
    ("fr", 1, "Léa a ajouté une chanson à Été"), ("fr", 3, "Léa a ajouté 3 chansons à Été"),
])
def test_plurals_follow_each_languages_rule(locale, count, body):
    rendered = TEMPLATES.render("playlist.song_added", {**SONG, "count": count}, locale)
    assert rendered[2] == body


def test_a_key_missing_in_one_catalog_comes_from_the_next():
    _, title, body = TEMPLATES.render("party.starting", {"host": "Max", "party": "Friday"},
                                      "fr_CA")
    assert (title, body) == ("Max lance une écoute partagée", "Join Friday now")


def test_missing_templates_keys_and_parameters_are_errors_at_send_time(tmp_path):
    with pytest.raises(BadRequest, match=r"no template 'nope'; there are: digest, party.starting"):
        TEMPLATES.render("nope", {}, "fr")
    with pytest.raises(BadRequest, match=r"template 'playlist.song_added' needs a parameter: "
                                         "'playlist' is undefined"):
        TEMPLATES.render("playlist.song_added", {"friend": "Léa", "count": 1}, "fr")
    with pytest.raises(BadRequest, match="'locale' must look like 'fr' or 'fr_CA'"):
        TEMPLATES.render("playlist.song_added", SONG, "fr/../../etc")
    (tmp_path / "templates").mkdir()
    (tmp_path / "locale").mkdir()
    (tmp_path / "templates" / "hello.json").write_text(json.dumps(
        {"category": "c", "title": "{{ _('Hello') }}", "body": "{{ _('Untranslated') }}"}))
    (tmp_path / "locale" / "en.po").write_text(
        'msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n\n'
        'msgid "Hello"\nmsgstr "Hello"\n')
    own = Templates(tmp_path)
    with pytest.raises(BadRequest, match=r"no translation of 'Untranslated' in en"):
        own.render("hello", {}, "en")


def test_a_catalog_without_the_default_locale_is_refused_at_start(tmp_path):
    (tmp_path / "templates").mkdir()
    (tmp_path / "locale").mkdir()
    with pytest.raises(ValueError, match="no catalog for the default locale 'en'"):
        Templates(tmp_path)
