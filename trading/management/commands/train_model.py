"""Train the direction model on the bundled history and print its out-of-sample scores."""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand

from trading.ai.services import train_model


class Command(BaseCommand):
    help = "Train the ai service's model walk-forward on the bundled klines; print its scores."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--days", type=float, help="train on the last N days (default: all)")
        parser.add_argument("--if-missing", action="store_true",
                            help="do nothing when a model is already stored")  # fmt: skip

    def handle(self, *args, days: float | None, if_missing: bool, **options) -> None:
        from trading.models import ModelVersion

        if if_missing and ModelVersion.objects.exists():
            self.stdout.write(f"a model is stored already: {ModelVersion.objects.first()}")
            return
        width = 30

        def progress(step: int, total: int, message: str) -> None:
            done = int(width * step / max(total, 1))
            bar = "#" * done + "-" * (width - done)
            sys.stderr.write(f"\r[{bar}] {step}/{total} {message[:50]:<50}")
            sys.stderr.flush()
            if step >= total:
                sys.stderr.write("\n")

        model = train_model(trigger="manual", days=days, progress=progress)
        self.stdout.write(
            f"model {model.version} trained on {model.symbols} "
            f"({model.window_start:%Y-%m-%d} to {model.window_end:%Y-%m-%d})\n"
            f"  out-of-sample accuracy {model.accuracy:.4f} "
            f"(no-skill baseline {model.baseline_accuracy:.4f})\n"
            f"  ROC AUC {model.roc_auc:.4f}, Brier score {model.brier:.4f}"
        )
