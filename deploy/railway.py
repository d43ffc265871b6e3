"""Railway's config-as-code file: the pre-deploy command must be exactly one command.

Railway runs `deploy.preDeployCommand` once, in its own container, before the new version
goes live. It accepts a string or an array of exactly one element; an array of two fails
every deploy silently (visible only through Railway's API), and an empty one runs nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

CONFIG_FILE = "railway.json"


def pre_deploy_problems(config: object) -> list[str]:
    """What is wrong with the pre-deploy command of a parsed railway.json ([] when fine)."""
    deploy = config.get("deploy") if isinstance(config, dict) else None
    if not isinstance(deploy, dict) or "preDeployCommand" not in deploy:
        return []  # no pre-deploy step configured here (e.g. it lives in the service settings)
    command = deploy["preDeployCommand"]
    fix = ('Make it one command: "preDeployCommand": "invoke apply --wait 60" (chain several '
           "with &&).")
    if isinstance(command, list):
        if len(command) > 1:
            return [f"railway.json deploy.preDeployCommand is an array of {len(command)} "
                    "elements; Railway runs only a one-element array, and with more every "
                    f"deploy fails without a message. {fix}"]
        if not command:
            return [f"railway.json deploy.preDeployCommand is an empty array: no plan would be "
                    f"applied before deploys. {fix}"]
        command = command[0]
    if not isinstance(command, str):
        return [f"railway.json deploy.preDeployCommand must be a string, not "
                f"{type(command).__name__}. {fix}"]
    if not command.strip():
        return [f"railway.json deploy.preDeployCommand is empty: no plan would be applied "
                f"before deploys. {fix}"]
    return []


def check_project(root: Path) -> list[str]:
    """Problems of ROOT/railway.json's pre-deploy command ([] when absent or fine)."""
    path = root / CONFIG_FILE
    if not path.is_file():
        return []
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return [f"railway.json is not valid JSON ({exc}); Railway would not read it."]
    return pre_deploy_problems(config)
