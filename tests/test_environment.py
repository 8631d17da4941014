"""requirements.txt and environment.yml carry the same exact pins, and the installed environment matches them."""
import re
from importlib import metadata

import yaml

from polypersona_utils import paths

FAST_MOVING = ("torch", "transformers", "peft", "trl", "bitsandbytes")


def pins(lines):
    found = {}
    for line in lines:
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"not pinned exactly: {line}"
            found[name.split("[")[0].strip().lower()] = version.strip()  # extras: llama-cpp-python[server]
    return found


def requirements():
    return pins((paths.PROJECT_ROOT / "requirements.txt").read_text().splitlines())


def test_environment_yml_agrees_with_requirements():
    env = yaml.safe_load((paths.PROJECT_ROOT / "environment.yml").read_text())
    assert "python=3.11" in env["dependencies"] and "conda-forge" in env["channels"]
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert pins(pip_section) == requirements()


def test_fast_moving_packages_pinned_exactly():
    reqs = requirements()
    for name in FAST_MOVING:
        assert re.fullmatch(r"\d+(\.\d+)+", reqs[name]), name


def test_installed_versions_match_the_pins():
    """requirements.txt and requirements-nodeps.txt (make install), requirements-serve.txt (make test and make
    serve)."""
    files = ("requirements-nodeps.txt", "requirements-serve.txt")
    for name, version in {**requirements(), **{k: v for f in files for k, v in pins(
            (paths.PROJECT_ROOT / f).read_text().splitlines()).items()}}.items():
        installed = metadata.version(name)
        assert installed.split("+")[0] == version, f"{name}: installed {installed}, pinned {version}"


def test_make_lab_runs_as_root_in_a_container_and_widgets_are_installed():
    import os
    import subprocess

    command = subprocess.run(["make", "-n", "lab"], cwd=paths.PROJECT_ROOT, capture_output=True, text=True).stdout
    assert "jupyter lab --notebook-dir=notebooks" in command
    assert ("--allow-root" in command) == (os.getuid() == 0)  # jupyter refuses root without it
    assert metadata.version("ipywidgets") == requirements()["ipywidgets"]  # tqdm's notebook bars need it


def test_the_package_data_patterns_ship_every_data_file():
    """A non-editable install (a wheel) carries only what pyproject names: the question banks and the survey YAMLs."""
    import tomllib

    project = tomllib.loads((paths.PROJECT_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    package = paths.PACKAGE_DIR
    shipped = {f for pattern in project["package-data"]["polypersona_utils"] for f in package.glob(pattern)}
    data_files = {f for f in (package / "data").rglob("*") if f.is_file() and "__pycache__" not in f.parts}
    assert data_files and data_files <= shipped
    folders = {".".join(f.parent.relative_to(package.parent).parts) for f in data_files}
    assert folders <= set(project["packages"])
    code = {".".join(f.parent.relative_to(package.parent).parts) for f in package.rglob("*.py")}
    assert code <= set(project["packages"])  # every stage's modules ship
