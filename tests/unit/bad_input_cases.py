"""The bad-input suite's data: one case per malformed or inconsistent input, and what its error must say.

Each case starts from the unit factory's experiment (a committed git repository with a current lockfile),
changes one thing, runs one repropack command, and expects exit 2 with one paragraph on stderr that names
the file (``names``), the line when there is one (``line``), and what to do (``says``). The runner lives in
test_bad_input.py; this module is only data.

``SPEC`` is the factory's experiment written out by hand, so a case can name the exact line it breaks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from unit_factories import fake_hash

from repropack.freeze.lockfile import HEADER

SPEC = """\
version: 1
name: spiral-mlp
python: "3.11"
base: debian-bookworm
requirements: requirements.in
config: config.json
seed: 7
gpu: auto
datasets:
  points:
    path: data/points.csv
commands:
  train: python train.py --config {config} --data {datasets.points} --output {output} --seed {seed}
metrics:
  file: metrics.json
  expected:
    accuracy:
      value: 0.9
      abs_tol: 0.05
"""


def edit(changes: Mapping[int, str | None]) -> str:
    """SPEC with line N (1-based) replaced by ``changes[N]`` (which may hold several lines), or deleted (None)."""
    lines = SPEC.splitlines()
    out = [changes.get(n, line) for n, line in enumerate(lines, start=1)]
    return "".join(f"{line}\n" for line in out if line is not None)


def command(text: str) -> str:
    """SPEC with another train command (line 13)."""
    return edit({13: f"  train: {text}"})


def lockfile(body: str, *, inputs: str = "0" * 64) -> str:
    """A lockfile with repropack's header and ``body`` (the digest only matters for the stale case)."""
    return HEADER + f"# repropack-inputs: sha256:{inputs}\n" + body


HASH = fake_hash("numpy")


@dataclass(frozen=True)
class Case:
    id: str
    says: tuple[str, ...]  # fragments the paragraph must hold: what is wrong and how to fix it
    names: str = "experiment.yaml"  # the file (or argument) the paragraph must name
    line: int | None = None  # the line it must name, when there is one
    spec: str | bytes | None = None  # experiment.yaml's content; None keeps the factory's valid spec
    files: Mapping[str, str | bytes] = field(default_factory=dict)  # written into the experiment folder...
    commit: bool = True  # ...and committed, so only the intended problem remains
    make: Mapping[str, bool] = field(default_factory=dict)  # make_experiment options: git_repo, commit
    setup: str | None = None  # a named extra step (see test_bad_input.SETUPS)
    argv: tuple[str, ...] = ()  # argument cases: the command line, with {spec} {folder} {out} {image}
    fake_engine: bool = False  # answer Engine.connect with a fake that serves one repropack image
    lock_too: bool = True  # spec cases: also run 'repropack lock' (not for specs that lock would accept)


# -- experiment.yaml: problems found when the spec is read (freeze, build and lock all stop there) ---------

