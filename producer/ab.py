"""A/B tests from the client: start, list, report, stop."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from producer.base import ClientBase
from producer.sending import send_task
from shared.ab_tests import get_test, list_tests, start_test
from shared.contracts import RULE_SIGNIFICANCE, TASK_AB_REPORT, TASK_AB_STOP
from shared.db.engine import session_scope


class ABTestsMixin(ClientBase):
    def start_ab_test(
        self,
        *,
        endpoint: str,
        a: str,
        b: str,
        duration: timedelta,
        split: float = 0.5,
        min_labelled: int = 200,
        alpha: float = 0.05,
        rule: str = RULE_SIGNIFICANCE,
        title: str | None = None,
        created_by: str = "mlq",
    ) -> dict[str, Any]:
        """Start an A/B test between the production algorithm ``a`` and ``b``."""
        with session_scope() as session:
            test = start_test(
                session,
                endpoint=endpoint,
                a=a,
                b=b,
                duration=duration,
                split=split,
                min_labelled=min_labelled,
                alpha=alpha,
                rule=rule,
                title=title,
                created_by=created_by,
            )
            return {"id": test.id, "title": test.title, "ends_at": test.ends_at.isoformat()}

    def ab_tests(self) -> list[dict[str, Any]]:
        with session_scope() as session:
            return [
                {
                    "id": t.id,
                    "title": t.title,
                    "created_at": t.created_at.isoformat(),
                    "ends_at": t.ends_at.isoformat(),
                    "ended_at": t.ended_at.isoformat() if t.ended_at else None,
                    "result": (t.summary or {}).get("text"),
                }
                for t in list_tests(session)
            ]

    def ab_report(self, test_id: int, *, timeout: float = 60) -> dict[str, Any]:
        """Live figures per arm (computed by a worker), and the summary once ended."""
        self._require_test(test_id)
        return dict(send_task(self.app, TASK_AB_REPORT, args=[test_id]).get(timeout=timeout))

    def stop_ab_test(self, test_id: int, *, timeout: float = 60) -> dict[str, Any]:
        """Evaluate and end a test now (a test that has ended reports how it ended)."""
        self._require_test(test_id)
        return dict(send_task(self.app, TASK_AB_STOP, args=[test_id]).get(timeout=timeout))

    @staticmethod
    def _require_test(test_id: int) -> None:
        """Say here, not in a worker's traceback, that a test id does not exist."""
        with session_scope() as session:
            get_test(session, test_id=test_id)
