"""The documentation's promises that can be checked without running them: the README's two set-up commands, the CI
entry point running the README's test command verbatim, and links between the documents that resolve."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", ROOT / "model_card.md", *sorted((ROOT / "docs").rglob("*.md"))]


def readme_setup_commands() -> list[str]:
    """The lines of the README's first code block, which must come before any other text but the title."""
    text = (ROOT / "README.md").read_text()
    match = re.match(r"# [^\n]+\n\n```bash\n(.*?)\n```\n", text, re.DOTALL)
    assert match, "README.md must open with its title and then one bash block of the set-up commands"
    return match.group(1).splitlines()


def test_readme_starts_with_two_setup_commands():
    commands = readme_setup_commands()
    assert len(commands) == 2
    install_and_train, install_and_test = commands
    assert install_and_train.startswith("pip install torch==2.13.0 ") and "scripts/train.py" in install_and_train
    assert install_and_test.startswith("pip install torch==2.13.0 ") and install_and_test.endswith("pytest tests")


def test_ci_runs_the_readme_test_command_verbatim():
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert readme_setup_commands()[1] in ci_lines


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_relative_links_resolve(document):
    text = document.read_text()
    targets = re.findall(r"\]\(([^)\s#]+)(?:#[^)]*)?\)", text)
    broken = [
        target
        for target in targets
        if not re.match(r"[a-z]+:", target) and not (document.parent / target).exists()
    ]
    assert not broken, f"{document.relative_to(ROOT)} links to missing files: {broken}"
