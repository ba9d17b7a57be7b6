"""The dependency rules of STYLE.md, checked on the source and on a fresh interpreter."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "transformers", "mlflow", "boto3", "botocore")


def _imports(folder: Path) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in folder.rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


def test_core_imports_no_framework_cloud_or_ml_library() -> None:
    banned = {
        "fastapi",
        "starlette",
        "mangum",
        "boto3",
        "botocore",
        "mlflow",
        "torch",
        "transformers",
        "requests",
    }
    for module, names in _imports(ROOT / "functions" / "core").items():
        assert not names & banned, f"{module} imports {names & banned}"


def test_training_job_imports_nothing_from_functions() -> None:
    for module, names in _imports(ROOT / "training_job").items():
        assert "functions" not in names, module


# The libraries that read PDF, DOCX and HTML (documents/extract.py), in both images.
EXTRACTORS = {"pypdf", "docx", "trafilatura"}


def test_documents_imports_the_standard_library_and_extractors_when_used() -> None:
    # Both images ship it, so it can depend on neither program; at import time on nothing
    # installed, and an extraction library only inside the function that reads its format.
    for module, names in _imports(ROOT / "documents").items():
        outside = names - set(sys.stdlib_module_names) - {"documents"}
        assert outside <= EXTRACTORS, f"{module} imports {outside - EXTRACTORS}"
        assert not names & {"functions", "training_job"}, module
    code = (
        "import sys, json, documents, documents.extract;"
        f"print(json.dumps(sorted(m for m in {sorted(EXTRACTORS)!r} if m in sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def _defined(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    functions = (ast.FunctionDef, ast.AsyncFunctionDef)
    return {node.name for node in ast.walk(tree) if isinstance(node, functions)}


def test_the_job_batch_and_api_use_the_one_document_rule() -> None:
    import documents

    # given: the modules that judge documents, in both programs
    users = [
        "training_job/data.py",
        "training_job/batch.py",
        "functions/core/validation.py",
        "functions/core/datasets.py",
        "functions/core/prediction.py",
    ]
    imports = _imports(ROOT / "training_job") | _imports(ROOT / "functions")
    # then: each imports the rule, and no module of either program keeps a copy of it
    for module in users:
        assert "documents" in imports[module], module
    rules = set(documents.__all__) | {"classify_document"}
    for folder in ("functions", "training_job"):
        for path in (ROOT / folder).rglob("*.py"):
            copies = _defined(path) & rules
            assert not copies, f"{path.relative_to(ROOT)} defines {copies}"
            # nor spells out its reasons (a listing rule written again would)
            assert f'"{documents.HIDDEN}"' not in path.read_text(), path


def test_control_plane_imports_without_heavy_libraries() -> None:
    # given a fresh interpreter, when the Lambda handler and the routes are imported
    code = (
        "import sys, json;"
        "import functions.api.handler, functions.core.training, functions.core.deletion;"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    # then none of torch, transformers, mlflow or boto3 has been loaded
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_tag_names_agree_between_the_api_and_the_training_job() -> None:
    # The two images share MLflow tags as their contract, each with its own constants.
    from functions.core import tags
    from training_job import tracking

    shared = {n for n in dir(tags) if n.startswith(("TAG_", "METRIC_"))} & set(dir(tracking))
    assert {
        "TAG_FAILURE",
        "TAG_GATE",
        "TAG_GATE_REASON",
        "TAG_REGISTERED",
        "TAG_MODEL_KIND",
        "TAG_MODEL_URI",
        "METRIC_PASSES_BAR_UP_TO",
    } <= shared
    for name in shared:
        assert getattr(tags, name) == getattr(tracking, name), name
    # and the progress the job writes is what the API reads
    from training_job import progress

    assert (tags.TAG_PHASE, tags.TAG_PHASE_DETAIL) == (
        progress.TAG_PHASE,
        progress.TAG_PHASE_DETAIL,
    )
    assert (tags.METRIC_PERCENT, tags.METRIC_ETA) == (progress.PERCENT, progress.ETA)


def test_the_batch_job_and_the_api_name_shards_alike() -> None:
    # A sharded batch job's contract is data too: descriptors, reports and the shard variable.
    from functions.core import batch as api
    from training_job import batch as job

    assert api.SHARD_ENV == job.SHARD_ENV
    for index, count in ((0, 2), (7, 10), (12345, 99999)):
        found = job.SHARD_DESCRIPTOR.fullmatch(api.shard_descriptor(index))
        assert found and int(found.group(1)) == index
        assert api.shard_report(index, count) == job.shard_report(index, count)


def test_every_list_of_training_modes_is_the_kind_registry() -> None:
    # The two images cannot share the registry (training_job/kinds): each list is checked.
    import re
    from typing import get_args

    from functions.api.schemas import ProcessRequest
    from functions.cli import train
    from functions.core.validation import TRAINING_MODES
    from training_job import kinds

    assert ("auto", *(kind.name for kind in kinds.REGISTRY)) == kinds.MODES
    assert TRAINING_MODES == kinds.MODES
    assert get_args(ProcessRequest.model_fields["mode"].annotation) == kinds.MODES
    mode_option = next(p for p in train.params if p.name == "mode")
    assert tuple(mode_option.type.choices) == kinds.MODES  # type: ignore[attr-defined]
    page = (ROOT / "functions" / "api" / "static" / "index.html").read_text()
    select = re.search(r'<select id="mode">(.*?)</select>', page, re.S)
    assert select is not None
    assert tuple(re.findall(r'<option value="([^"]+)"', select.group(1))) == kinds.MODES
    # README's table of kinds: one row per kind, in registry order, with its summary.
    readme = (ROOT / "README.md").read_text()
    table = readme.split("<!-- kinds -->")[1].split("<!-- /kinds -->")[0]
    rows = re.findall(r"^\s*\| `([a-z_]+)` \| (.+?) \|$", table, re.M)
    assert [(name, summary) for name, summary in rows] == [
        (kind.name, kind.summary) for kind in kinds.REGISTRY
    ]
