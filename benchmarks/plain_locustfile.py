"""Plain Locust FastHttpUser posting one fixed image: the baseline of benchmarks/load.py."""

import io

from locust import FastHttpUser, constant, task

from harness.datasets import shapes_sample


def _body() -> bytes:
    buf = io.BytesIO()
    shapes_sample(0, 0).image.save(buf, "PNG")
    return buf.getvalue()


BODY = _body()


class PlainUser(FastHttpUser):
    wait_time = constant(0)

    @task
    def caption(self) -> None:
        self.client.post("/v1/caption", data=BODY, headers={"Content-Type": "image/png", "X-Request-Id": "plain"})