SPEC_CASES = [
    # Files that are not a spec at all.
    Case("empty-file", ("the file is empty", "README.md"), spec=""),
    Case("only-comments", ("the file is empty",), spec="# the spec comes later\n"),
    Case("not-utf8", ("not UTF-8 text", "Save it as UTF-8"), line=2, spec=b"version: 1\nname: caf\xe9\n"),
    Case("control-characters", ("not valid YAML at byte 0", "plain text"), spec="\x00\x01\x02\x03"),
    Case(
        "not-yaml-unclosed-list",
        ("is not valid YAML at line", "indentation and quoting"),
        spec=edit({4: "base: [debian-bookworm"}),
    ),
    Case("not-yaml-tab-indent", ("is not valid YAML", "Indent with spaces"), line=10, spec=edit({10: "\tpoints:"})),
    Case("two-documents", ("second document", "Keep one document"), line=20, spec=SPEC + "---\nname: other\n"),
    Case(
        "list-not-mapping",
        ("the top level must be a mapping of keys, not a list",),
        line=1,
        spec="- version: 1\n- name: spiral-mlp\n",
    ),
    Case("scalar-not-mapping", ("must be a mapping of keys", "the string 'just some words'"), spec="just some words\n"),
    Case("long-text-is-shortened", ("must be a mapping of keys", "..."), spec="word " * 500 + "\n"),
    Case(
        "yaml-python-tag",
        ("cannot read the value", "Remove the tag"),
        line=7,
        spec=edit({7: "seed: !!python/name:os.system x"}),
    ),
    Case(
        "self-referring-alias",
        ("an alias refers to a value that contains it", "Write the value out"),
        line=9,
        spec=edit({9: "datasets: &d", 10: "  points: *d", 11: None}),
    ),
    # Duplicate, unknown and missing keys.
    Case("duplicate-top-key", ("duplicate key 'seed' (first at line 7)", "Keep one"), line=20, spec=SPEC + "seed: 8\n"),
    Case(
        "duplicate-nested-key",
        ("duplicate key 'path' (first at line 11)",),
        line=12,
        spec=edit({11: "    path: data/points.csv\n    path: data/other.csv"}),
    ),
    Case("typo-top-key", ("unknown key", "did you mean 'seed'?"), line=7, spec=edit({7: "sed: 7"})),
    Case("unknown-top-key", ("unknown key", "known keys: version, name"), line=20, spec=SPEC + "colour: blue\n"),
    Case(
        "typo-dataset-key",
        ("datasets.points.embedd", "did you mean 'embed'?"),
        line=12,
        spec=edit({11: "    path: data/points.csv\n    embedd: true"}),
    ),
    Case("typo-tolerance-key", ("abstol", "did you mean 'abs_tol'?"), line=19, spec=edit({19: "      abstol: 0.05"})),
    Case("missing-required-key", ("missing required key 'name'", "for example name: spiral-mlp"), spec=edit({2: None})),
    # Wrong types and out-of-range values.
    Case("version-2", ("reads version 1, not 2", "write version: 1"), line=1, spec=edit({1: "version: 2"})),
    Case("version-string", ("not the string '1'",), line=1, spec=edit({1: 'version: "1"'})),
    Case("version-boolean", ("not a boolean (true)",), line=1, spec=edit({1: "version: true"})),
    Case(
        "name-not-an-image-name",
        ("'Spiral MLP' is not usable as an image name", "lower-case"),
        line=2,
        spec=edit({2: "name: Spiral MLP"}),
    ),
    Case("name-leading-dash", ("is not usable as an image name",), line=2, spec=edit({2: "name: -mlp"})),
    Case(
        "name-too-long",
        ("is 101 characters long; an image name has at most 100",),
        line=2,
        spec=edit({2: "name: " + "a" * 101}),
    ),
    Case("name-a-number", ("must be a non-empty string, not int 42",), line=2, spec=edit({2: "name: 42"})),
    Case(
        "python-unquoted-3.10",
        ('write the version as a string, "3.10"', "number 3.1"),
        line=3,
        spec=edit({3: "python: 3.10"}),
    ),
    Case("python-2.7", ("'2.7' is not a Python version", "3.8 or later"), line=3, spec=edit({3: 'python: "2.7"'})),
    Case(
        "python-with-patch",
        ("'3.11.4' is not a Python version like \"3.11\"",),
        line=3,
        spec=edit({3: 'python: "3.11.4"'}),
    ),
    Case(
        "python-disagrees-with-base",
        ("the base debian-bookworm has Python 3.11", 'write python: "3.11"'),
        line=3,
        spec=edit({3: 'python: "3.12"'}),
    ),
    Case("seed-negative", ("seed: must be between 0 and 4294967295, not -1",), line=7, spec=edit({7: "seed: -1"})),
    Case("seed-too-big", ("seed: must be between 0 and 4294967295",), line=7, spec=edit({7: "seed: 4294967296"})),
    Case(
        "seed-a-word", ("seed: must be a whole number, not the string 'seven'",), line=7, spec=edit({7: "seed: seven"})
    ),
    Case("seed-a-fraction", ("seed: must be a whole number, not float 1.5",), line=7, spec=edit({7: "seed: 1.5"})),
    Case(
        "gpu-unknown-mode",
        ("gpu: must be one of auto, none, required, not 'sometimes'",),
        line=8,
        spec=edit({8: "gpu: sometimes"}),
    ),
    Case(
        "gpu-yes",
        ("gpu: must be one of auto, none, required, not a boolean (true)",),
        line=8,
        spec=edit({8: "gpu: yes"}),
    ),
    Case("gpu-a-count", ("gpu: must be one of auto, none, required", "int 2"), line=8, spec=edit({8: "gpu: 2"})),
    Case(
        "abs-tol-negative", ("abs_tol: must be at least 0", "-0.05"), line=19, spec=edit({19: "      abs_tol: -0.05"})
    ),
    Case("rel-tol-negative", ("rel_tol: must be at least 0",), line=19, spec=edit({19: "      rel_tol: -0.1"})),
    Case("tolerance-missing", ("give a tolerance: abs_tol, rel_tol or both",), line=17, spec=edit({19: None})),
    Case("tolerance-infinite", ("abs_tol: must be a finite number",), line=19, spec=edit({19: "      abs_tol: .inf"})),
    Case(
        "tolerance-a-string",
        ("abs_tol: must be a number, not the string '5%'",),
        line=19,
        spec=edit({19: "      abs_tol: 5%"}),
    ),
    Case(
        "expected-not-a-number",
        ("value: must be a number, not the string 'high'",),
        line=18,
        spec=edit({18: "      value: high"}),
    ),
    Case("expected-nan", ("value: must be a number",), line=18, spec=edit({18: "      value: .nan"})),
    Case("expected-a-list", ("value: must be a number, not a list",), line=18, spec=edit({18: "      value: [0.9]"})),
    Case("expected-value-missing", ("missing required key 'value'",), line=17, spec=edit({18: None})),
    Case(
        "expected-a-bare-number",
        ("must be a mapping of keys to values, not float 0.9", "for example {value: 0.9, abs_tol: 0.01}"),
        line=17,
        spec=edit({17: "    accuracy: 0.9", 18: None, 19: None}),
    ),
    Case("commands-empty", ("declare at least one command",), line=12, spec=edit({12: "commands: {}", 13: None})),
    Case(
        "commands-a-list",
        ("commands: must be a mapping of keys to values, not a list", "for example train: python train.py"),
        line=12,
        spec=edit({12: "commands: [train]", 13: None}),
    ),
    Case(
        "command-name-capitalized",
        ("command names use lower-case letters",),
        line=13,
        spec=edit({13: "  Train: python train.py"}),
    ),
    Case("dataset-name-capitalized", ("dataset names use lower-case letters",), line=10, spec=edit({10: "  Points:"})),
    Case(
        "dataset-embed-not-boolean",
        ("embed: must be true or false, not the string 'maybe'",),
        line=12,
        spec=edit({11: "    path: data/points.csv\n    embed: maybe"}),
    ),
    Case(
        "stdout-pattern-not-a-regex",
        ("is not a valid regular expression",),
        line=16,
        spec=edit({15: "  stdout:\n    accuracy: 'accuracy: ([0-9.]+'"}),
    ),
    Case(
        "stdout-pattern-without-group",
        ("needs one capturing group",),
        line=16,
        spec=edit({15: "  stdout:\n    accuracy: 'accuracy: [0-9.]+'"}),
    ),
    # A metrics file outside the output folder.
    Case(
        "metrics-file-dotdot",
        ("'../metrics.json' must be a path inside the output folder", "like metrics.json"),
        line=15,
        spec=edit({15: "  file: ../metrics.json"}),
    ),
    Case(
        "metrics-file-absolute",
        ("must be a path inside the output folder",),
        line=15,
        spec=edit({15: "  file: /tmp/metrics.json"}),
    ),
    Case(
        "metrics-file-sneaky-dotdot",
        ("must be a path inside the output folder",),
        line=15,
        spec=edit({15: "  file: results/../../metrics.json"}),
    ),
    Case(
        "metrics-file-the-folder-itself",
        ("must be a path inside the output folder",),
        line=15,
        spec=edit({15: "  file: ."}),
    ),
    # Placeholders.
    Case(
        "placeholder-unknown-dataset",
        ("names an unknown dataset", "did you mean {datasets.points}?"),
        line=13,
        spec=command("python train.py --data {datasets.pionts}"),
    ),
    Case(
        "placeholder-no-datasets-declared",
        ("names an unknown dataset", "declared: none"),
        line=10,
        spec=edit({9: None, 10: None, 11: None}),
    ),
    Case(
        "placeholder-typo",
        ("unknown placeholder {sed}", "did you mean {seed}?"),
        line=13,
        spec=command("python train.py --seed {sed}"),
    ),
    Case(
        "placeholder-config-without-config",
        ("uses {config} but the spec has no 'config' file",),
        line=12,
        spec=edit({6: None}),
    ),
    Case(
        "placeholder-unclosed",
        ("bad placeholder syntax", "literal braces"),
        line=13,
        spec=command("python train.py --seed {seed"),
    ),
    # Paths the spec names.
    Case(
        "requirements-missing",
        ("'requirements.txt' does not exist", "relative to the spec's folder"),
        line=5,
        spec=edit({5: "requirements: requirements.txt"}),
    ),
    Case(
        "requirements-a-folder", ("'data' is a directory; name a file",), line=5, spec=edit({5: "requirements: data"})
    ),
    Case("config-missing", ("'conf.json' does not exist",), line=6, spec=edit({6: "config: conf.json"})),
    Case(
        "dataset-path-missing", ("'data/nope.csv' does not exist",), line=11, spec=edit({11: "    path: data/nope.csv"})
    ),
    Case(
        "lockfile-named-but-missing",
        ("'other.lock' does not exist", "repropack lock experiment.yaml", "remove the key to use requirements.lock"),
        line=20,
        spec=SPEC + "lockfile: other.lock\n",
        lock_too=False,
    ),
    Case("lockfile-a-folder", ("'data' is a directory; name a file",), line=20, spec=SPEC + "lockfile: data\n"),
    # Base images.
    Case(
        "base-typo",
        ("unknown base image 'debian-bookwrom'", "known: debian-bookworm", "repropack base list"),
        line=4,
        spec=edit({4: "base: debian-bookwrom"}),
    ),
    Case(
        "base-unknown-lists-all",
        ("unknown base image 'ubuntu'", "cuda12.1-ubuntu22.04", "debian-bookworm"),
        line=4,
        spec=edit({4: "base: ubuntu"}),
    ),
    Case(
        "base-short-digest",
        ("neither a catalog name nor an image reference pinned by digest", "64 hex digits"),
        line=4,
        spec=edit({4: "base: lab/base@sha256:abc"}),
    ),
    Case("base-upper-case-digest", ("pinned by digest",), line=4, spec=edit({4: "base: lab/base@sha256:" + "A" * 64})),
    Case(
        "base-tag-not-digest",
        ("'python:3.11-slim' is neither a catalog name",),
        line=4,
        spec=edit({4: "base: python:3.11-slim"}),
    ),
]

