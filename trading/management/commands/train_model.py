"""Train the direction model on the bar store's latest window; print its out-of-sample scores."""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand

from trading.ai.services import NothingNewToLearn, train_model


class Command(BaseCommand):
    help = (
        "Train the ai service's model walk-forward on the stored bars (seeded from the bundled "
        "history before the replay's start); print its scores."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--days", type=float, help="days of bars (default: QT_TRAIN_DAYS)")
        parser.add_argument("--if-missing", action="store_true",
                            help="do nothing when a model is already stored")  # fmt: skip

    def handle(self, *args, days: float | None, if_missing: bool, **options) -> None:
        from trading.models import ModelVersion

        if if_missing and ModelVersion.objects.serving().exists():
            self.stdout.write(
                f"a model is stored already: {ModelVersion.objects.serving().first()}"
            )
            return
        width = 30

        def progress(step: int, total: int, message: str) -> None:
            done = int(width * step / max(total, 1))
            bar = "#" * done + "-" * (width - done)
            sys.stderr.write(f"\r[{bar}] {step}/{total} {message[:50]:<50}")
            sys.stderr.flush()
            if step >= total:
                sys.stderr.write("\n")

        try:
            model = train_model(trigger="manual", days=days, progress=progress)
        except NothingNewToLearn as nothing:
            self.stdout.write(f"nothing new to learn: {nothing}")
            return
        self.stdout.write(
            f"model {model.version} trained on {model.symbols} "
            f"({model.window_start:%Y-%m-%d %H:%M} to {model.window_end:%Y-%m-%d %H:%M} UTC)\n"
            f"  out-of-sample accuracy {model.accuracy:.4f} "
            f"(no-skill baseline {model.baseline_accuracy:.4f})\n"
            f"  ROC AUC {model.roc_auc:.4f}, Brier score {model.brier:.4f}"
        )
        model.refresh_from_db(fields=["promoted_at", "rejected_at", "retired_at"])
        if model.status == "challenger":
            self.stdout.write(
                "  a challenger: shadow-scored beside the serving version until the promotion "
                "test decides"
            )
        else:
            self.stdout.write(f"  {model.status}")
