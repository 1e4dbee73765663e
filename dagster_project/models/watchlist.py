"""The watchlist: which Hugging Face releases the watch sensor follows, and what to make of them.

`watchlist.yaml` at the repository root (`DMC_WATCHLIST_FILE` moves it)::

    watch:
      - repo: TinyLlama/TinyLlama-1.1B-Chat-v1.0      # one repo ...
        recipes: [w4a16-rtn, w8a16-rtn]
        task_set: quick
      - repos: [Qwen/Qwen3-0.6B, Qwen/Qwen3-1.7B]     # ... several ...
        recipes: [w4a16-gptq]
      - author: meta-llama                           # ... or every repo of an author whose
        pattern: "Llama-3.*-Instruct"                #     name (or full id) matches a glob
        recipes: [w4a16-gptq, fp8-dynamic]
        task_set: openllm-v1

Recipes are built-in names (`BUILTIN_RECIPES`) or recipes registered with `dmc recipes add`;
task sets are names from `dagster_project.evaluation.tasks.TASK_SETS`. A repo matched by several
entries gets the union of their recipes and the task set of the first entry that matches.
Nothing here talks to the Hub or imports dagster.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from dagster_project.models.keys import is_repo_id, key_for_repo
from dagster_project.settings import load_settings

AUTHOR = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
GLOB = re.compile(r"^[A-Za-z0-9._*?\[\]!/-]{1,200}$")


class WatchlistError(ValueError):
    """The watchlist file is missing, malformed, or names unknown recipes / task sets."""


class WatchEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    repo: str | None = Field(default=None, description="one Hugging Face repo id 'org/name'")
    repos: tuple[str, ...] = Field(default=(), description="several repo ids")
    author: str | None = Field(default=None, description="a Hub user or organization, listed with list_models")
    pattern: str = Field(default="*", description="glob over the repo name (or the full 'org/name' id)")
    recipes: tuple[str, ...] = Field(min_length=1, description="recipe partition keys to apply")
    task_set: str = "demo"

    @field_validator("repo")
    @classmethod
    def _repo(cls, v: str | None) -> str | None:
        if v is not None:
            _check_repo_id(v)
        return v

    @field_validator("repos")
    @classmethod
    def _repos(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for r in v:
            _check_repo_id(r)
        return v

    @field_validator("author")
    @classmethod
    def _author(cls, v: str | None) -> str | None:
        if v is not None and (not AUTHOR.match(v) or ".." in v):
            raise ValueError(f"author {v!r} is not a Hub user or organization name")
        return v

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, v: str) -> str:
        if not GLOB.match(v) or v.count("/") > 1:
            raise ValueError(f"pattern {v!r} is not a glob over a repo name such as 'Llama-3.*-Instruct'")
        return v

    @field_validator("recipes")
    @classmethod
    def _recipes(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        from dagster_project.compression.recipes import RecipeError, validate_recipe_name

        for name in v:
            try:
                validate_recipe_name(name)
            except RecipeError as exc:
                raise ValueError(str(exc)) from None
        if len(set(v)) != len(v):
            raise ValueError(f"recipes {list(v)} list a recipe twice")
        return v

    @field_validator("task_set")
    @classmethod
    def _task_set(cls, v: str) -> str:
        from dagster_project.evaluation.tasks import TASK_SETS

        if v not in TASK_SETS:
            raise ValueError(f"unknown task set {v!r}; known: {', '.join(sorted(TASK_SETS))}")
        return v

    @model_validator(mode="after")
    def _one_kind(self) -> WatchEntry:
        kinds = [k for k, present in (("repo", self.repo), ("repos", self.repos), ("author", self.author)) if present]
        if len(kinds) != 1:
            raise ValueError(
                "each entry needs exactly one of `repo`, `repos` or `author` (with `pattern`); "
                f"got {kinds or 'none'}"
            )
        if self.pattern != "*" and not self.author:
            raise ValueError("`pattern` only applies to `author` entries")
        if "/" in self.pattern:
            org = self.pattern.split("/", 1)[0]
            if org.lower() != (self.author or "").lower():
                raise ValueError(f"pattern {self.pattern!r} names another organization than author {self.author!r}")
        return self

    def explicit_repos(self) -> tuple[str, ...]:
        return (self.repo,) if self.repo else self.repos

    def matches(self, repo_id: str) -> bool:
        """True when this entry watches `repo_id` (case-insensitive, like the Hub's ids)."""
        repo_l = repo_id.lower()
        if self.author is None:
            return repo_l in {r.lower() for r in self.explicit_repos()}
        org, _, name = repo_id.partition("/")
        if org.lower() != self.author.lower():
            return False
        target = repo_l if "/" in self.pattern else name.lower()
        return fnmatch.fnmatchcase(target, self.pattern.lower())

    def describe(self) -> str:
        if self.author:
            return f"author {self.author} / {self.pattern}"
        return ", ".join(self.explicit_repos())


@dataclass(frozen=True)
class WatchTarget:
    """What to do with one watched repo: its partition key, recipes and task set."""

    repo_id: str
    model_key: str
    recipes: tuple[str, ...]
    task_set: str


class Watchlist(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    watch: tuple[WatchEntry, ...] = ()

    @property
    def entries(self) -> tuple[WatchEntry, ...]:
        return self.watch

    def explicit_repos(self) -> list[str]:
        seen: dict[str, str] = {}
        for e in self.watch:
            for r in e.explicit_repos():
                seen.setdefault(r.lower(), r)
        return list(seen.values())

    def authors(self) -> list[str]:
        seen: dict[str, str] = {}
        for e in self.watch:
            if e.author:
                seen.setdefault(e.author.lower(), e.author)
        return list(seen.values())

    def target_for(self, repo_id: str) -> WatchTarget | None:
        matching = [e for e in self.watch if e.matches(repo_id)]
        if not matching:
            return None
        recipes: list[str] = []
        for e in matching:
            recipes += [r for r in e.recipes if r not in recipes]
        return WatchTarget(repo_id=repo_id, model_key=key_for_repo(repo_id), recipes=tuple(recipes),
                           task_set=matching[0].task_set)

    def all_recipes(self) -> list[str]:
        out: list[str] = []
        for e in self.watch:
            out += [r for r in e.recipes if r not in out]
        return out

    def check_recipes(self, recipes_dir: Path | None) -> None:
        """Every recipe must be built in or registered (a `<name>.yaml` in the recipe store)."""
        from dagster_project.compression.recipes import BUILTIN_RECIPES

        registered = {p.stem for p in Path(recipes_dir).glob("*.yaml")} if recipes_dir and Path(recipes_dir).is_dir() else set()
        for i, e in enumerate(self.watch):
            unknown = [r for r in e.recipes if r not in BUILTIN_RECIPES and r not in registered]
            if unknown:
                raise WatchlistError(
                    f"watch[{i}] ({e.describe()}): unknown recipe(s) {unknown}; built-in: "
                    f"{', '.join(sorted(BUILTIN_RECIPES))}"
                    + (f"; registered: {', '.join(sorted(registered))}" if registered else "; none registered (dmc recipes add NAME FILE)")
                )


def _check_repo_id(v: str) -> None:
    if not is_repo_id(v):
        raise ValueError(f"{v!r} is not a Hugging Face repo id 'org/name'")


def watchlist_path() -> Path:
    return load_settings().paths.watchlist_file


def parse_watchlist(
    text: str, source: str = "watchlist", recipes_dir: Path | None = None, *, check_recipes: bool = True
) -> Watchlist:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise WatchlistError(f"{source} is not valid YAML: {exc}") from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise WatchlistError(f"{source}: expected a mapping with a `watch:` list, got {type(doc).__name__}")
    if doc.get("watch") is None:
        doc = {**doc, "watch": []}
    try:
        wl = Watchlist.model_validate(doc)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'file'}: {err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors()
        )
        raise WatchlistError(f"{source} is invalid: {problems}") from None
    if check_recipes:
        try:
            wl.check_recipes(recipes_dir)
        except WatchlistError as exc:
            raise WatchlistError(f"{source} is invalid: {exc}") from None
    return wl


def load_watchlist(path: Path | None = None, recipes_dir: Path | None = None, *, check_registered: bool = True) -> Watchlist:
    """The watchlist at `path` (default `$DMC_WATCHLIST_FILE` or ./watchlist.yaml); no file → empty."""
    path = Path(path) if path else watchlist_path()
    if not path.exists():
        return Watchlist()
    if check_registered and recipes_dir is None:
        raise ValueError("load_watchlist: pass recipes_dir (ArtifactStore.layout().recipes_dir()) or check_registered=False")
    return parse_watchlist(path.read_text(), str(path), recipes_dir, check_recipes=check_registered)


def watched_task_set(repo_id: str) -> str | None:
    """The task set the watchlist gives `repo_id` (None when no entry matches or there is no file)."""
    target = load_watchlist(check_registered=False).target_for(repo_id)
    return target.task_set if target else None