# -- problems found while freezing: code, lockfile, config, data ----------------------------------------

FREEZE_CASES = [
    Case("not-a-git-repository", ("not inside a git repository", "git init"), names="exp", make={"git_repo": False}),
    Case("repository-without-commits", ("has no commits yet", "git commit"), names="exp", make={"commit": False}),
    Case(
        "folder-not-committed",
        ("Nothing in the experiment folder", "git add exp"),
        names="exp",
        make={"commit": False},
        setup="commit-only-the-readme",
    ),
    Case(
        "uncommitted-changes",
        ("uncommitted changes (exp/train.py)", "--allow-dirty"),
        names="train.py",
        files={"train.py": "print('edited')\n"},
        commit=False,
    ),
    Case(
        "lockfile-not-utf8",
        ("is not UTF-8 text", "repropack lock experiment.yaml"),
        names="requirements.lock",
        files={"requirements.lock": b"\xff\xfe\x00garbage"},
    ),
    Case(
        "lockfile-empty",
        ("was not made by 'repropack lock'", "repropack lock experiment.yaml"),
        names="requirements.lock",
        files={"requirements.lock": ""},
    ),
    Case(
        "lockfile-from-pip-freeze",
        ("was not made by 'repropack lock'",),
        names="requirements.lock",
        files={"requirements.lock": "numpy==1.26.4\n"},
    ),
    Case(
        "lockfile-unpinned",
        ("is not a requirement pinned with == and --hash=sha256", "repropack lock"),
        names="requirements.lock",
        line=3,
        files={"requirements.lock": lockfile(f"numpy>=1.26 --hash=sha256:{HASH}\n")},
    ),
    Case(
        "lockfile-unhashed",
        ("'numpy==1.26.4' is not a requirement pinned",),
        names="requirements.lock",
        line=3,
        files={"requirements.lock": lockfile("numpy==1.26.4\n")},
    ),
    Case(
        "lockfile-index-url",
        ("option '--index-url' is not allowed",),
        names="requirements.lock",
        line=3,
        files={
            "requirements.lock": lockfile(
                f"--index-url https://example.invalid/simple\nnumpy==1.26.4 --hash=sha256:{HASH}\n"
            )
        },
    ),
    Case(
        "lockfile-pins-twice",
        ("pins numpy twice", "repropack lock"),
        names="requirements.lock",
        files={
            "requirements.lock": lockfile(f"numpy==1.26.4 --hash=sha256:{HASH}\nnumpy==2.0.0 --hash=sha256:{HASH}\n")
        },
    ),
    Case(
        "lockfile-stale",
        ("is stale", "Run 'repropack lock experiment.yaml'"),
        names="requirements.lock",
        files={"requirements.in": "numpy==2.0.0\n"},
    ),
    Case(
        "requirements-include-missing",
        ("'-r base.in' names base.in, which does not exist", "Fix the path"),
        names="requirements.in",
        line=1,
        files={"requirements.in": "-r base.in\nnumpy==1.26.4\n"},
    ),
    Case(
        "config-not-json",
        ("is not valid JSON: line 1 column 12", "trailing commas"),
        names="config.json",
        files={"config.json": '{"lr": 0.1,}\n'},
    ),
    Case(
        "config-not-utf8",
        ("is not UTF-8 text", "Save it as UTF-8"),
        names="config.json",
        line=1,
        files={"config.json": b'{"name": "caf\xe9"}\n'},
    ),
    Case(
        "config-yaml-not-yaml",
        ("config.yaml is not valid YAML at line 3", "flow sequence that starts at line 2"),
        names="config.yaml",
        spec=edit({6: "config: config.yaml"}),
        files={"config.yaml": "lr: 0.1\nmodel: [16\n"},
    ),
    Case(
        "dataset-empty-folder",
        ("holds no files", "Point it at the data"),
        names="Dataset 'points'",
        spec=edit({11: "    path: data/empty"}),
        setup="empty-dataset-folder",
    ),
]

