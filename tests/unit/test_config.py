"""The configuration file (STEPWISE_CONFIG): decoded with errors naming the field, turned into settings that the
environment can still override, written back in the same format, and applied to the registry and the engine."""

from __future__ import annotations

import msgspec
import pytest

from stepwise.app.config import Config, ConfigError, PlannerConfig, dump_bank, dump_config, load_bank, load_config
from stepwise.app.registry import Fleet, RegistryError, registry_for
from stepwise.app.runtime import engine_for
from stepwise.app.settings import Settings
from stepwise.reasoning.examples import Example
from stepwise.reasoning.types import Expert
from stepwise.tools.calculator import Calculator
from tests.doubles import InstantBackend

FULL = """
[planner]
kind = "program"
samples = 3
more = 2
worked = false
worked_samples = 2
examples = 1
temperature = 0.4
bank = "learned.toml"

[verifiers]
model = ["self_consistency"]

[composer]
mode = "always"

[experts]
planner = "fast"
executor = "general"
composer = "fast"
max_tokens = 64
"""

TWO_EXPERTS = """
[[experts]]
name = "general"
backend = "local"
[[experts]]
name = "fast"
backend = "local"
model = "smollm2"
"""


def env(tmp_path, **more) -> dict[str, str]:
    return {"HOME": str(tmp_path), **more}


def test_every_switch_of_the_file_becomes_a_setting(tmp_path):
    """Each documented key sets its setting; a relative bank path is read next to the file."""
    (tmp_path / "stepwise.toml").write_text(FULL)
    s = Settings.from_env(env(tmp_path, STEPWISE_CONFIG=str(tmp_path / "stepwise.toml")))
    assert (s.planner, s.plan_samples, s.plan_more, s.plan_examples, s.plan_temperature) == ("program", 3, 2, 1, 0.4)
    assert (s.plan_worked, s.plan_worked_samples) == (False, 2)
    assert s.example_bank == tmp_path / "learned.toml"
    assert (s.verifiers, s.compose) == (("self_consistency",), "always")
    roles = (s.planner_expert, s.executor_expert, s.composer_expert, s.expert_max_tokens)
    assert roles == ("fast", "general", "fast", 64)
    assert s.config_file == tmp_path / "stepwise.toml"


def test_keys_left_out_keep_the_defaults(tmp_path):
    """An empty file changes nothing."""
    (tmp_path / "empty.toml").write_text("")
    s = Settings.from_env(env(tmp_path, STEPWISE_CONFIG=str(tmp_path / "empty.toml")))
    assert s == msgspec.structs.replace(Settings.from_env(env(tmp_path)), config_file=tmp_path / "empty.toml")


def test_an_environment_variable_wins_over_the_file(tmp_path):
    """STEPWISE_PLAN_SAMPLES and STEPWISE_VERIFIERS set on top of the file change that one switch only."""
    (tmp_path / "stepwise.toml").write_text(FULL)
    s = Settings.from_env(env(tmp_path, STEPWISE_CONFIG=str(tmp_path / "stepwise.toml"), STEPWISE_PLAN_SAMPLES="7",
                              STEPWISE_VERIFIERS="llm_judge"))
    assert (s.plan_samples, s.verifiers, s.plan_more) == (7, ("llm_judge",), 2)
    assert Settings.from_env(env(tmp_path, STEPWISE_CONFIG=str(tmp_path / "stepwise.toml"),
                                 STEPWISE_PLAN_WORKED="1")).plan_worked is True
    assert Settings.from_env(env(tmp_path, STEPWISE_CONFIG=str(tmp_path / "stepwise.toml"),
                                 STEPWISE_PLAN_WORKED_SAMPLES="0")).plan_worked_samples == 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[planner]\nsamples = 0\n", r"Expected `int` >= 1 - at `\$.planner.samples`"),
        ("[planner]\nsampels = 3\n", r"unknown field `sampels` - at `\$.planner`"),
        ("[verifiers]\nmodel = [\"oracle\"]\n", r"Invalid enum value 'oracle' - at `\$.verifiers.model\[0\]`"),
        ("[composer]\nmode = \"never\"\n", r"at `\$.composer.mode`"),
        ("[experts]\nmax_tokens = \"lots\"\n", r"Expected `int \| null`, got `str` - at `\$.experts.max_tokens`"),
        ("[planner\n", r"stepwise.toml"),
    ],
)
def test_a_bad_file_is_refused_naming_the_field(tmp_path, text, message):
    """Out-of-range values, misspelt keys, unknown verifiers and TOML errors name the file and the field."""
    path = tmp_path / "stepwise.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)
    with pytest.raises(SystemExit, match="STEPWISE_CONFIG: .*stepwise.toml"):
        Settings.from_env(env(tmp_path, STEPWISE_CONFIG=str(path)))


