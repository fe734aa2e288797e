"""DVC stage `register`: the evaluated model into MLflow's registry; `champion` if it wins."""

from __future__ import annotations

import argparse

from depthseg.core.cli import run_stage, stage_parser
from depthseg.core.params import Params
from depthseg.stages.register import register


def main(params: Params, args: argparse.Namespace) -> None:
    decision = register(params)
    verdict = "now champion" if decision.promoted else f"champion stays version {decision.champion}"
    print(
        f"register: {decision.model_name} version {decision.version} (alias candidate), "
        f"{verdict}: {decision.reason}"
    )


if __name__ == "__main__":
    run_stage(stage_parser(__doc__), main)
