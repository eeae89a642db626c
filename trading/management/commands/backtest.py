"""Backtest a strategy on stored bars (or the bundled history) through the live decisions; store
the run and print its report."""

from __future__ import annotations

import json
import sys

from django.core.management.base import BaseCommand, CommandError

from trading.backtest.services import create_run, run_backtest
from trading.execution.intake import MAX_LEVERAGE
from trading.management.options import moment
from trading.primitives import InvalidInput, read_decimal, read_symbol_list

SHOWN = ("final_equity", "total_return", "trades", "fees", "win_rate", "profit_factor",
         "expectancy", "sharpe", "sortino", "calmar", "max_drawdown", "exposure",
         "stated_confidence", "hit_rate", "buy_and_hold")  # fmt: skip


class Command(BaseCommand):
    help = "Backtest a strategy (a stored configuration's name, a kind, or ai_model)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--strategy", required=True)
        parser.add_argument("--symbols", required=True, help="comma-separated")
        parser.add_argument("--start", required=True, type=moment, help="ISO 8601 with offset")
        parser.add_argument("--end", required=True, type=moment)
        parser.add_argument("--fee", help="taker fee rate, e.g. 0.001")
        parser.add_argument("--slippage-bps")
        parser.add_argument("--volume-share", help="the most of a bar's volume filled, 0-1")
        parser.add_argument("--starting-cash")
        parser.add_argument("--model-version", default="")
        parser.add_argument(
            "--account-kind",
            choices=["spot", "futures"],
            default="spot",
            help="futures: a USDⓈ-M perpetual account (margin, shorts, liquidation)",
        )
        parser.add_argument("--leverage", type=int, default=1, help="futures only, 1-125")

    def handle(self, *args, strategy, symbols, start, end, **options) -> None:
        try:
            names = read_symbol_list(symbols)
            run_options = {
                key: str(read_decimal(options[key]))
                for key in ("fee", "slippage_bps", "volume_share", "starting_cash")
                if options.get(key) is not None
            }
        except InvalidInput as error:
            raise CommandError(str(error)) from None
        if options["model_version"]:
            run_options["model_version"] = options["model_version"]
        if options["leverage"] != 1 and options["account_kind"] != "futures":
            raise CommandError("--leverage needs --account-kind futures: spot trades at 1")
        if not 1 <= options["leverage"] <= MAX_LEVERAGE:
            raise CommandError(f"--leverage must be 1 to {MAX_LEVERAGE}")
        if options["account_kind"] == "futures":
            run_options["account_kind"] = "futures"
            run_options["leverage"] = str(options["leverage"])
        run = create_run(strategy, names, start, end, options=run_options,
                         requested_by="command line")  # fmt: skip
        width = 30

        def progress(done: int, total: int) -> None:
            filled = int(width * done / max(total, 1))
            sys.stderr.write(f"\r[{'#' * filled}{'-' * (width - filled)}] {done}/{total} bars")
            if done >= total:
                sys.stderr.write("\n")
            sys.stderr.flush()

        try:
            run = run_backtest(run.pk, progress=progress)
        except ValueError as error:
            raise CommandError(str(error)) from None
        report = run.report or {}
        self.stdout.write(
            f"backtest {run.pk}: {run.strategy_version} on {', '.join(names)} "
            f"({report.get('start')} to {report.get('end')}), code {run.code_version}"
        )
        self.stdout.write(json.dumps({k: report.get(k) for k in SHOWN}, indent=2))