def test_a_missing_file_is_refused(tmp_path):
    """STEPWISE_CONFIG naming no file fails the start instead of running on defaults."""
    with pytest.raises(SystemExit, match="nowhere.toml"):
        Settings.from_env(env(tmp_path, STEPWISE_CONFIG=str(tmp_path / "nowhere.toml")))


def test_a_written_config_reads_back_the_same(tmp_path):
    """dump_config writes the format load_config reads: what `stepwise optimize` writes, the server reads."""
    config = load_config_text(tmp_path, FULL)
    path = tmp_path / "again.toml"
    path.write_text(dump_config(config, header="chosen by a test\nsecond line"))
    assert load_config(path) == config
    assert path.read_text().startswith("# chosen by a test\n# second line\n")
    sparse = Config(planner=PlannerConfig(samples=1))
    path.write_text(dump_config(sparse))
    assert load_config(path) == sparse and "[verifiers]" not in path.read_text()


def load_config_text(tmp_path, text: str) -> Config:
    path = tmp_path / "stepwise.toml"
    path.write_text(text)
    return load_config(path)


def test_a_written_bank_reads_back_the_same(tmp_path):
    """Examples with quotes, backslashes, newlines and non-ASCII text survive the bank file."""
    examples = [Example('How far is "Ostrow" from Kale\\n?', 'distance = sql("SELECT 1")\nanswer = distance * 2',
                        ("sql",)),
                Example("Wie viel kostet ein Brötchen?", "answer = 3 * 0.45", ())]
    path = tmp_path / "bank.toml"
    path.write_text(dump_bank(examples, header="learned"))
    assert load_bank(path).examples == examples


def test_an_empty_or_bad_bank_is_refused(tmp_path):
    """A bank with no examples, or an example missing its program, is refused naming the file."""
    path = tmp_path / "bank.toml"
    path.write_text("")
    with pytest.raises(ConfigError, match="no \\[\\[example\\]\\]"):
        load_bank(path)
    path.write_text('[[example]]\nquestion = "q"\n')
    with pytest.raises(ConfigError, match="missing required field `program`"):
        load_bank(path)


def test_roles_and_decoding_limit_apply_to_the_registry(tmp_path):
    """The file names which expert plans, executes and composes, and every expert's max_tokens."""
    (tmp_path / "experts.toml").write_text(TWO_EXPERTS)
    (tmp_path / "stepwise.toml").write_text(FULL)
    s = Settings.from_env(env(tmp_path, STEPWISE_CONFIG=str(tmp_path / "stepwise.toml"),
                              STEPWISE_EXPERTS=str(tmp_path / "experts.toml")))
    registry = registry_for(s)
    assert (registry.planner, registry.default_name, registry.composer) == ("fast", "general", "fast")
    assert [e.max_tokens for e in registry.experts] == [64, 64]


def test_a_role_naming_no_expert_is_refused(tmp_path):
    """A config naming an expert the registry does not have fails, naming the role and the file."""
    (tmp_path / "stepwise.toml").write_text('[experts]\ncomposer = "oracle"\n')
    s = Settings.from_env(env(tmp_path, STEPWISE_CONFIG=str(tmp_path / "stepwise.toml")))
    with pytest.raises(RegistryError, match="stepwise.toml.*`composer` = 'oracle' is not an expert"):
        registry_for(s)


def test_the_engine_is_built_as_the_file_says(tmp_path):
    """engine_for gives the planner its samples, examples, temperature and bank, the composer its mode and expert,
    and the experts their decoding limit, on the experts already running."""
    (tmp_path / "experts.toml").write_text(TWO_EXPERTS)
    (tmp_path / "stepwise.toml").write_text(FULL)
    (tmp_path / "learned.toml").write_text(dump_bank([Example("What is two times three?", "answer = 2 * 3")]))
    s = Settings.from_env(env(tmp_path, STEPWISE_CONFIG=str(tmp_path / "stepwise.toml"),
                              STEPWISE_EXPERTS=str(tmp_path / "experts.toml")))
    fleet = Fleet(experts={n: Expert(name=n, backend=InstantBackend()) for n in ("general", "fast")}, llamas=[])
    engine = engine_for(s, fleet, {"calculator": Calculator()})
    planner = engine.planner
    shown = (planner.samples, planner.more, planner.examples, planner.temperature, planner.target)
    assert shown == (3, 2, 1, 0.4, "fast")
    assert [e.question for e in planner.bank.examples] == ["What is two times three?"]
    assert (engine.composer.always, engine.composer.target, engine.router.default) == (True, "fast", "general")
    assert {e.max_tokens for e in engine.router.experts.values()} == {64}
    assert {e.max_tokens for e in fleet.experts.values()} == {128}  # the running fleet itself is not changed
