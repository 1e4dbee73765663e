"""Watchlist validation: clear errors for invalid entries; matching of repos and author globs."""

from __future__ import annotations

from pathlib import Path

import pytest

from dagster_project.models.watchlist import WatchlistError, load_watchlist, parse_watchlist

ROOT = Path(__file__).resolve().parents[2]


def test_the_shipped_watchlist_is_valid():
    wl = load_watchlist(ROOT / "watchlist.yaml", recipes_dir=ROOT / "no-registered-recipes")
    assert wl.entries and wl.authors() == ["meta-llama"]
    assert wl.target_for("meta-llama/Llama-3.1-8B-Instruct").recipes == ("w4a16-gptq", "fp8-dynamic")
    assert wl.target_for("meta-llama/Llama-3.1-8B") is None


def test_matching_union_and_task_set():
    wl = parse_watchlist("""
watch:
  - author: Acme
    pattern: "Llama-3.*-Instruct"
    recipes: [w4a16-gptq]
    task_set: quick
  - repos: [acme/Llama-3.1-8B-Instruct, other/x]
    recipes: [w4a16-gptq, w8a16-rtn]
  - author: acme
    pattern: "acme/Mistral-*"
    recipes: [fp8-dynamic]
""", recipes_dir=None)
    t = wl.target_for("acme/Llama-3.1-8B-Instruct")
    assert t.model_key == "acme--Llama-3.1-8B-Instruct"
    assert t.recipes == ("w4a16-gptq", "w8a16-rtn") and t.task_set == "quick"
    assert wl.target_for("acme/llama-3.2-1b-instruct") is not None  # Hub ids are case-insensitive
    assert wl.target_for("acme/Mistral-7B").recipes == ("fp8-dynamic",)
    assert wl.target_for("acme/Llama-3.1-8B") is None
    assert wl.target_for("other/x").task_set == "demo"


def test_registered_user_recipes_are_accepted(tmp_path):
    (tmp_path / "my-recipe.yaml").write_text("default_stage: {}\n")
    wl = parse_watchlist("watch:\n  - repo: a/b\n    recipes: [my-recipe]\n", recipes_dir=tmp_path)
    assert wl.target_for("a/b").recipes == ("my-recipe",)


@pytest.mark.parametrize("text,message", [
    ("watch:\n  - repo: not-a-repo\n    recipes: [w4a16-rtn]\n", "not a Hugging Face repo id"),
    ("watch:\n  - repo: a/b\n    recipes: [nope]\n", "unknown recipe(s) ['nope']"),
    ("watch:\n  - repo: a/b\n    recipes: []\n", "recipes"),
    ("watch:\n  - repo: a/b\n", "recipes: Field required"),
    ("watch:\n  - recipes: [w4a16-rtn]\n", "exactly one of `repo`, `repos` or `author`"),
    ("watch:\n  - repo: a/b\n    author: a\n    recipes: [w4a16-rtn]\n", "exactly one of"),
    ("watch:\n  - repo: a/b\n    pattern: 'x*'\n    recipes: [w4a16-rtn]\n", "only applies to `author`"),
    ("watch:\n  - author: a\n    pattern: 'b/x*'\n    recipes: [w4a16-rtn]\n", "another organization"),
    ("watch:\n  - repo: a/b\n    recipes: [w4a16-rtn]\n    task_set: nope\n", "unknown task set 'nope'"),
    ("watch:\n  - repo: a/b\n    recipes: [w4a16-rtn]\n    colour: blue\n", "colour: Extra inputs"),
    ("watch:\n  - repo: a/b\n    recipes: [w4a16-rtn, w4a16-rtn]\n", "twice"),
    ("- a/b\n", "expected a mapping"),
    ("watch: [\n", "not valid YAML"),
])
def test_invalid_entries_are_clear_errors(text, message, tmp_path):
    path = tmp_path / "watchlist.yaml"
    path.write_text(text)
    with pytest.raises(WatchlistError) as exc:
        load_watchlist(path, recipes_dir=tmp_path / "none")
    assert message in str(exc.value) and str(path) in str(exc.value)


def test_missing_file_is_an_empty_watchlist(tmp_path):
    assert load_watchlist(tmp_path / "absent.yaml").entries == ()