# -- command-line arguments ----------------------------------------------------------------------------

ARGUMENT_CASES = [
    # The spec path itself.
    Case(
        "spec-path-missing",
        ("does not exist", "Check the path"),
        names="nope.yaml",
        argv=("freeze", "{folder}/nope.yaml", "--output", "{out}"),
    ),
    Case(
        "spec-path-a-folder",
        ("is a directory, not a file", "Pass the file itself"),
        names="exp",
        argv=("freeze", "{folder}", "--output", "{out}"),
    ),
    Case("lock-spec-path-a-folder", ("is a directory, not a file",), names="exp", argv=("lock", "{folder}")),
    Case("build-spec-path-missing", ("does not exist",), names="nope.yaml", argv=("build", "{folder}/nope.yaml")),
    # run: checked before Docker is contacted.
    Case(
        "run-data-without-equals",
        ("--data takes NAME=PATH", "--data points="),
        names="--data",
        argv=("run", "{image}", "--data", "points"),
    ),
    Case(
        "run-data-without-name",
        ("--data takes NAME=PATH",),
        names="'=./data'",
        argv=("run", "{image}", "--data", "=./data"),
    ),
    Case(
        "run-data-path-missing",
        ("/nonexistent/points.csv does not exist", "Check the path"),
        names="--data points",
        argv=("run", "{image}", "--data", "points=/nonexistent/points.csv"),
    ),
    Case(
        "run-data-twice",
        ("is given twice",),
        names="--data points",
        argv=("run", "{image}", "--data", "points={folder}/data", "--data", "points={folder}/data"),
    ),
    Case(
        "run-set-without-equals",
        ("--set takes KEY=VALUE", "--set epochs=5"),
        names="--set",
        argv=("run", "{image}", "--set", "epochs"),
    ),
    Case("run-set-empty-key", ("--set takes KEY=VALUE",), names="'=5'", argv=("run", "{image}", "--set", "=5")),
    Case(
        "run-set-empty-section",
        ("--set takes KEY=VALUE",),
        names="'model..hidden=3'",
        argv=("run", "{image}", "--set", "model..hidden=3"),
    ),
    Case("run-gpus-a-count", ("--gpus takes 'all', not '2'",), names="--gpus", argv=("run", "{image}", "--gpus", "2")),
    Case(
        "run-max-output-not-a-size",
        ("--max-output takes a size like 500M", "'lots'"),
        names="--max-output",
        argv=("run", "{image}", "--max-output", "lots"),
    ),
    # run: checked against the image's manifest (a fake engine serves it), before anything is written.
    Case(
        "run-data-unknown-dataset",
        ("has no dataset 'pionts'", "it has: points"),
        names="--data pionts",
        argv=("run", "{image}", "--data", "pionts={folder}/data"),
        fake_engine=True,
    ),
    Case(
        "run-data-folder-without-the-file",
        ("holds no points.csv", "--data points=PATH/points.csv"),
        names="--data points",
        argv=("run", "{image}", "--data", "points={folder}"),
        fake_engine=True,
    ),
    Case(
        "run-set-unknown-key",
        ("config.json has no key 'epochs'", "it has: lr, model"),
        names="--set epochs",
        argv=("run", "{image}", "--set", "epochs=5"),
        fake_engine=True,
    ),
    Case(
        "run-set-not-a-section",
        ("'lr' is not a section of config.json",),
        names="--set lr.x",
        argv=("run", "{image}", "--set", "lr.x=1"),
        fake_engine=True,
    ),
    Case(
        "run-unknown-command",
        ("has no command 'evaluate'", "it has: train"),
        names="evaluate",
        argv=("run", "{image}", "evaluate"),
        fake_engine=True,
    ),
    Case(
        "run-no-such-image",
        ("There is no image 'other:tag'", "repropack build"),
        names="other:tag",
        argv=("run", "other:tag"),
        fake_engine=True,
    ),
    Case(
        "run-output-is-a-file",
        ("is a file, not a folder",),
        names="train.py",
        argv=("run", "{image}", "--output", "{folder}/train.py"),
        fake_engine=True,
    ),
    # verify: checked before Docker is contacted.
    Case(
        "verify-seeds-not-numbers",
        ("--seeds takes whole numbers and ranges separated by commas", "'1,x'"),
        names="--seeds",
        argv=("verify", "{image}", "--seeds", "1,x"),
    ),
    Case(
        "verify-seeds-range-downwards",
        ("a range runs upwards", "2-5", "'5-2'"),
        names="--seeds",
        argv=("verify", "{image}", "--seeds", "5-2"),
    ),
    Case(
        "run-seeds-range-downwards",
        ("a range runs upwards",),
        names="--seeds",
        argv=("run", "{image}", "--seeds", "5-2"),
    ),
    Case(
        "run-sweep-no-values",
        ("--sweep takes KEY=V1,V2", "'lr='"),
        names="--sweep",
        argv=("run", "{image}", "--sweep", "lr="),
    ),
    Case(
        "run-sweep-and-set-same-key",
        ("--set lr and --sweep lr are both given",),
        names="--sweep lr",
        argv=("run", "{image}", "--sweep", "lr=1,2", "--set", "lr=3"),
    ),
    Case(
        "submit-to-an-unknown-scheduler",
        ("--to takes slurm or kubernetes", "'lsf'"),
        names="--to",
        argv=("submit", "{image}", "--to", "lsf"),
    ),
    Case(
        "submit-slurm-option-to-kubernetes",
        ("--partition apply to --to slurm only",),
        names="--partition",
        argv=("submit", "{image}", "--to", "kubernetes", "--partition", "gpu"),
    ),
    Case(
        "submit-kubernetes-option-to-slurm",
        ("--namespace apply to --to kubernetes only",),
        names="--namespace",
        argv=("submit", "{image}", "--namespace", "lab"),
    ),
    Case(
        "submit-kubernetes-bad-namespace",
        ("namespace",),
        names="--namespace",
        argv=("submit", "{image}", "--to", "kubernetes", "--namespace", "Not_A_Label"),
    ),
    Case(
        "submit-unknown-runtime",
        ("--runtime takes docker, apptainer, pyxis", "'singularity'"),
        names="--runtime",
        argv=("submit", "{image}", "--runtime", "singularity"),
    ),
    Case(
        "verify-on-an-unknown-cluster",
        ("--on takes slurm or kubernetes", "'lsf'"),
        names="--on",
        argv=("verify", "{image}", "--seeds", "0-1", "--on", "lsf"),
    ),
    Case(
        "verify-cluster-option-without-on",
        ("--partition only apply with --on",),
        names="--partition",
        argv=("verify", "{image}", "--partition", "gpu"),
    ),
    Case(
        "submit-malformed-seed-range",
        ("a range runs upwards",),
        names="--seeds",
        argv=("submit", "{image}", "--seeds", "5-2"),
    ),
    Case(
        "submit-malformed-time",
        ("--time takes Slurm's form", "'soon'"),
        names="--time",
        argv=("submit", "{image}", "--time", "soon"),
    ),
    Case(
        "run-name-for-a-sweep",
        ("--name names one run",),
        names="--name",
        argv=("run", "{image}", "--seeds", "0-1", "--name", "x"),
    ),
    Case(
        "verify-seeds-empty-item",
        ("--seeds takes whole numbers",),
        names="--seeds",
        argv=("verify", "{image}", "--seeds", "1,,2"),
    ),
    Case(
        "verify-seeds-negative",
        ("--seeds takes whole numbers",),
        names="--seeds",
        argv=("verify", "{image}", "--seeds", "-1"),
    ),
    Case(
        "verify-seeds-too-big",
        ("--seeds takes whole numbers",),
        names="--seeds",
        argv=("verify", "{image}", "--seeds", "4294967296"),
    ),
    Case("verify-gpus-a-count", ("--gpus takes 'all'",), names="--gpus", argv=("verify", "{image}", "--gpus", "2")),
    Case(
        "verify-max-output-too-small",
        ("--max-output 10k is less than 1 MiB", "Give at least 1M"),
        names="--max-output",
        argv=("verify", "{image}", "--max-output", "10k"),
    ),
    Case(
        "verify-paper-not-json",
        ("is not valid JSON: line 1", "repropack manifest"),
        names="paper.json",
        files={"paper.json": "{not json\n"},
        argv=("verify", "{folder}/paper.json"),
        fake_engine=True,
    ),
    Case(
        "verify-paper-missing",
        ("does not exist",),
        names="paper.json",
        argv=("verify", "{folder}/paper.json"),
        fake_engine=True,
    ),
    # manifest, publish, base build.
    Case(
        "manifest-format-html",
        ("--format is one of json, markdown, latex, not 'html'",),
        names="--format",
        argv=("manifest", "{image}", "--format", "html"),
    ),
    Case(
        "publish-target-without-registry",
        ("names no registry host",),
        names="'lab/exp:v1'",
        argv=("publish", "{image}", "lab/exp:v1"),
        fake_engine=True,
    ),
    Case(
        "publish-target-without-tag",
        ("has no ':TAG'",),
        names="ghcr.io/lab/exp",
        argv=("publish", "{image}", "ghcr.io/lab/exp"),
        fake_engine=True,
    ),
    Case(
        "publish-target-upper-case",
        ("repository names are lower case",),
        names="ghcr.io/Lab/exp:v1",
        argv=("publish", "{image}", "ghcr.io/Lab/exp:v1"),
        fake_engine=True,
    ),
    Case(
        "publish-target-a-digest",
        ("publish takes a tag",),
        names="@sha256:",
        argv=("publish", "{image}", "ghcr.io/lab/exp@sha256:" + "a" * 64),
        fake_engine=True,
    ),
    Case(
        "base-build-unknown-name",
        ("Unknown base image 'ubuntu'", "debian-bookworm"),
        names="ubuntu",
        argv=("base", "build", "ubuntu"),
    ),
    Case(
        "base-build-not-a-local-base",
        ("is not made locally", "repropack base list"),
        names="cuda12.1-ubuntu22.04",
        argv=("base", "build", "cuda12.1-ubuntu22.04"),
    ),
]

# Arguments checked before Docker is contacted, and against the image's manifest before its files are read.
ARGUMENT_CASES += [
    Case(
        "verify-data-without-equals",
        ("--data takes NAME=PATH",),
        names="--data",
        argv=("verify", "{image}", "--data", "points"),
    ),
    Case(
        "verify-paper-not-json-no-engine",
        ("is not valid JSON",),
        names="paper.json",
        files={"paper.json": "{not json\n"},
        argv=("verify", "{folder}/paper.json"),
    ),
    Case(
        "publish-bad-target-no-engine",
        ("names no registry host",),
        names="'lab/exp:v1'",
        argv=("publish", "{image}", "lab/exp:v1"),
    ),
    Case("verify-memory-not-a-size", ("--memory",), names="--memory", argv=("verify", "{image}", "--memory", "lots")),
    Case(
        "verify-unknown-command",
        ("has no command 'evaluate-all'",),
        names="evaluate-all",
        argv=("verify", "{image}", "--command", "evaluate-all"),
        fake_engine=True,
    ),
    Case(
        "verify-data-unknown-dataset",
        ("has no dataset 'pionts'",),
        names="--data pionts",
        argv=("verify", "{image}", "--data", "pionts={folder}/data"),
        fake_engine=True,
    ),
    Case("build-tag-not-a-tag", ("Bad Tag",), names="--tag", argv=("build", "{spec}", "--tag", "Bad Tag")),
    Case(
        "freeze-output-is-a-file",
        ("is a file",),
        names="train.py",
        argv=("freeze", "{spec}", "--output", "{folder}/train.py"),
    ),
]

# Usage errors caught by the option parser (typer/click): exit 2, nothing written, no traceback. Their
# text is click's (a usage line, a hint and the error), not repropack's one paragraph.
USAGE_CASES = [
    ("run-seed-negative", ("run", "{image}", "--seed", "-1")),
    ("run-seed-a-word", ("run", "{image}", "--seed", "x")),
    ("run-timeout-zero", ("run", "{image}", "--timeout", "0")),
    ("verify-pids-too-low", ("verify", "{image}", "--pids-limit", "2")),
    ("freeze-without-output", ("freeze", "{spec}")),
    ("freeze-unknown-option", ("freeze", "{spec}", "--output", "{out}", "--no-such-option")),
    ("lock-without-spec", ("lock",)),
]
